// What each verb does to the store, following the apiserver's generic registry: server-managed
// metadata (uid, creationTimestamp, generation, resourceVersion), optimistic concurrency, the status
// subresource split, finalizers and no-op writes. No admission, no defaulting, no schema
// validation beyond object names.
import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import YAML from 'yaml';
import { isDnsSubdomain, isPlainObject, objectKey, timestamp, type KubeObject, type StoredObject } from './objects.ts';
import { jsonPatch, mergePatch } from './patch.ts';
import type { Resource } from './resources.ts';
import { parseFieldSelector, parseLabelSelector } from './selectors.ts';
import { ApiError, alreadyExists, badRequest, conflict, continueExpired, internalError, invalid, notFound, tooLargeResourceVersion } from './status.ts';
import type { Store } from './store.ts';

export const PatchType = {
  Json: 'application/json-patch+json',
  Merge: 'application/merge-patch+json',
  /** Served as a JSON merge patch (lists replaced, no `$patch` directives). */
  Strategic: 'application/strategic-merge-patch+json',
  /** Server-side apply, served as create-or-merge-patch: no field ownership, no conflicts, no pruning. */
  Apply: 'application/apply-patch+yaml',
} as const;

export interface WriteOptions {
  dryRun?: boolean;
}

export interface ListOptions {
  labelSelector?: string | null;
  fieldSelector?: string | null;
  limit?: number;
  continue?: string | null;
  resourceVersion?: string | null;
  resourceVersionMatch?: string | null;
}

export interface ListResult {
  items: StoredObject[];
  resourceVersion: string;
  continue?: string;
  remainingItemCount?: number;
}

export interface DeleteResult {
  object: StoredObject;
  /** False when finalizers hold the object (it now carries a deletionTimestamp). */
  deleted: boolean;
}

type Subresource = '' | 'status';

/** Drops `undefined` members and shares nothing with the input, so stored objects compare structurally. */
function normalize<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}

/** What `metadata.generation` tracks: everything but metadata (and status when it is a subresource). */
function generationContent(r: Resource, o: KubeObject): Record<string, unknown> {
  const { metadata: _m, apiVersion: _a, kind: _k, ...rest } = o;
  if (r.status) delete rest.status;
  return rest;
}

function parseResourceVersion(v: string, what = 'resourceVersion'): number {
  if (!/^\d+$/.test(v)) throw badRequest(`${what}: Invalid value: ${JSON.stringify(v)}: must be a non-negative integer`);
  return Number(v);
}

interface ContinueToken {
  rv: number;
  start: string;
}

function encodeContinue(t: ContinueToken): string {
  return Buffer.from(JSON.stringify({ v: 'meta.k8s.io/v1', rv: t.rv, start: t.start })).toString('base64url');
}

function decodeContinue(s: string): ContinueToken {
  try {
    const t = JSON.parse(Buffer.from(s, 'base64url').toString()) as { rv?: unknown; start?: unknown };
    if (typeof t.rv === 'number' && typeof t.start === 'string') return { rv: t.rv, start: t.start };
  } catch {
    // fall through to the apiserver's answer for an unreadable token
  }
  throw badRequest('continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)');
}

// generateName suffixes: the apiserver's alphabet (no vowels, no confusable digits), but from a
// counter rather than randomness so test runs name objects identically.
const SUFFIX_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';

export class Registry {
  readonly store: Store;
  private names = 0;

  constructor(store: Store) {
    this.store = store;
  }

  private nextSuffix(): string {
    let n = (this.names++ * 7919 + 12345) % SUFFIX_ALPHABET.length ** 5;
    let s = '';
    for (let i = 0; i < 5; i++) {
      s += SUFFIX_ALPHABET[n % SUFFIX_ALPHABET.length];
      n = Math.floor(n / SUFFIX_ALPHABET.length);
    }
    return s;
  }

  get(r: Resource, ns: string | undefined, name: string): StoredObject {
    const o = this.store.get(r.storageKey, ns, name);
    if (!o) throw notFound(r, name);
    return o;
  }

