// An in-process Kubernetes API server for tests. No kube-apiserver can run on the machines this
// project is built and tested on, so Kubernetes-facing code is tested through the real
// @kubernetes/client-node against this: the REST paths, verbs, Status errors, resourceVersion and
// generation rules, the status subresource and watch protocol (replay, 410 Expired, bookmarks,
// selectors, timeouts) of a real apiserver, over an in-memory store. See docs/testing.md for what
// it leaves out.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { clone, type KubeObject, type StoredObject } from './kube-api-server/objects.ts';
import { Registry, type ListOptions } from './kube-api-server/registry.ts';
import { DEFAULT_RESOURCES, ResourceTable, type Resource, type ResourceDef } from './kube-api-server/resources.ts';
import { ApiError, badRequest, methodNotAllowed, pathNotFound, successStatus } from './kube-api-server/status.ts';
import { Store } from './kube-api-server/store.ts';
import { resolve, verbOf, type Route, type Verb } from './kube-api-server/routes.ts';
import { serveWatch, type OpenWatch } from './kube-api-server/watch.ts';

export type { KubeObject, StoredObject } from './kube-api-server/objects.ts';
export type { ResourceDef } from './kube-api-server/resources.ts';
export type { OpenWatch } from './kube-api-server/watch.ts';
export type { Verb } from './kube-api-server/routes.ts';
export { PatchType } from './kube-api-server/registry.ts';

export interface KubeApiServerOptions {
  /** Extra kinds besides DEFAULT_RESOURCES (a row with the same apiVersion and plural replaces one). */
  resources?: ResourceDef[];
  /** Kinds not served, as "apiVersion/kind" (e.g. a cluster whose Gateway API release lacks one). */
  omit?: string[];
  /** Events kept for watch replay and paginated lists; older resourceVersions answer 410. Default 1000. */
  historyLimit?: number;
  /** Period of BOOKMARK events on watches that allow them; 0 disables the timer (sendBookmarks() still works). Default 1000. */
  bookmarkIntervalMs?: number;
  /** First resourceVersion handed out is this plus one. Default 1000. */
  startResourceVersion?: number;
  port?: number;
  address?: string;
}

export interface RequestRecord {
  method: string;
  /** Path without query. */
  path: string;
  query: URLSearchParams;
  verb: Verb;
  /** Plural of the resource addressed, when the path addresses one. */
  resource?: string;
  namespace?: string;
  name?: string;
  subresource?: string;
}

export interface RequestFilter {
  method?: string;
  verb?: Verb;
  /** A string matches the path exactly; a RegExp is tested against it. */
  path?: string | RegExp;
  resource?: string;
  namespace?: string;
  name?: string;
}

export interface FailureSpec extends RequestFilter {
  /** How many matching requests fail. Default 1. */
  times?: number;
  /** Default 500. */
  code?: number;
  /** Default InternalError. */
  reason?: string;
  message?: string;
}

/** Selects open watches: by resource plural, and by namespace (an all-namespaces watch has none). */
export interface WatchFilter {
  resource?: string;
  namespace?: string;
}

/** An object's address for the store helpers. Namespace defaults to "default" for namespaced kinds. */
export interface ObjectRef {
  apiVersion: string;
  kind: string;
  namespace?: string;
  name: string;
}

export interface KubeApiServer {
  /** `http://127.0.0.1:PORT`. */
  url: string;
  /** A client-node KubeConfig for this server: plain HTTP, no credentials, namespace "default". */
  kubeConfig(): KubeConfig;
  close(): Promise<void>;

  /** Adds (or replaces) a served kind. */
  addResource(def: ResourceDef): void;
  /** Creates or replaces `obj` as given (status included), through the store: watchers see it. */
  set(obj: KubeObject): StoredObject;
  /** Deletes at once (finalizers ignored). False when absent. */
  remove(ref: ObjectRef): boolean;
  get(ref: ObjectRef): StoredObject | undefined;
  /** Objects of a kind, in one namespace or all, sorted by namespace and name. */
  list(apiVersion: string, kind: string, namespace?: string): StoredObject[];
  /** The latest resourceVersion handed out. */
  resourceVersion(): string;

