// The operator's one status writer. Reconciles say what the status of an object should be
// (`set`); the writer makes the API object say so, asynchronously and level-based: per object
// only the latest desired status is kept (a map, never a queue of every intermediate state), a
// bounded number of writes run at once, and a write happens only when the object's status
// differs from what is desired. Conditions whose status, reason and message did not change keep
// the lastTransitionTime the API object has, so an unchanged verdict never makes a write.
//
// HTTPRoute status is shared with other controllers: only the `status.parents` entries whose
// controllerName is ours are written, keyed by parentRef; every other entry stays as it is,
// where it is. GatewayClass and Gateway status (of our classes) is ours entirely.
//
// Writes go through the status subresource with the object's resourceVersion: a concurrent
// writer makes the write fail with 409 and it is redone on the re-read object.
import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { Counter } from 'prom-client';
import { mergeConditions } from '../gatewayapi/conditions.ts';
import { CONTROLLER_NAME } from '../gatewayapi/features.ts';
import type { GatewayClassStatus, GatewayStatus, HTTPRouteStatus, PolicyAncestorStatus, PolicyStatus, RouteParentStatus } from '../gatewayapi/status.ts';
import { GATEWAY_GROUP, type Condition, type ParentReference } from '../gatewayapi/types.ts';
import { apiStatusCode } from '../providers/kubernetes/errors.ts';

export type StatusKind = 'GatewayClass' | 'Gateway' | 'HTTPRoute' | 'BackendTLSPolicy';

export interface DesiredStatus {
  GatewayClass: GatewayClassStatus;
  Gateway: GatewayStatus;
  /** Our entries only: entries of other controllers given here are ignored. */
  HTTPRoute: HTTPRouteStatus;
  BackendTLSPolicy: PolicyStatus;
}

/** `written`: a status write succeeded; `noop`: the object already had the desired status; `conflict`: a 409 (re-read and retried); `failed`: gave up for now (retried later); `gone`: the object no longer exists (dropped). */
export type WriteOutcome = 'written' | 'noop' | 'conflict' | 'failed' | 'gone';

export interface StatusWriterOptions {
  kubeConfig: KubeConfig;
  logger: Logger;
  /** Counted by outcome, label `outcome`. */
  writes?: Counter<'outcome'>;
  /** Writes in flight at once. Default 4. */
  concurrency?: number;
  /** Attempts per write (409s and transient errors) before giving up until the retry timer. Default 5. */
  attempts?: number;
  /** First backoff between attempts; doubles each time. Default 50 ms. */
  backoffMs?: number;
  /** Delay before an object whose write gave up is tried again; doubles up to 30 s. Default 1 s. */
  retryMs?: number;
  /** Clock for lastTransitionTime of conditions that changed. */
  now?: () => Date;
}

interface KindInfo {
  plural: string;
  namespaced: boolean;
}

const KINDS: Record<StatusKind, KindInfo> = {
  GatewayClass: { plural: 'gatewayclasses', namespaced: false },
  Gateway: { plural: 'gateways', namespaced: true },
  HTTPRoute: { plural: 'httproutes', namespaced: true },
  BackendTLSPolicy: { plural: 'backendtlspolicies', namespaced: true },
};

const MAX_RETRY_MS = 30_000;

interface Entry {
  kind: StatusKind;
  namespace: string | undefined;
  name: string;
  desired: DesiredStatus[StatusKind];
  /** Canonical JSON of `desired`. */
  canon: string;
  /** Canonical JSON of the desired status last confirmed on the API object. */
  confirmed?: string;
  /** uid of the object `confirmed` was confirmed on. */
  uid?: string;
  retryMs: number;
  retryTimer?: NodeJS.Timeout;
}

interface LiveObject {
  metadata: { name: string; namespace?: string; resourceVersion?: string; generation?: number };
  status?: Record<string, unknown>;
  [key: string]: unknown;
}

export class StatusWriter {
  private readonly api: CustomObjectsApi;
  private readonly log: Logger;
  private readonly opts: StatusWriterOptions;
  private readonly concurrency: number;
  private readonly entries = new Map<string, Entry>();
  /** Keys waiting for a worker, oldest first. */
  private readonly queued = new Set<string>();
  private readonly inFlight = new Set<string>();
  private idle: (() => void)[] = [];
  private stopped = false;
  /** Outcome counts since start (also exported through `writes` when given). */
  readonly counts: Record<WriteOutcome, number> = { written: 0, noop: 0, conflict: 0, failed: 0, gone: 0 };

