// The controllers' loop: runs a reconcile whenever triggered, coalescing triggers (the product's
// Coalescer) and retrying a failed run shortly after. Controllers are level-triggered: a run lists
// what it needs from the API server and converges, so a missed or duplicated event costs nothing.
// Their eyes are the product's own WatchedKind (src/providers/kubernetes/watch.ts).
import { Coalescer } from '../../../src/util/coalesce.ts';

/**
 * Runs `body` whenever triggered, one run at a time; triggers during a run cause exactly one more.
 * A run that throws (an API error, a conflict with another writer) is retried after a short delay.
 */
export class ReconcileLoop {
  private readonly coalescer: Coalescer;
  private stopped = false;
  private retry: NodeJS.Timeout | null = null;

  constructor(body: () => Promise<void>, onError: (err: unknown) => void) {
    this.coalescer = new Coalescer(body, (err) => {
      if (this.stopped) return;
      onError(err);
      if (!this.retry) {
        this.retry = setTimeout(() => {
          this.retry = null;
          this.trigger();
        }, 200);
        this.retry.unref();
      }
    });
  }

  trigger(): void {
    if (!this.stopped) void this.coalescer.run();
  }

  /** Re-runs after `ms` (a probe period, a grace deadline): time-driven work of a level-triggered loop. */
  triggerIn(ms: number): NodeJS.Timeout {
    const t = setTimeout(() => this.trigger(), ms);
    t.unref();
    return t;
  }

  /** Stops triggering and waits for a run in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    await this.coalescer.stop();
  }
}
