// Connection draining. Health turned 503 when the drain started, but the pod leaves the
// Service's endpoints only once the kubelet's next probe has seen it and the endpoint change
// has reached every proxy: until then new connections keep arriving, and stopping at the first
// moment no connection is open would refuse them. So the drain ends when no connection is open
// AND none was accepted for a quiet period. Then varnishd's child is stopped through the admin
// CLI and the manager is terminated, so the process can exit 0.
import type { Logger } from 'pino';
import type { Varnishd } from '../varnish/varnishd.ts';

/** Time without a new connection after which the endpoint removal is taken as done. */
export const DRAIN_QUIET_MS = 5000;

export interface DrainOptions {
  /** Client connections open right now, and accepted since varnishd started (from varnishstat). */
  connections: () => Promise<{ open: number; accepted: number }>;
  varnishd: Varnishd | null;
  logger: Logger;
  /**
   * Asks the clients to close their connections (the draining VCL). Called once, after
   * `drain-start`; must not throw (a failure is the caller's to log: draining goes on).
   */
  closeConnections?: () => Promise<void>;
  pollMs?: number;
  /** How long no connection may have been accepted before the drain ends (default DRAIN_QUIET_MS). */
  quietMs?: number;
  /** How often the remaining count is logged. */
  logEveryMs?: number;
}

export async function drainConnections(opts: DrainOptions): Promise<void> {
  const pollMs = opts.pollMs ?? 1000;
  const logEveryMs = opts.logEveryMs ?? 10_000;
  const log = opts.logger;
  log.info({ event: 'drain-start' }, 'starting connection draining');
  if (opts.varnishd) {
    await opts.closeConnections?.();
    let lastLog = performance.now();
    const quietMs = opts.quietMs ?? DRAIN_QUIET_MS;
    let accepted = Number.NaN;
    let acceptedSince = performance.now();
    for (;;) {
      let remaining: number;
      try {
        const now = await opts.connections();
        remaining = now.open;
        // A missing counter (NaN) is no news: the quiet period then runs from the drain's start.
        if (!Number.isNaN(now.accepted) && now.accepted !== accepted) {
          accepted = now.accepted;
          acceptedSince = performance.now();
        }
      } catch (err) {
        // Without a count we cannot know; keep waiting (the grace period bounds it).
        log.warn({ event: 'drain-stats-failed', err: (err as Error).message }, 'could not read active connections');
        remaining = Number.NaN;
      }
      if (remaining === 0 && performance.now() - acceptedSince >= quietMs) break;
      if (performance.now() - lastLog >= logEveryMs) {
        log.info({ event: 'drain-progress', remaining }, `draining: ${remaining} client connections open`);
        lastLog = performance.now();
      }
      await new Promise((r) => setTimeout(r, pollMs));
    }
    log.info({ event: 'drain-complete' }, 'drain complete');
    await opts.varnishd.stopChild().catch((err: Error) => log.warn({ event: 'child-stop-failed', err: err.message }, 'varnishd child stop failed'));
  } else {
    log.info({ event: 'drain-complete' }, 'drain complete (varnishd was not running)');
  }
}