  constructor(opts: StatusWriterOptions) {
    this.opts = opts;
    this.api = opts.kubeConfig.makeApiClient(CustomObjectsApi);
    this.log = opts.logger.child({ component: 'status-writer' });
    this.concurrency = Math.max(1, opts.concurrency ?? 4);
  }

  /**
   * Records the latest desired status of an object; it is written asynchronously. `uid`, when
   * known, tells a new object under an old name: what was confirmed on the old one does not count.
   */
  set<K extends StatusKind>(kind: K, namespace: string | undefined, name: string, desired: DesiredStatus[K], uid?: string): void {
    if (this.stopped) return;
    const key = keyOf(kind, namespace, name);
    let entry = this.entries.get(key);
    // A frozen status handed in again (the translator's and the operator's route statuses for an
    // unchanged route) cannot have changed: its canonical form is not computed again, which for
    // thousands of routes was most of a reconcile's status work (about 20 µs a status).
    const canon = entry && entry.desired === desired && Object.isFrozen(desired) ? entry.canon : canonical(desired);
    if (!entry) {
      entry = { kind, namespace: KINDS[kind].namespaced ? namespace : undefined, name, desired, canon, retryMs: this.opts.retryMs ?? 1000 };
      this.entries.set(key, entry);
    } else {
      entry.desired = desired;
      entry.canon = canon;
    }
    if (uid !== undefined && entry.uid !== uid) {
      if (entry.uid !== undefined) delete entry.confirmed;
      entry.uid = uid;
    }
    // Already confirmed on the object: nothing to do, not even a read.
    if (entry.confirmed === canon && !this.inFlight.has(key)) {
      this.queued.delete(key);
      this.count('noop');
      this.settle();
      return;
    }
    this.enqueue(key);
  }

  /**
   * Forgets what was confirmed for an object, so the next `set` (or now, when a desired status is
   * recorded) re-reads it: for when someone else changed its status.
   */
  recheck(kind: StatusKind, namespace: string | undefined, name: string): void {
    const key = keyOf(kind, namespace, name);
    const entry = this.entries.get(key);
    if (!entry) return;
    delete entry.confirmed;
    this.enqueue(key);
  }

  /** Drops an object (it was deleted, or is no longer ours). */
  forget(kind: StatusKind, namespace: string | undefined, name: string): void {
    const key = keyOf(kind, namespace, name);
    const entry = this.entries.get(key);
    if (entry?.retryTimer) clearTimeout(entry.retryTimer);
    this.entries.delete(key);
    this.queued.delete(key);
    this.settle();
  }

