// A kept-alive view of one kind of Kubernetes object, built on client-node's informer (list,
// then watch from the list's resourceVersion; relist after 410 Gone). client-node stops an
// informer on any other error, so this restarts it with backoff: a control plane that loses
// its watch for good would silently serve a stale config forever.
import { ListWatch, Watch, type KubeConfig, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { apiStatusCode } from './errors.ts';

export interface WatchedKindOptions<T extends KubernetesObject> {
  kubeConfig: KubeConfig;
  /** API path of the collection, e.g. /api/v1/namespaces/ns/configmaps. */
  path: string;
  list: () => Promise<KubernetesListObject<T>>;
  labelSelector?: string;
  /** Field selector of the list and watch (e.g. `metadata.name=x`: one object, as RBAC resourceNames allow). */
  fieldSelector?: string;
  /** Called after every change once the first list is in (objects via list()). */
  onChange: () => void;
  /** Called with every event and the object it is about, before the first list too. */
  onEvent?: (type: 'add' | 'update' | 'delete', obj: T) => void;
  logger: Logger;
  /** For logs: what is being watched. */
  name: string;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /**
   * The kind may not be served (its CRD is not installed, say a Gateway API release without
   * it): a 404 on list counts as an empty first list, so the caller's start does not wait for it
   * forever, and the list is retried (at the longest backoff, logged once) until the kind appears.
   */
  optional?: boolean;
}

export class WatchedKind<T extends KubernetesObject> {
  private readonly opts: WatchedKindOptions<T>;
  private readonly informer: ListWatch<T>;
  private readonly log: Logger;
  private stopped = false;
  private backoffMs: number;
  private retry: NodeJS.Timeout | null = null;
  private syncedResolve!: () => void;
  /** Resolves once the first list has been received. */
  readonly synced: Promise<void>;
  private isSynced = false;
  /** An optional kind the API server answered 404 for: not served (yet). */
  private absent = false;

  constructor(opts: WatchedKindOptions<T>) {
    this.opts = opts;
    this.log = opts.logger.child({ component: 'kube-watch', watched: opts.name });
    this.backoffMs = opts.minBackoffMs ?? 500;
    this.synced = new Promise((resolve) => (this.syncedResolve = resolve));
    // The list function also marks the first sync: the informer lists before it watches, and
    // stores the listed items in the microtasks that follow, so the mark waits a macrotask.
    const list = async () => {
      let result: KubernetesListObject<T>;
      try {
        result = await opts.list();
      } catch (err) {
        if (opts.optional && apiStatusCode(err) === 404) {
          if (!this.absent) this.log.info({ event: 'kind-not-served' }, `${opts.name} is not served by the API server; treated as none until it is`);
          this.absent = true;
          setImmediate(() => this.markSynced());
        }
        throw err;
      }
      if (this.absent) this.log.info({ event: 'kind-served' }, `${opts.name} is served now`);
      this.absent = false;
      setImmediate(() => this.markSynced());
      return result;
    };
    this.informer = new ListWatch<T>(opts.path, new Watch(opts.kubeConfig), list, false, opts.labelSelector, opts.fieldSelector);
    const changed = () => {
      if (this.isSynced) opts.onChange();
    };
    for (const type of ['add', 'update', 'delete'] as const) {
      this.informer.on(type, (obj: T) => {
        opts.onEvent?.(type, obj);
        changed();
      });
    }
    this.informer.on('connect', () => {
      this.backoffMs = opts.minBackoffMs ?? 500;
    });
    this.informer.on('error', (err: unknown) => this.restartLater(err));
  }

  async start(): Promise<void> {
    await this.informer.start().catch((err: unknown) => this.restartLater(err));
  }

  list(): readonly T[] {
    // The informer keeps what it last listed, which a kind that is gone no longer has.
    return this.absent ? [] : this.informer.list();
  }

  private markSynced(): void {
    if (this.isSynced) {
      // A relist (after 410 or a restart) may have changed anything.
      this.opts.onChange();
      return;
    }
    this.isSynced = true;
    this.syncedResolve();
    this.opts.onChange();
  }

  private restartLater(err: unknown): void {
    if (this.stopped || this.retry) return;
    const maxBackoffMs = this.opts.maxBackoffMs ?? 30_000;
    // Not served: not an error, and not worth asking about more often than the longest backoff.
    if (this.absent) this.backoffMs = maxBackoffMs;
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, maxBackoffMs);
    if (!this.absent) this.log.warn({ event: 'watch-error', err: describe(err), retryInMs: delay }, `watch of ${this.opts.name} failed; restarting`);
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

function describe(err: unknown): string {
  if (err instanceof Error) return err.message;
  if (err && typeof err === 'object') {
    const e = err as { code?: unknown; statusCode?: unknown; message?: unknown };
    return String(e.message ?? e.statusCode ?? e.code ?? JSON.stringify(err).slice(0, 200));
  }
  return String(err);
}
