// Connection draining: the pod is already out of the Service's endpoints (health turned 503
// when the drain started), so waiting for the open client connections to end loses no
// request in flight. Then varnishd's child is stopped through the admin CLI and the manager
// is terminated, so the process can exit 0.
import type { Logger } from 'pino';
import type { Varnishd } from '../varnish/varnishd.ts';

export interface DrainOptions {
  /** Open client connections right now (from varnishstat). */
  activeSessions: () => Promise<number>;
  varnishd: Varnishd | null;
  logger: Logger;
  /**
   * Asks the clients to close their connections (the draining VCL). Called once, after
   * `drain-start`; must not throw (a failure is the caller's to log: draining goes on).
   */
  closeConnections?: () => Promise<void>;
  pollMs?: number;
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
    for (;;) {
      let remaining: number;
      try {
        remaining = await opts.activeSessions();
      } catch (err) {
        // Without a count we cannot know; keep waiting (the grace period bounds it).
        log.warn({ event: 'drain-stats-failed', err: (err as Error).message }, 'could not read active connections');
        remaining = Number.NaN;
      }
      if (remaining === 0) break;
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