  /** Forgets the change history: any watch or continue token from an older resourceVersion gets 410 Expired. */
  compact(): void;
  /**
   * Ends the open watches the filter selects (cleanly, as an apiserver watch timeout does;
   * `abrupt` destroys the connections mid-stream instead). Returns how many.
   */
  dropWatches(filter?: WatchFilter & { abrupt?: boolean }): number;
  /** Open watch streams. */
  watches(filter?: WatchFilter): OpenWatch[];
  /** Resolves once at least `n` watches matching the filter are open. */
  waitForWatches(n: number, filter?: WatchFilter): Promise<void>;
  /** Sends a BOOKMARK now on every open watch that allows bookmarks. */
  sendBookmarks(): void;
  /** The next `times` requests matching the spec answer a failure Status instead. */
  failNext(spec: FailureSpec): void;
  /** Every request received, oldest first. */
  readonly requests: readonly RequestRecord[];
  countRequests(filter?: RequestFilter): number;
  resetRequests(): void;
}

function matchesFilter(rec: RequestRecord, f: RequestFilter): boolean {
  if (f.method !== undefined && f.method.toUpperCase() !== rec.method) return false;
  if (f.verb !== undefined && f.verb !== rec.verb) return false;
  if (f.resource !== undefined && f.resource !== rec.resource) return false;
  if (f.namespace !== undefined && f.namespace !== rec.namespace) return false;
  if (f.name !== undefined && f.name !== rec.name) return false;
  if (typeof f.path === 'string' && f.path !== rec.path) return false;
  if (f.path instanceof RegExp && !f.path.test(rec.path)) return false;
  return true;
}

function send(res: ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolveBody, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolveBody(Buffer.concat(chunks).toString()));
    req.on('error', reject);
  });
}

function parseJson(text: string): unknown {
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch (e) {
    throw badRequest(`error decoding request body: ${(e as Error).message}`);
  }
}

function isTrue(v: string | null): boolean {
  return v === 'true' || v === '1';
}

/** A list as the apiserver returns it: built-in items without kind/apiVersion (typed lists), CRD items with them. */
function listBody(r: Resource, items: StoredObject[], meta: Record<string, unknown>): unknown {
  const out = items.map((o) => {
    if (r.crd) return withVersion(r, o);
    const { apiVersion: _a, kind: _k, ...rest } = o;
    return rest;
  });
  return { kind: r.listKind, apiVersion: r.apiVersion, metadata: meta, items: out };
}

/** The object as served under `r`'s version, apiVersion and kind first as the apiserver writes them. */
function withVersion(r: Resource, o: StoredObject): StoredObject {
  const { apiVersion: _a, kind: _k, ...rest } = o;
  return { apiVersion: r.apiVersion, kind: r.kind, ...rest };
}

