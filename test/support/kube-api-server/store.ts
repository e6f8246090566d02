// The object store: current objects, one global resourceVersion counter (as etcd's revision) and a
// bounded history of changes. The history serves watches from a resourceVersion and consistent
// list snapshots at an older resourceVersion (paginated lists); anything older than the history is
// "compacted" and answers 410 Expired, as a real apiserver does after an etcd compaction.
import { objectKey, type StoredObject } from './objects.ts';
import { tooLargeResourceVersion, tooOldResourceVersion } from './status.ts';

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface StoreEvent {
  rv: number;
  storageKey: string;
  type: EventType;
  /** The object after the change; for DELETED its last state, carrying the deletion's resourceVersion. */
  object: StoredObject;
  /** The object before the change (absent for ADDED). */
  prev?: StoredObject;
}

export type StoreListener = (event: StoreEvent) => void;

function byKey(a: StoredObject, b: StoredObject): number {
  const ka = objectKey(a.metadata.namespace, a.metadata.name);
  const kb = objectKey(b.metadata.namespace, b.metadata.name);
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

export class Store {
  readonly historyLimit: number;
  private rv: number;
  /** Every event with rv > compactedRv is still in `history`. */
  private compactedRv: number;
  private history: StoreEvent[] = [];
  private readonly data = new Map<string, Map<string, StoredObject>>();
  private readonly listeners = new Set<StoreListener>();

  constructor(historyLimit: number, startRv: number) {
    this.historyLimit = historyLimit;
    this.rv = startRv;
    this.compactedRv = startRv;
  }

  currentRv(): number {
    return this.rv;
  }

  oldestRv(): number {
    return this.compactedRv;
  }

  private bucket(storageKey: string): Map<string, StoredObject> {
    let b = this.data.get(storageKey);
    if (!b) this.data.set(storageKey, (b = new Map()));
    return b;
  }

  /** The stored object itself: callers must not mutate it. */
  get(storageKey: string, namespace: string | undefined, name: string): StoredObject | undefined {
    return this.data.get(storageKey)?.get(objectKey(namespace, name));
  }

  /** Current objects sorted by namespace then name, as etcd returns them. */
  list(storageKey: string, namespace?: string): StoredObject[] {
    const all = [...(this.data.get(storageKey)?.values() ?? [])];
    return all.filter((o) => namespace === undefined || o.metadata.namespace === namespace).sort(byKey);
  }

  /** Objects as they were at `rv`, rebuilt by undoing the newer history. */
  listAt(storageKey: string, rv: number, namespace?: string): StoredObject[] {
    if (rv > this.rv) throw tooLargeResourceVersion(rv, this.rv);
    if (rv < this.compactedRv) throw tooOldResourceVersion(rv, this.compactedRv);
    const state = new Map(this.data.get(storageKey) ?? []);
    for (let i = this.history.length - 1; i >= 0 && this.history[i].rv > rv; i--) {
      const ev = this.history[i];
      if (ev.storageKey !== storageKey) continue;
      const key = objectKey(ev.object.metadata.namespace, ev.object.metadata.name);
      if (ev.prev) state.set(key, ev.prev);
      else state.delete(key);
    }
    return [...state.values()].filter((o) => namespace === undefined || o.metadata.namespace === namespace).sort(byKey);
  }

  /** Events of one storage after `rv`; throws 410 Expired when some were compacted away. */
  eventsSince(storageKey: string, rv: number): StoreEvent[] {
    if (rv < this.compactedRv) throw tooOldResourceVersion(rv, this.compactedRv);
    if (rv > this.rv) throw tooLargeResourceVersion(rv, this.rv);
    return this.history.filter((e) => e.rv > rv && e.storageKey === storageKey);
  }

  /** Records a change under the next resourceVersion and tells every listener, synchronously. */
  commit(storageKey: string, type: EventType, next: StoredObject, prev?: StoredObject): StoredObject {
    const rv = ++this.rv;
    const object: StoredObject = { ...next, metadata: { ...next.metadata, resourceVersion: String(rv) } };
    Object.freeze(object);
    const key = objectKey(object.metadata.namespace, object.metadata.name);
    if (type === 'DELETED') this.bucket(storageKey).delete(key);
    else this.bucket(storageKey).set(key, object);
    const event: StoreEvent = { rv, storageKey, type, object, prev };
    this.history.push(event);
    while (this.history.length > this.historyLimit) this.compactedRv = this.history.shift()!.rv;
    for (const l of [...this.listeners]) l(event);
    return object;
  }

  /** Forgets all history: a watch or continue token from any older resourceVersion gets 410. */
  compact(): void {
    this.history = [];
    this.compactedRv = this.rv;
  }

  subscribe(listener: StoreListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
