// Objects our Gateways reference (certificate Secrets, CA bundle ConfigMaps), kept from a watch
// of every object of the kind without keeping them all in memory: the watch cache holds metadata
// only (data is dropped as each event arrives), and the data of an object is kept only while a
// Gateway references it, within a byte bound. An object that becomes referenced later is read
// once with a GET. A change of a referenced object (a rotation) starts a reconcile; a change of
// any other does not.
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { BackendTLSPolicy, Gateway } from '../gatewayapi/types.ts';
import { apiStatusCode } from '../providers/kubernetes/errors.ts';
import { WatchedKind } from '../providers/kubernetes/watch.ts';

export interface ReferencedObjectsOptions {
  kubeConfig: KubeConfig;
  logger: Logger;
  /** A referenced object changed, appeared or went away (after the first list). */
  onChange: () => void;
}

/** What differs between kinds. */
export interface ReferencedKind<W extends KubernetesObject, T> {
  /** "Secret", "ConfigMap": in logs. */
  kind: string;
  /** Collection path for the watch, e.g. "/api/v1/secrets". */
  path: string;
  labelSelector?: string;
  fieldSelector?: string;
  list: () => Promise<{ items: W[]; metadata?: { resourceVersion?: string } }>;
  /** The live object, or undefined when it is gone. */
  read: (namespace: string, name: string) => Promise<W>;
  /** Drops the object's data in place (the cache keeps metadata only). */
  stripData: (obj: W) => void;
  /** The snapshot form of the object and the bytes of data it holds. */
  snapshot: (namespace: string, name: string, obj: W) => { value: T; bytes: number };
  /** "namespace/name" of the objects `gateways` (and the BackendTLSPolicies) reference. */
  referenced: (gateways: readonly Gateway[], policies: readonly BackendTLSPolicy[]) => Set<string>;
  /** Data kept for referenced objects, at most; above it an object reads as absent. */
  maxBytes: number;
}

interface Held<T> {
  resourceVersion: string;
  value: T;
  bytes: number;
}

export class ReferencedObjects<W extends KubernetesObject, T> {
  private readonly informer: WatchedKind<W>;
  private readonly spec: ReferencedKind<W, T>;
  private readonly log: Logger;
  /** "namespace/name" of the objects referenced by the last resolve(). */
  private wanted = new Set<string>();
  private readonly held = new Map<string, Held<T>>();
  private synced = false;

  constructor(opts: ReferencedObjectsOptions, spec: ReferencedKind<W, T>) {
    this.spec = spec;
    this.log = opts.logger.child({ component: `referenced-${spec.kind.toLowerCase()}s` });
    const selector = spec.fieldSelector ?? spec.labelSelector;
    this.informer = new WatchedKind<W>({
      kubeConfig: opts.kubeConfig,
      path: spec.path,
      list: spec.list,
      ...(spec.labelSelector !== undefined ? { labelSelector: spec.labelSelector } : {}),
      ...(spec.fieldSelector !== undefined ? { fieldSelector: spec.fieldSelector } : {}),
      logger: opts.logger,
      name: `${spec.kind.toLowerCase()}s (all namespaces${selector ? `, ${selector}` : ''})`,
      onEvent: (type, obj) => {
        const key = `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
        const wanted = this.wanted.has(key);
        if (type === 'delete') this.held.delete(key);
        else if (wanted) this.keep(key, obj);
        spec.stripData(obj);
        if (wanted && this.synced) opts.onChange();
      },
      // Every event of the kind: what matters is decided per object in onEvent (a relist
      // reports its changes as events too).
      onChange: () => undefined,
    });
  }

  async start(): Promise<void> {
    await this.informer.start();
    await this.informer.synced;
    this.synced = true;
  }

  async stop(): Promise<void> {
    await this.informer.stop();
  }

  /**
   * The objects `gateways` reference, with their data, read from the API when not kept yet.
   * Others' data is dropped. One that is gone or unreadable is left out (the translator reports
   * it as not found).
   */
  async resolve(gateways: readonly Gateway[], policies: readonly BackendTLSPolicy[] = []): Promise<T[]> {
    const wanted = this.spec.referenced(gateways, policies);
    this.wanted = wanted;
    for (const key of this.held.keys()) if (!wanted.has(key)) this.held.delete(key);
    const out: T[] = [];
    for (const key of wanted) {
      const [namespace, name] = key.split('/');
      const meta = this.informer.list().find((o) => o.metadata?.namespace === namespace && o.metadata?.name === name);
      if (!meta) continue;
      let held = this.held.get(key);
      if (!held || held.resourceVersion !== meta.metadata?.resourceVersion) {
        const live = await this.spec.read(namespace, name).catch((err: unknown) => {
          if (apiStatusCode(err) === 404) return undefined;
          throw err;
        });
        if (!live) continue;
        held = this.keep(key, live) ?? undefined;
        if (!held) continue;
      }
      out.push(held.value);
    }
    return out;
  }

  private keep(key: string, obj: W): Held<T> | null {
    if (!this.wanted.has(key)) return null;
    const [namespace, name] = key.split('/');
    const { value, bytes } = this.spec.snapshot(namespace, name, obj);
    const others = [...this.held].reduce((n, [k, h]) => (k === key ? n : n + h.bytes), 0);
    if (others + bytes > this.spec.maxBytes) {
      const kind = this.spec.kind;
      this.log.warn({ event: `${kind.toLowerCase()}-not-kept`, object: key, bytes }, `referenced ${kind}s exceed ${this.spec.maxBytes} bytes; ${kind} not kept`);
      this.held.delete(key);
      return null;
    }
    const held: Held<T> = { resourceVersion: obj.metadata?.resourceVersion ?? '', value, bytes };
    this.held.set(key, held);
    return held;
  }
}
