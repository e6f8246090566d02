// upstream AwaitConvergence: an expectation holds once it has passed `threshold` times in a row
// within the time budget; any failure (transport error or mismatch) resets the streak.
import { setTimeout as sleep } from 'node:timers/promises';

export interface ConvergenceOptions {
  threshold: number;
  timeoutMs: number;
  /** Pause after a failed attempt (upstream: 1 s; shorter here to keep the suite fast). */
  failDelayMs: number;
}

export interface ConvergenceResult {
  ok: boolean;
  attempts: number;
  elapsedMs: number;
  /** Why the last failed attempt failed. */
  lastFailure?: string;
}

export const DEFAULT_CONVERGENCE: ConvergenceOptions = { threshold: 3, timeoutMs: 30_000, failDelayMs: 150 };

export async function awaitConvergence(attempt: () => Promise<string | undefined>, opts: ConvergenceOptions = DEFAULT_CONVERGENCE): Promise<ConvergenceResult> {
  const start = Date.now();
  let attempts = 0;
  let streak = 0;
  let lastFailure: string | undefined;
  for (;;) {
    if (Date.now() - start >= opts.timeoutMs) return { ok: false, attempts, elapsedMs: Date.now() - start, lastFailure: lastFailure ?? 'timed out' };
    let failure: string | undefined;
    try {
      failure = await attempt();
    } catch (err) {
      failure = `request failed: ${describeError(err)}`;
    }
    attempts++;
    if (failure === undefined) {
      streak++;
      if (streak >= opts.threshold) return { ok: true, attempts, elapsedMs: Date.now() - start, ...(lastFailure ? { lastFailure } : {}) };
      continue;
    }
    streak = 0;
    lastFailure = failure;
    const left = opts.timeoutMs - (Date.now() - start);
    if (left <= 0) return { ok: false, attempts, elapsedMs: Date.now() - start, lastFailure };
    await sleep(Math.min(opts.failDelayMs, left));
  }
}

export function describeError(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code && !err.message.includes(code) ? `${code} ${err.message}` : err.message;
  }
  return String(err);
}

/** upstream MakeRequestAndExpectFailure: consecutive HTTP answers that are neither 200 nor a timeout. */
export const CONSISTENT_FAILURE_THRESHOLD = 5;

/**
 * `attempt` resolves with the status of one HTTP response (or throws on a transport error).
 * Holds once CONSISTENT_FAILURE_THRESHOLD answers in a row were neither 200 nor 408/504; a
 * transport error or a timeout status resets the streak; a 200 fails at once.
 */
export async function awaitConsistentFailure(attempt: () => Promise<number>, opts: ConvergenceOptions = DEFAULT_CONVERGENCE): Promise<ConvergenceResult> {
  const start = Date.now();
  let attempts = 0;
  let streak = 0;
  let lastFailure: string | undefined;
  for (;;) {
    if (Date.now() - start >= opts.timeoutMs) return { ok: false, attempts, elapsedMs: Date.now() - start, lastFailure: lastFailure ?? 'timed out' };
    let status: number | undefined;
    try {
      status = await attempt();
    } catch (err) {
      lastFailure = `request failed: ${describeError(err)}`;
    }
    attempts++;
    if (status === 200) return { ok: false, attempts, elapsedMs: Date.now() - start, lastFailure: 'got 200, expected the request to fail' };
    if (status !== undefined && status !== 408 && status !== 504) {
      streak++;
      if (streak >= CONSISTENT_FAILURE_THRESHOLD) return { ok: true, attempts, elapsedMs: Date.now() - start };
      continue;
    }
    if (status !== undefined) lastFailure = `got ${status}, a timeout status`;
    streak = 0;
    const left = opts.timeoutMs - (Date.now() - start);
    if (left <= 0) return { ok: false, attempts, elapsedMs: Date.now() - start, lastFailure: lastFailure ?? 'timed out' };
    await sleep(Math.min(opts.failDelayMs, left));
  }
}