  list(r: Resource, ns: string | undefined, opts: ListOptions): ListResult {
    const labels = parseLabelSelector(opts.labelSelector);
    const fields = parseFieldSelector(opts.fieldSelector, r.fields);
    let rv = this.store.currentRv();
    let start: string | undefined;
    let items: StoredObject[];
    if (opts.continue) {
      ({ rv, start } = decodeContinue(opts.continue));
      try {
        items = this.store.listAt(r.storageKey, rv, ns);
      } catch (e) {
        throw e instanceof ApiError && e.code === 410 ? continueExpired() : e;
      }
    } else if (!opts.resourceVersion || opts.resourceVersion === '0') {
      items = this.store.list(r.storageKey, ns);
    } else {
      const asked = parseResourceVersion(opts.resourceVersion);
      if (opts.resourceVersionMatch === 'Exact') {
        items = this.store.listAt(r.storageKey, asked, ns);
        rv = asked;
      } else {
        // NotOlderThan (the default): the current state satisfies any version up to now.
        if (asked > rv) throw tooLargeResourceVersion(asked, rv);
        items = this.store.list(r.storageKey, ns);
      }
    }
    items = items.filter((o) => labels(o) && fields(o));
    if (start !== undefined) items = items.filter((o) => objectKey(o.metadata.namespace, o.metadata.name) > start);
    const result: ListResult = { items, resourceVersion: String(rv) };
    const limit = opts.limit ?? 0;
    if (limit > 0 && items.length > limit) {
      result.items = items.slice(0, limit);
      const last = result.items[limit - 1].metadata;
      result.continue = encodeContinue({ rv, start: objectKey(last.namespace, last.name) });
      result.remainingItemCount = items.length - limit;
    }
    return result;
  }

  /** Checks apiVersion/kind/namespace of a request body against the URL, and fills them in. */
  private adopt(r: Resource, ns: string | undefined, body: unknown): KubeObject {
    if (!isPlainObject(body)) throw badRequest('the body of the request must be a JSON object');
    const obj = normalize(body) as KubeObject;
    if (obj.apiVersion !== undefined && obj.apiVersion !== r.apiVersion) {
      throw badRequest(`the API version in the data (${String(obj.apiVersion)}) does not match the expected API version (${r.apiVersion})`);
    }
    if (obj.kind !== undefined && obj.kind !== r.kind) {
      throw badRequest(`the kind in the data (${String(obj.kind)}) does not match the expected kind (${r.kind})`);
    }
    obj.apiVersion = r.apiVersion;
    obj.kind = r.kind;
    const meta = (obj.metadata = isPlainObject(obj.metadata) ? obj.metadata : {});
    if (r.namespaced) {
      if (meta.namespace && meta.namespace !== ns) {
        throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
      }
      meta.namespace = ns;
    } else delete meta.namespace;
    return obj;
  }

  create(r: Resource, ns: string | undefined, body: unknown, opts: WriteOptions = {}): StoredObject {
    const obj = this.adopt(r, ns, body);
    const meta = obj.metadata!;
    if (meta.resourceVersion) throw internalError('resourceVersion should not be set on objects to be created');
    if (!meta.name) {
      if (!meta.generateName) throw invalid(r, '', 'metadata.name', 'Required value: name or generateName is required');
      do meta.name = meta.generateName + this.nextSuffix();
      while (this.store.get(r.storageKey, ns, meta.name));
    }
    const name = meta.name;
    if (!isDnsSubdomain(name)) {
      throw invalid(r, name, 'metadata.name', `Invalid value: ${JSON.stringify(name)}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character`);
    }
    if (this.store.get(r.storageKey, ns, name)) throw alreadyExists(r, name);
    meta.uid = randomUUID();
    meta.creationTimestamp = timestamp();
    meta.generation = 1;
    delete meta.deletionTimestamp;
    delete meta.deletionGracePeriodSeconds;
    // The apiserver resets status on create for kinds with a status subresource.
    if (r.status) delete obj.status;
    r.prepare?.(obj);
    const stored = normalize(obj) as StoredObject;
    if (opts.dryRun) return stored;
    return this.store.commit(r.storageKey, 'ADDED', stored);
  }

