// One watch stream: JSON lines `{"type": ..., "object": ...}` on a chunked 200 response, as the
// apiserver writes them. Selectors are re-evaluated on every change, so an object that stops
// matching is a DELETED for this watcher (carrying its previous content and the change's
// resourceVersion) and one that starts matching is an ADDED, exactly as the watch cache does.
import type { ServerResponse } from 'node:http';
import type { KubeObject, StoredObject } from './objects.ts';
import type { Resource } from './resources.ts';
import { parseFieldSelector, parseLabelSelector, type Matcher } from './selectors.ts';
import { ApiError } from './status.ts';
import type { Store, StoreEvent } from './store.ts';

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

export interface WatchParams {
  resource: Resource;
  /** Undefined for a cluster-scoped resource or an all-namespaces watch. */
  namespace: string | undefined;
  labelSelector: string | null;
  fieldSelector: string | null;
  resourceVersion: string | null;
  resourceVersionMatch: string | null;
  allowWatchBookmarks: boolean;
  sendInitialEvents: boolean;
  timeoutSeconds: number | null;
}

export interface OpenWatch {
  readonly id: number;
  readonly resource: Resource;
  readonly namespace: string | undefined;
  /** Request path without the query. */
  readonly path: string;
  readonly params: WatchParams;
  sendBookmark(): void;
  /** Ends the stream cleanly, or (abrupt) destroys the connection mid-stream. */
  close(abrupt?: boolean): void;
}

export interface WatchHooks {
  bookmarkIntervalMs: number;
  onOpen(w: OpenWatch): void;
  onClose(w: OpenWatch): void;
}

let nextId = 1;

function output(r: Resource, o: StoredObject, rv?: number): KubeObject {
  const { apiVersion: _a, kind: _k, ...rest } = o;
  const out: KubeObject = { apiVersion: r.apiVersion, kind: r.kind, ...rest };
  if (rv !== undefined) out.metadata = { ...o.metadata, resourceVersion: String(rv) };
  return out;
}

/** How one store event looks to a watcher with selector `m`, if it sees it at all. */
function convert(r: Resource, m: Matcher, ev: StoreEvent): { type: WatchEventType; object: KubeObject } | undefined {
  if (ev.type === 'DELETED') return m(ev.object) ? { type: 'DELETED', object: output(r, ev.object) } : undefined;
  const now = m(ev.object);
  const before = ev.prev !== undefined && m(ev.prev);
  if (now && !before) return { type: 'ADDED', object: output(r, ev.object) };
  if (now && before) return { type: 'MODIFIED', object: output(r, ev.object) };
  if (!now && before) return { type: 'DELETED', object: output(r, ev.prev!, ev.rv) };
  return undefined;
}

/**
 * Validates the parameters and answers the watch request. Throws an ApiError (before anything is
 * written) for a request the apiserver would refuse outright; a resourceVersion outside the
 * history is instead an ERROR event on a 200 stream, as on a real cluster.
 */
export function serveWatch(store: Store, path: string, res: ServerResponse, p: WatchParams, hooks: WatchHooks): void {
  const r = p.resource;
  const labels = parseLabelSelector(p.labelSelector);
  const fields = parseFieldSelector(p.fieldSelector, r.fields);
  const matches: Matcher = (o) => (p.namespace === undefined || o.metadata?.namespace === p.namespace) && labels(o) && fields(o);
  if (p.sendInitialEvents && (p.resourceVersionMatch !== 'NotOlderThan' || !p.allowWatchBookmarks)) {
    throw new ApiError(422, 'Invalid', 'sendInitialEvents requires resourceVersionMatch=NotOlderThan and allowWatchBookmarks=true');
  }
  const rvParam = p.resourceVersion ?? '';
  if (rvParam !== '' && !/^\d+$/.test(rvParam)) throw new ApiError(400, 'BadRequest', `resourceVersion: Invalid value: ${JSON.stringify(rvParam)}`);

  res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-cache, private', 'transfer-encoding': 'chunked' });
  res.flushHeaders();
  const write = (type: WatchEventType, object: unknown) => {
    if (!res.writableEnded && !res.destroyed) res.write(JSON.stringify({ type, object }) + '\n');
  };
  const bookmark = (annotations?: Record<string, string>) => {
    const metadata: Record<string, unknown> = { resourceVersion: String(store.currentRv()) };
    if (annotations) metadata.annotations = annotations;
    write('BOOKMARK', { kind: r.kind, apiVersion: r.apiVersion, metadata });
  };

  // Initial state or replay, then live events: all synchronous, so no change can slip between.
  const initial = rvParam === '' || rvParam === '0' || p.sendInitialEvents;
  let replay: StoreEvent[] = [];
  if (!initial) {
    try {
      replay = store.eventsSince(r.storageKey, Number(rvParam));
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      write('ERROR', e.toStatus());
      res.end();
      return;
    }
  }
  if (initial) {
    for (const o of store.list(r.storageKey, p.namespace)) if (matches(o)) write('ADDED', output(r, o));
    if (p.sendInitialEvents) bookmark({ 'k8s.io/initial-events-end': 'true' });
  }
  for (const ev of replay) {
    const out = convert(r, matches, ev);
    if (out) write(out.type, out.object);
  }

  const unsubscribe = store.subscribe((ev) => {
    if (ev.storageKey !== r.storageKey) return;
    const out = convert(r, matches, ev);
    if (out) write(out.type, out.object);
  });
  const timers: NodeJS.Timeout[] = [];
  if (p.allowWatchBookmarks && hooks.bookmarkIntervalMs > 0) timers.push(setInterval(() => bookmark(), hooks.bookmarkIntervalMs).unref());
  if (p.timeoutSeconds !== null && p.timeoutSeconds > 0) timers.push(setTimeout(() => res.end(), p.timeoutSeconds * 1000).unref());

  let closed = false;
  const cleanup = () => {
    if (closed) return;
    closed = true;
    unsubscribe();
    for (const t of timers) clearTimeout(t);
    hooks.onClose(w);
  };
  const w: OpenWatch = {
    id: nextId++,
    resource: r,
    namespace: p.namespace,
    path,
    params: p,
    sendBookmark: () => bookmark(),
    close: (abrupt = false) => {
      // Unregistered at once, not when the socket is done, so a test that waits for the client's
      // next watch cannot mistake this one for it.
      cleanup();
      if (abrupt) res.socket?.destroy();
      else res.end();
    },
  };
  res.on('close', cleanup);
  res.on('finish', cleanup);
  hooks.onOpen(w);
}