  /**
   * Resolves when every desired status recorded so far has been written or found already so
   * (objects whose write gave up wait for their retry timer and do not hold this up).
   */
  flush(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  /** Stops writing: no new writes start; writes in flight finish. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const entry of this.entries.values()) if (entry.retryTimer) clearTimeout(entry.retryTimer);
    this.queued.clear();
    await this.flush();
  }

  private enqueue(key: string): void {
    this.queued.add(key);
    this.pump();
  }

  private pump(): void {
    for (const key of this.queued) {
      if (this.stopped || this.inFlight.size >= this.concurrency) break;
      if (this.inFlight.has(key)) continue; // picked up again once the write in flight ends
      this.queued.delete(key);
      this.inFlight.add(key);
      void this.process(key).finally(() => {
        this.inFlight.delete(key);
        this.pump();
        this.settle();
      });
    }
  }

  private isIdle(): boolean {
    return this.inFlight.size === 0 && (this.queued.size === 0 || this.stopped);
  }

  private settle(): void {
    if (!this.isIdle()) return;
    const waiting = this.idle;
    this.idle = [];
    for (const resolve of waiting) resolve();
  }

  private count(outcome: WriteOutcome): void {
    this.counts[outcome]++;
    this.opts.writes?.inc({ outcome });
  }

  private async process(key: string): Promise<void> {
    const entry = this.entries.get(key);
    if (!entry) return;
    if (entry.confirmed === entry.canon) return void this.count('noop');
    const { kind, namespace, name } = entry;
    const object = namespace ? `${namespace}/${name}` : name;
    const attempts = this.opts.attempts ?? 5;
    let backoff = this.opts.backoffMs ?? 50;
    let lastError = '';
    for (let attempt = 1; attempt <= attempts && !this.stopped; attempt++) {
      try {
        const live = await this.read(entry);
        // The latest desired status, taken after the read: a `set` during the read is not written twice.
        const { desired, canon } = entry;
        const next = this.nextStatus(kind, live, desired);
        if (canonical(next) === canonical(live.status ?? {})) {
          this.count('noop');
        } else {
          await this.write(entry, { ...live, status: next });
          this.count('written');
          this.log.debug({ event: 'status-written', kind, object, generation: live.metadata.generation }, 'status written');
        }
        if (this.entries.get(key) === entry) {
          entry.confirmed = canon;
          // Superseded by a `set` during the write: the entry is queued again and compared then.
          entry.retryMs = this.opts.retryMs ?? 1000;
        }
        return;
      } catch (err) {
        const code = apiStatusCode(err);
        if (code === 404) {
          this.count('gone');
          this.log.debug({ event: 'status-object-gone', kind, object }, 'object gone; status dropped');
          if (this.entries.get(key) === entry) this.entries.delete(key);
          return;
        }
        if (code === 409) this.count('conflict');
        lastError = (err as Error).message;
        // Client errors other than a conflict will not get better by retrying the same write.
        if (code !== undefined && code >= 400 && code < 500 && code !== 409 && code !== 429) break;
        if (attempt < attempts) await sleep(backoff);
        backoff *= 2;
      }
    }
    if (this.stopped) return;
    this.count('failed');
    this.log.warn({ event: 'status-write-failed', kind, object, err: lastError, retryInMs: entry.retryMs }, 'could not write status; will retry');
    this.scheduleRetry(key, entry);
  }

  private scheduleRetry(key: string, entry: Entry): void {
    if (entry.retryTimer) clearTimeout(entry.retryTimer);
    entry.retryTimer = setTimeout(() => {
      delete entry.retryTimer;
      if (this.entries.get(key) === entry && entry.confirmed !== entry.canon) this.enqueue(key);
    }, entry.retryMs);
    entry.retryTimer.unref();
    entry.retryMs = Math.min(entry.retryMs * 2, MAX_RETRY_MS);
  }

  private async read(entry: Entry): Promise<LiveObject> {
    const { plural } = KINDS[entry.kind];
    const base = { group: GATEWAY_GROUP, version: 'v1', plural, name: entry.name };
    return (entry.namespace
      ? await this.api.getNamespacedCustomObject({ ...base, namespace: entry.namespace })
      : await this.api.getClusterCustomObject(base)) as LiveObject;
  }

  private async write(entry: Entry, body: LiveObject): Promise<void> {
    const { plural } = KINDS[entry.kind];
    const base = { group: GATEWAY_GROUP, version: 'v1', plural, name: entry.name, body };
    if (entry.namespace) await this.api.replaceNamespacedCustomObjectStatus({ ...base, namespace: entry.namespace });
    else await this.api.replaceClusterCustomObjectStatus(base);
  }

  /** The status to write: the desired one, with lastTransitionTimes merged against the live object's conditions. */
  private nextStatus(kind: StatusKind, live: LiveObject, desired: DesiredStatus[StatusKind]): Record<string, unknown> {
    const now = rfc3339(this.opts.now?.() ?? new Date());
    const before = (live.status ?? {}) as Record<string, unknown>;
    if (kind === 'GatewayClass') {
      const d = desired as GatewayClassStatus;
      return { ...d, conditions: mergeConditions(conditionsOf(before), d.conditions, now) } as unknown as Record<string, unknown>;
    }
    if (kind === 'Gateway') {
      const d = desired as GatewayStatus;
      const liveListeners = Array.isArray(before.listeners) ? (before.listeners as { name?: string; conditions?: Condition[] }[]) : [];
      return {
        ...d,
        conditions: mergeConditions(conditionsOf(before), d.conditions, now),
        listeners: d.listeners.map((l) => ({ ...l, conditions: mergeConditions(liveListeners.find((x) => x.name === l.name)?.conditions, l.conditions, now) })),
      } as unknown as Record<string, unknown>;
    }
    if (kind === 'BackendTLSPolicy') {
      const ancestors = mergePolicyAncestors(Array.isArray(before.ancestors) ? (before.ancestors as PolicyAncestorStatus[]) : [], (desired as PolicyStatus).ancestors, live.metadata.namespace ?? '', now);
      return { ...before, ancestors };
    }
    const routeNamespace = live.metadata.namespace ?? '';
    const parents = mergeRouteParents(Array.isArray(before.parents) ? (before.parents as RouteParentStatus[]) : [], (desired as HTTPRouteStatus).parents, routeNamespace, now);
    return { ...before, parents };
  }
}

/**
 * A policy's ancestors after writing our entries: like a route's parents (other controllers'
 * entries stay, ours are exactly the desired ones), an ancestorRef read as a parentRef.
 */
export function mergePolicyAncestors(live: readonly PolicyAncestorStatus[], desired: readonly PolicyAncestorStatus[], policyNamespace: string, now: string): PolicyAncestorStatus[] {
  const asParent = (a: PolicyAncestorStatus): RouteParentStatus => ({ parentRef: a.ancestorRef, controllerName: a.controllerName, conditions: a.conditions });
  return mergeRouteParents(live.map(asParent), desired.map(asParent), policyNamespace, now).map((p) => ({ ancestorRef: p.parentRef, controllerName: p.controllerName, conditions: p.conditions }));
}

/**
 * The route's parents after writing our entries: other controllers' entries stay in place; ours
 * are replaced in place by the desired entry for the same parentRef, removed when none is
 * desired, and desired entries not present yet are appended.
 */
export function mergeRouteParents(
  live: readonly RouteParentStatus[],
  desired: readonly RouteParentStatus[],
  routeNamespace: string,
  now: string,
): RouteParentStatus[] {
  const ours = desired.filter((p) => p.controllerName === CONTROLLER_NAME).map((p) => ({ ...p, parentRef: withDefaults(p.parentRef) }));
  const used = new Set<number>();
  // Every condition of our entries is ours (Programmed too: the operator aggregates the gateway
  // pods' reports), so our entry is exactly the desired one.
  const build = (want: RouteParentStatus, before: RouteParentStatus | undefined): RouteParentStatus => ({
    ...want,
    conditions: mergeConditions(before?.conditions, want.conditions, now),
  });
  const out: RouteParentStatus[] = [];
  for (const entry of live) {
    if (entry.controllerName !== CONTROLLER_NAME) {
      out.push(entry);
      continue;
    }
    const i = ours.findIndex((p, idx) => !used.has(idx) && sameParent(p.parentRef, entry.parentRef, routeNamespace));
    if (i < 0) continue; // ours, no longer desired
    used.add(i);
    out.push(build(ours[i], entry));
  }
  ours.forEach((p, i) => {
    if (!used.has(i)) out.push(build(p, undefined));
  });
  return out;
}

/** The CRD's defaults for a parentRef, spelled out so that what we write is what we read back. */
function withDefaults(ref: ParentReference): ParentReference {
  return { ...ref, group: ref.group ?? GATEWAY_GROUP, kind: ref.kind ?? 'Gateway' };
}

function sameParent(a: ParentReference, b: ParentReference, routeNamespace: string): boolean {
  return (
    (a.group ?? GATEWAY_GROUP) === (b.group ?? GATEWAY_GROUP) &&
    (a.kind ?? 'Gateway') === (b.kind ?? 'Gateway') &&
    (a.namespace ?? routeNamespace) === (b.namespace ?? routeNamespace) &&
    a.name === b.name &&
    a.sectionName === b.sectionName &&
    a.port === b.port
  );
}

/**
 * True when a watch event changed nothing but status (and server-managed metadata): the same
 * generation, labels, annotations, spec and deletion state. The operator ignores such events,
 * most of which are its own status writes.
 */
export function onlyStatusChanged(oldObj: unknown, newObj: unknown): boolean {
  const pick = (o: unknown) => {
    const obj = (o ?? {}) as { metadata?: Record<string, unknown>; spec?: unknown };
    const m = obj.metadata ?? {};
    return canonical({
      generation: m.generation ?? null,
      labels: m.labels ?? {},
      annotations: m.annotations ?? {},
      deletionTimestamp: m.deletionTimestamp ?? null,
      spec: obj.spec ?? null,
    });
  };
  return pick(oldObj) === pick(newObj);
}

function conditionsOf(status: Record<string, unknown>): Condition[] | undefined {
  return Array.isArray(status.conditions) ? (status.conditions as Condition[]) : undefined;
}

function keyOf(kind: StatusKind, namespace: string | undefined, name: string): string {
  return KINDS[kind].namespaced ? `${kind}/${namespace ?? ''}/${name}` : `${kind}//${name}`;
}

/** JSON with object keys sorted (array order kept): equal for values that differ only in key order. */
export function canonical(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
    const sorted: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) sorted[k] = (v as Record<string, unknown>)[k];
    return sorted;
  });
}

/** metav1.Time: RFC 3339 with whole seconds. */
function rfc3339(d: Date): string {
  return d.toISOString().replace(/\.\d+Z$/, 'Z');
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