export async function startKubeApiServer(opts: KubeApiServerOptions = {}): Promise<KubeApiServer> {
  const table = new ResourceTable();
  const omitted = new Set(opts.omit ?? []);
  for (const def of [...DEFAULT_RESOURCES, ...(opts.resources ?? [])]) {
    if (!omitted.has(`${def.group ? `${def.group}/` : ''}${def.version}/${def.kind}`)) table.add(def);
  }
  const store = new Store(opts.historyLimit ?? 1000, opts.startResourceVersion ?? 1000);
  const registry = new Registry(store);
  const bookmarkIntervalMs = opts.bookmarkIntervalMs ?? 1000;
  const requests: RequestRecord[] = [];
  const failures: (FailureSpec & { left: number })[] = [];
  const open = new Set<OpenWatch>();
  let waiters: { n: number; filter: WatchFilter; resolve: () => void }[] = [];
  let url = '';

  const selectWatches = (f: WatchFilter = {}) =>
    [...open].filter((w) => (f.resource === undefined || w.resource.plural === f.resource) && (f.namespace === undefined || w.namespace === f.namespace));
  const checkWaiters = () => {
    waiters = waiters.filter((w) => {
      if (selectWatches(w.filter).length < w.n) return true;
      w.resolve();
      return false;
    });
  };

  function handleResource(route: Extract<Route, { type: 'resource' }>, req: IncomingMessage, res: ServerResponse, q: URLSearchParams, text: string, path: string): void {
    const { resource: r, name, subresource } = route;
    const method = req.method ?? 'GET';
    if (subresource !== undefined && (subresource !== 'status' || !r.status)) throw pathNotFound();
    const sub = subresource === 'status' ? 'status' : '';
    // A namespaced kind addressed without a namespace is the all-namespaces collection: read-only.
    const ns = r.namespaced ? route.namespace : undefined;
    const allNamespaces = r.namespaced && ns === undefined;
    const dryRun = q.getAll('dryRun').includes('All');

    if (name === undefined) {
      const list: ListOptions = {
        labelSelector: q.get('labelSelector'),
        fieldSelector: q.get('fieldSelector'),
        limit: q.has('limit') ? Number(q.get('limit')) : undefined,
        continue: q.get('continue'),
        resourceVersion: q.get('resourceVersion'),
        resourceVersionMatch: q.get('resourceVersionMatch'),
      };
      if (method === 'GET' && isTrue(q.get('watch'))) {
        const timeout = q.get('timeoutSeconds');
        serveWatch(
          store,
          path,
          res,
          {
            resource: r,
            namespace: ns,
            labelSelector: list.labelSelector ?? null,
            fieldSelector: list.fieldSelector ?? null,
            resourceVersion: q.get('resourceVersion'),
            resourceVersionMatch: q.get('resourceVersionMatch'),
            allowWatchBookmarks: isTrue(q.get('allowWatchBookmarks')),
            sendInitialEvents: isTrue(q.get('sendInitialEvents')),
            timeoutSeconds: timeout === null ? null : Number(timeout),
          },
          {
            bookmarkIntervalMs,
            onOpen: (w) => {
              open.add(w);
              checkWaiters();
            },
            onClose: (w) => open.delete(w),
          },
        );
        return;
      }
      if (method === 'GET') {
        const result = registry.list(r, ns, list);
        const meta: Record<string, unknown> = { resourceVersion: result.resourceVersion };
        if (result.continue) meta.continue = result.continue;
        if (result.remainingItemCount !== undefined) meta.remainingItemCount = result.remainingItemCount;
        return send(res, 200, listBody(r, result.items, meta));
      }
      if (allNamespaces) throw methodNotAllowed(method);
      if (method === 'POST') return send(res, 201, withVersion(r, registry.create(r, ns, parseJson(text), { dryRun })));
      if (method === 'DELETE') {
        const items = registry.deleteCollection(r, ns, list, { dryRun });
        return send(res, 200, listBody(r, items, { resourceVersion: String(store.currentRv()) }));
      }
      throw methodNotAllowed(method);
    }

    switch (method) {
      case 'GET':
        return send(res, 200, withVersion(r, registry.get(r, ns, name)));
      case 'PUT':
        return send(res, 200, withVersion(r, registry.update(r, ns, name, parseJson(text), sub, { dryRun })));
      case 'PATCH': {
        const { object, created } = registry.patch(r, ns, name, req.headers['content-type'] ?? '', text, sub, { dryRun, fieldManager: q.get('fieldManager') });
        return send(res, created ? 201 : 200, withVersion(r, object));
      }
      case 'DELETE': {
        if (sub) throw methodNotAllowed(method);
        const { object, deleted } = registry.delete(r, ns, name, parseJson(text), { dryRun });
        if (deleted && !r.crd && !r.deleteReturnsObject) return send(res, 200, successStatus(r, name, object.metadata.uid));
        return send(res, 200, withVersion(r, object));
      }
      default:
        throw methodNotAllowed(method);
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const u = new URL(req.url ?? '/', 'http://localhost');
    const path = u.pathname.length > 1 ? u.pathname.replace(/\/+$/, '') : u.pathname;
    const q = u.searchParams;
    const method = (req.method ?? 'GET').toUpperCase();
    const route = resolve(table, path, url);
    const rec: RequestRecord = { method, path, query: q, verb: verbOf(method, route, isTrue(q.get('watch'))) };
    if (route.type === 'resource') {
      rec.resource = route.resource.plural;
      if (route.namespace !== undefined) rec.namespace = route.namespace;
      if (route.name !== undefined) rec.name = route.name;
      if (route.subresource !== undefined) rec.subresource = route.subresource;
    }
    requests.push(rec);
    const text = await readBody(req);
    try {
      const failure = failures.find((f) => f.left > 0 && matchesFilter(rec, f));
      if (failure) {
        failure.left--;
        throw new ApiError(failure.code ?? 500, failure.reason ?? 'InternalError', failure.message ?? 'injected failure');
      }
      if (['/healthz', '/livez', '/readyz'].includes(path)) {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
        return;
      }
      if (route.type === 'none') throw pathNotFound();
      if (route.type === 'discovery') {
        if (method !== 'GET') throw methodNotAllowed(method);
        return send(res, 200, route.body());
      }
      handleResource(route, req, res, q, text, path);
    } catch (e) {
      const err = e instanceof ApiError ? e : new ApiError(500, 'InternalError', `Internal error occurred: ${(e as Error).message}`);
      if (res.headersSent) res.destroy();
      else send(res, err.code, err.toStatus());
    }
  }

  const server = createServer((req, res) => void handle(req, res));
  // Watches are long-lived responses; never time the requests out from under them.
  server.requestTimeout = 0;
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(opts.port ?? 0, opts.address ?? '127.0.0.1', () => ok());
  });
  const addr = server.address() as AddressInfo;
  url = `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`;

  const resourceOf = (apiVersion: string, kind: string): Resource => {
    const r = table.byKind(apiVersion, kind);
    if (!r) throw new Error(`kube-api-server: no resource registered for ${apiVersion} ${kind}`);
    return r;
  };
  const nsOf = (r: Resource, ns: string | undefined) => (r.namespaced ? (ns ?? 'default') : undefined);

  return {
    url,
    kubeConfig() {
      const kc = new KubeConfig();
      // client-node refuses an http:// server unless skipTLSVerify is set, though no TLS is involved.
      kc.loadFromOptions({
        clusters: [{ name: 'kube-api-server', server: url, skipTLSVerify: true }],
        users: [{ name: 'test' }],
        contexts: [{ name: 'test', cluster: 'kube-api-server', user: 'test', namespace: 'default' }],
        currentContext: 'test',
      });
      return kc;
    },
    async close() {
      for (const w of open) w.close(true);
      await new Promise<void>((ok) => {
        server.close(() => ok());
        server.closeAllConnections();
      });
    },
    addResource(def) {
      table.add(def);
    },
    set(obj) {
      if (!obj.apiVersion || !obj.kind) throw new Error('set(): apiVersion and kind are required');
      return clone(registry.set(resourceOf(obj.apiVersion, obj.kind), obj));
    },
    remove(ref) {
      const r = resourceOf(ref.apiVersion, ref.kind);
      return registry.remove(r, nsOf(r, ref.namespace), ref.name);
    },
    get(ref) {
      const r = resourceOf(ref.apiVersion, ref.kind);
      const o = store.get(r.storageKey, nsOf(r, ref.namespace), ref.name);
      return o && clone(withVersion(r, o));
    },
    list(apiVersion, kind, namespace) {
      const r = resourceOf(apiVersion, kind);
      return store.list(r.storageKey, namespace).map((o) => clone(withVersion(r, o)));
    },
    resourceVersion: () => String(store.currentRv()),
    compact: () => store.compact(),
    dropWatches(f = {}) {
      const victims = selectWatches(f);
      for (const w of victims) w.close(f.abrupt);
      return victims.length;
    },
    watches: (f) => selectWatches(f),
    waitForWatches(n, filter = {}) {
      return new Promise<void>((ok) => {
        waiters.push({ n, filter, resolve: ok });
        checkWaiters();
      });
    },
    sendBookmarks() {
      for (const w of open) if (w.params.allowWatchBookmarks) w.sendBookmark();
    },
    failNext(spec) {
      failures.push({ ...spec, left: spec.times ?? 1 });
    },
    requests,
    countRequests: (filter = {}) => requests.filter((r) => matchesFilter(r, filter)).length,
    resetRequests() {
      requests.length = 0;
    },
  };
}
