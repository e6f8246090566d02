// Waiting for a condition in integration tests: tests never assert timing, they poll until the
// state they expect holds, with a generous deadline.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Polls `check` until it holds; fails with `what` after `timeoutMs`. A check that throws (say,
 * a request to a port not listening yet) counts as "not yet"; its last error is in the failure.
 */
export async function eventually(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000, intervalMs = 25): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      if (await check()) return;
      lastErr = undefined;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > deadline) assert.fail(`timed out waiting for: ${what}${lastErr ? ` (last error: ${(lastErr as Error).message})` : ''}`);
    await sleep(intervalMs);
  }
}
