// The controllers' eyes: a client-node informer per kind over all namespaces, restarted when it
// stops (client-node ends an informer on a broken stream), and a reconcile loop that coalesces
// the events into one run at a time. Controllers are level-triggered: a run lists what it needs
// from the API server and converges, so a missed or duplicated event costs nothing.
import { makeInformer, type KubeConfig, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';

export type WatchEvent = 'add' | 'update' | 'delete';

export class KindWatch<T extends KubernetesObject> {
  private readonly informer: ReturnType<typeof makeInformer<T>>;
  private stopped = false;
  private retry: NodeJS.Timeout | null = null;
  private backoffMs = 100;

  constructor(kc: KubeConfig, path: string, list: () => Promise<KubernetesListObject<T>>, onEvent: (type: WatchEvent, obj: T) => void) {
    this.informer = makeInformer<T>(kc, path, list);
    for (const type of ['add', 'update', 'delete'] as const) this.informer.on(type, (obj: T) => onEvent(type, obj));
    this.informer.on('connect', () => (this.backoffMs = 100));
    this.informer.on('error', () => this.restartLater());
  }

  async start(): Promise<void> {
    await this.informer.start().catch(() => this.restartLater());
  }

  list(): readonly T[] {
    return this.informer.list();
  }

  private restartLater(): void {
    if (this.stopped || this.retry) return;
    const delay = this.backoffMs;
    this.backoffMs = Math.min(delay * 2, 5_000);
    this.retry = setTimeout(() => {
      this.retry = null;
      if (!this.stopped) void this.start();
    }, delay);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    await this.informer.stop().catch(() => undefined);
  }
}

/**
 * Runs `body` whenever triggered, one run at a time; triggers during a run cause exactly one more.
 * A run that throws (an API error, a conflict with another writer) is retried after a short delay.
 */
export class ReconcileLoop {
  private readonly body: () => Promise<void>;
  private readonly onError: (err: unknown) => void;
  private running = false;
  private again = false;
  private stopped = false;
  private retry: NodeJS.Timeout | null = null;
  private idleWaiters: (() => void)[] = [];

  constructor(body: () => Promise<void>, onError: (err: unknown) => void) {
    this.body = body;
    this.onError = onError;
  }

  trigger(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    void this.run();
  }

  /** Re-runs after `ms` (a probe period, a grace deadline): time-driven work of a level-triggered loop. */
  triggerIn(ms: number): NodeJS.Timeout {
    const t = setTimeout(() => this.trigger(), ms);
    t.unref();
    return t;
  }

  private async run(): Promise<void> {
    this.running = true;
    do {
      this.again = false;
      try {
        await this.body();
      } catch (err) {
        if (this.stopped) break;
        this.onError(err);
        if (!this.retry) {
          this.retry = setTimeout(() => {
            this.retry = null;
            this.trigger();
          }, 200);
          this.retry.unref();
        }
      }
    } while (this.again && !this.stopped);
    this.running = false;
    for (const w of this.idleWaiters.splice(0)) w();
  }

  /** Stops triggering and waits for a run in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    if (this.running) await new Promise<void>((ok) => this.idleWaiters.push(ok));
  }
}