  /** The object an update of `existing` with `body` stores (before the resourceVersion bump). */
  private prepareUpdate(r: Resource, existing: StoredObject, body: unknown, sub: Subresource): StoredObject {
    const ns = existing.metadata.namespace;
    const obj = this.adopt(r, ns, body);
    const meta = obj.metadata!;
    const name = existing.metadata.name;
    // As the apiserver: a body without a name does not match the URL either.
    if (meta.name !== name) {
      throw badRequest(`the name of the object (${String(meta.name ?? '')}) does not match the name on the URL (${name})`);
    }
    if (meta.resourceVersion && meta.resourceVersion !== existing.metadata.resourceVersion) throw conflict(r, name);
    if (meta.uid && meta.uid !== existing.metadata.uid) {
      throw new ApiError(409, 'Conflict', `Precondition failed: UID in precondition: ${meta.uid}, UID in object meta: ${existing.metadata.uid}`);
    }
    let next: KubeObject;
    if (sub === 'status') {
      next = normalize(existing) as KubeObject;
      if (obj.status === undefined) delete next.status;
      else next.status = obj.status;
    } else {
      next = obj;
      const m = next.metadata!;
      m.name = name;
      m.uid = existing.metadata.uid;
      m.creationTimestamp = existing.metadata.creationTimestamp;
      for (const k of ['deletionTimestamp', 'deletionGracePeriodSeconds'] as const) {
        if (existing.metadata[k] === undefined) delete m[k];
        else m[k] = existing.metadata[k] as never;
      }
      if (r.status) {
        if (existing.status === undefined) delete next.status;
        else next.status = existing.status;
      }
      r.prepare?.(next);
      if (existing.metadata.deletionTimestamp) {
        const had = new Set(existing.metadata.finalizers ?? []);
        if ((m.finalizers ?? []).some((f) => !had.has(f))) {
          throw invalid(r, name, 'metadata.finalizers', 'Forbidden: no new finalizers can be added if the object is being deleted');
        }
      }
      const gen = existing.metadata.generation ?? 0;
      const changed = !isDeepStrictEqual(generationContent(r, normalize(next)), generationContent(r, existing));
      m.generation = changed ? gen + 1 : gen;
    }
    next.metadata!.resourceVersion = existing.metadata.resourceVersion;
    return normalize(next) as StoredObject;
  }

  /** Stores an update; a write that changes nothing is not a write (no new resourceVersion, no event). */
  private commitUpdate(r: Resource, existing: StoredObject, next: StoredObject, opts: WriteOptions): StoredObject {
    if (isDeepStrictEqual(next, normalize(existing))) return existing;
    if (opts.dryRun) return next;
    // The last finalizer gone from an object being deleted: the deletion completes.
    const done = next.metadata.deletionTimestamp && !(next.metadata.finalizers ?? []).length;
    return this.store.commit(r.storageKey, done ? 'DELETED' : 'MODIFIED', next, existing);
  }

  update(r: Resource, ns: string | undefined, name: string, body: unknown, sub: Subresource, opts: WriteOptions = {}): StoredObject {
    const existing = this.get(r, ns, name);
    return this.commitUpdate(r, existing, this.prepareUpdate(r, existing, body, sub), opts);
  }

  patch(
    r: Resource,
    ns: string | undefined,
    name: string,
    contentType: string,
    raw: string,
    sub: Subresource,
    opts: WriteOptions & { fieldManager?: string | null } = {},
  ): { object: StoredObject; created: boolean } {
    const type = contentType.split(';')[0].trim().toLowerCase();
    let patch: unknown;
    try {
      patch = type === PatchType.Apply ? YAML.parse(raw) : JSON.parse(raw);
    } catch (e) {
      throw badRequest(`error decoding patch: ${(e as Error).message}`);
    }
    if (type === PatchType.Apply) return this.apply(r, ns, name, patch, sub, opts);
    const existing = this.get(r, ns, name);
    let patched: unknown;
    if (type === PatchType.Json) patched = jsonPatch(normalize(existing), patch);
    else if (type === PatchType.Merge || type === PatchType.Strategic) {
      if (!isPlainObject(patch)) throw badRequest('merge patch must be a JSON object');
      patched = mergePatch(normalize(existing), patch);
    } else {
      throw new ApiError(
        415,
        'UnsupportedMediaType',
        `the body of the request was in an unknown format - accepted media types include: ${Object.values(PatchType).join(', ')}`,
      );
    }
    return { object: this.commitUpdate(r, existing, this.prepareUpdate(r, existing, patched, sub), opts), created: false };
  }

  private apply(
    r: Resource,
    ns: string | undefined,
    name: string,
    body: unknown,
    sub: Subresource,
    opts: WriteOptions & { fieldManager?: string | null },
  ): { object: StoredObject; created: boolean } {
    if (!opts.fieldManager) {
      throw new ApiError(422, 'Invalid', 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch');
    }
    if (!isPlainObject(body)) throw badRequest('apply patch must be an object');
    if (!body.apiVersion || !body.kind) throw badRequest('apply patch must set apiVersion and kind');
    const meta = isPlainObject(body.metadata) ? body.metadata : {};
    if (meta.name !== undefined && meta.name !== name) {
      throw badRequest(`the name of the object (${String(meta.name)}) does not match the name on the URL (${name})`);
    }
    const existing = this.store.get(r.storageKey, ns, name);
    if (!existing) {
      if (sub === 'status') throw notFound(r, name);
      return { object: this.create(r, ns, { ...body, metadata: { ...meta, name } }, opts), created: true };
    }
    const merged = mergePatch(normalize(existing), body);
    return { object: this.commitUpdate(r, existing, this.prepareUpdate(r, existing, merged, sub), opts), created: false };
  }

  delete(r: Resource, ns: string | undefined, name: string, body: unknown, opts: WriteOptions = {}): DeleteResult {
    const existing = this.get(r, ns, name);
    const pre = isPlainObject(body) && isPlainObject(body.preconditions) ? body.preconditions : {};
    if (pre.resourceVersion && pre.resourceVersion !== existing.metadata.resourceVersion) {
      throw new ApiError(
        409,
        'Conflict',
        `Operation cannot be fulfilled on ${r.plural} "${name}": the ResourceVersion in the precondition (${String(pre.resourceVersion)}) does not match the ResourceVersion in record (${existing.metadata.resourceVersion}). The object might have been modified`,
      );
    }
    if (pre.uid && pre.uid !== existing.metadata.uid) {
      throw new ApiError(
        409,
        'Conflict',
        `Operation cannot be fulfilled on ${r.plural} "${name}": Precondition failed: UID in precondition: ${String(pre.uid)}, UID in object meta: ${existing.metadata.uid}`,
      );
    }
    if ((existing.metadata.finalizers ?? []).length > 0) {
      if (existing.metadata.deletionTimestamp) return { object: existing, deleted: false };
      const next = normalize(existing);
      next.metadata.deletionTimestamp = timestamp();
      next.metadata.deletionGracePeriodSeconds = 0;
      // The apiserver bumps generation when it marks an object for deletion.
      if (next.metadata.generation !== undefined) next.metadata.generation++;
      const object = opts.dryRun ? next : this.store.commit(r.storageKey, 'MODIFIED', next, existing);
      return { object, deleted: false };
    }
    const object = opts.dryRun ? existing : this.store.commit(r.storageKey, 'DELETED', normalize(existing), existing);
    return { object, deleted: true };
  }

  deleteCollection(r: Resource, ns: string | undefined, list: ListOptions, opts: WriteOptions = {}): StoredObject[] {
    const { items } = this.list(r, ns, { labelSelector: list.labelSelector, fieldSelector: list.fieldSelector });
    return items.map((o) => this.delete(r, o.metadata.namespace, o.metadata.name, undefined, opts).object);
  }

  /**
   * Test control: stores `obj` as given (status included, finalizers ignored), creating or
   * replacing. Server-managed metadata the caller leaves out is filled in as the API would.
   */
  set(r: Resource, input: KubeObject): StoredObject {
    const obj = normalize(input);
    obj.apiVersion = r.apiVersion;
    obj.kind = r.kind;
    const meta = (obj.metadata = isPlainObject(obj.metadata) ? obj.metadata : {});
    if (!meta.name) throw new Error(`set(): ${r.kind} needs metadata.name`);
    if (r.namespaced) meta.namespace ??= 'default';
    else delete meta.namespace;
    delete meta.resourceVersion;
    const existing = this.store.get(r.storageKey, meta.namespace, meta.name);
    if (!existing) {
      meta.uid ??= randomUUID();
      meta.creationTimestamp ??= timestamp();
      meta.generation ??= 1;
      return this.store.commit(r.storageKey, 'ADDED', obj as StoredObject);
    }
    meta.uid ??= existing.metadata.uid;
    meta.creationTimestamp ??= existing.metadata.creationTimestamp;
    if (meta.generation === undefined) {
      const changed = !isDeepStrictEqual(generationContent(r, obj), generationContent(r, existing));
      meta.generation = (existing.metadata.generation ?? 0) + (changed ? 1 : 0);
    }
    meta.resourceVersion = existing.metadata.resourceVersion;
    if (isDeepStrictEqual(obj, normalize(existing))) return existing;
    return this.store.commit(r.storageKey, 'MODIFIED', obj as StoredObject, existing);
  }

  /** Test control: deletes at once, finalizers or not. False when there was nothing to delete. */
  remove(r: Resource, ns: string | undefined, name: string): boolean {
    const existing = this.store.get(r.storageKey, ns, name);
    if (!existing) return false;
    this.store.commit(r.storageKey, 'DELETED', normalize(existing), existing);
    return true;
  }
}
