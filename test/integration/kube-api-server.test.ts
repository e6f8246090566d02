// The in-repo Kubernetes API test server, exercised through the real @kubernetes/client-node: what
// works here is what Kubernetes-facing code can rely on in its own tests.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  ApiException,
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  DiscoveryV1Api,
  KubernetesObjectApi,
  PatchStrategy,
  Watch,
  makeInformer,
  setHeaderOptions,
  type KubeConfig,
  type KubernetesObject,
  type V1ConfigMap,
} from '@kubernetes/client-node';
import { startKubeApiServer, type KubeApiServer } from '../support/kube-api-server.ts';

let server: KubeApiServer;
let kc: KubeConfig;
let core: CoreV1Api;
let custom: CustomObjectsApi;

before(async () => {
  // Bookmark timer short so the periodic path is exercised; tests wait for events, never for time.
  server = await startKubeApiServer({ bookmarkIntervalMs: 50 });
  kc = server.kubeConfig();
  core = kc.makeApiClient(CoreV1Api);
  custom = kc.makeApiClient(CustomObjectsApi);
});
after(() => server.close());

const T = { timeout: 5000 };
const GW = { group: 'gateway.networking.k8s.io', version: 'v1' };
const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

/** Runs `fn` expecting an ApiException; returns its code and parsed Status body. */
async function apiError(fn: () => Promise<unknown>): Promise<{ code: number; status: { kind: string; reason: string; code: number; status: string } }> {
  try {
    await fn();
  } catch (e) {
    assert.ok(e instanceof ApiException, `expected ApiException, got ${String(e)}`);
    const body = typeof e.body === 'string' ? JSON.parse(e.body) : e.body;
    return { code: e.code, status: body };
  }
  assert.fail('expected the call to fail');
}

/** An awaitable queue of callback values, so tests wait for events instead of sleeping. */
function queue<T>() {
  const items: T[] = [];
  const waiting: ((v: T) => void)[] = [];
  return {
    push(v: T) {
      const w = waiting.shift();
      if (w) w(v);
      else items.push(v);
    },
    next(): Promise<T> {
      if (items.length) return Promise.resolve(items.shift()!);
      return new Promise((resolve) => waiting.push(resolve));
    },
    get pending() {
      return items.length;
    },
  };
}

interface WatchEvent {
  type: string;
  obj: KubernetesObject & { code?: number; reason?: string };
}

async function watch(path: string, params: Record<string, string | number | boolean | undefined>) {
  const events = queue<WatchEvent>();
  const done = queue<unknown>();
  const controller = await new Watch(kc).watch(path, params, (type, obj) => events.push({ type, obj }), (err) => done.push(err ?? null));
  return { events, done, stop: () => controller.abort() };
}

function cm(name: string, data: Record<string, string> = {}, labels?: Record<string, string>): V1ConfigMap {
  return { metadata: { name, labels }, data };
}

test('core CRUD through CoreV1Api: create, get, list, replace, merge and JSON patch, delete', T, async () => {
  const namespace = 'crud';
  const created = await core.createNamespacedConfigMap({ namespace, body: cm('a', { k: 'v' }, { app: 'web' }) });
  assert.equal(created.metadata?.namespace, namespace);
  assert.ok(created.metadata?.uid);
  assert.ok(created.metadata?.creationTimestamp instanceof Date);
  assert.match(created.metadata?.resourceVersion ?? '', /^\d+$/);
  assert.equal(created.metadata?.generation, 1);

  const gen = await core.createNamespacedConfigMap({ namespace, body: { metadata: { generateName: 'gen-' } } });
  assert.match(gen.metadata?.name ?? '', /^gen-[a-z0-9]{5}$/);

  const dup = await apiError(() => core.createNamespacedConfigMap({ namespace, body: cm('a') }));
  assert.equal(dup.code, 409);
  assert.deepEqual([dup.status.kind, dup.status.status, dup.status.reason], ['Status', 'Failure', 'AlreadyExists']);

  assert.deepEqual((await core.readNamespacedConfigMap({ namespace, name: 'a' })).data, { k: 'v' });
  const listed = await core.listNamespacedConfigMap({ namespace, labelSelector: 'app in (web,api)' });
  assert.deepEqual(listed.items.map((i) => i.metadata?.name), ['a']);
  assert.equal(listed.metadata?.resourceVersion, server.resourceVersion());
  const all = await core.listConfigMapForAllNamespaces({ fieldSelector: `metadata.namespace=${namespace},metadata.name!=a` });
  assert.deepEqual(all.items.map((i) => i.metadata?.name), [gen.metadata?.name]);

  const replaced = await core.replaceNamespacedConfigMap({ namespace, name: 'a', body: { ...created, data: { k: 'v2' } } });
  assert.deepEqual(replaced.data, { k: 'v2' });
  assert.ok(Number(replaced.metadata?.resourceVersion) > Number(created.metadata?.resourceVersion));

  const merged = await core.patchNamespacedConfigMap({ namespace, name: 'a', body: { data: { extra: 'x', k: null } } }, merge);
  assert.deepEqual(merged.data, { extra: 'x' });
  // client-node's default patch content type is JSON patch (the first one the API lists).
  const patched = await core.patchNamespacedConfigMap({ namespace, name: 'a', body: [{ op: 'add', path: '/data/k', value: 'json' }] });
  assert.deepEqual(patched.data, { extra: 'x', k: 'json' });
  const failedTest = await apiError(() => core.patchNamespacedConfigMap({ namespace, name: 'a', body: [{ op: 'test', path: '/data/k', value: 'nope' }] }));
  assert.equal(failedTest.code, 422);

  const dry = await core.createNamespacedConfigMap({ namespace, body: cm('dry'), dryRun: 'All' });
  assert.equal(dry.metadata?.name, 'dry');
  assert.equal(server.get({ apiVersion: 'v1', kind: 'ConfigMap', namespace, name: 'dry' }), undefined, 'dryRun=All stores nothing');

  const deleted = await core.deleteNamespacedConfigMap({ namespace, name: 'a' });
  assert.equal(deleted.status, 'Success');
  const missing = await apiError(() => core.readNamespacedConfigMap({ namespace, name: 'a' }));
  assert.deepEqual([missing.code, missing.status.reason], [404, 'NotFound']);
  assert.equal((await apiError(() => core.deleteNamespacedConfigMap({ namespace, name: 'a' }))).code, 404);

  await core.deleteCollectionNamespacedConfigMap({ namespace, fieldSelector: `metadata.name=${gen.metadata?.name}` });
  assert.equal((await core.listNamespacedConfigMap({ namespace })).items.length, 0);
});

test('update with a stale resourceVersion is a 409 Conflict; without one it succeeds', T, async () => {
  const namespace = 'conflict';
  const v1 = await core.createNamespacedConfigMap({ namespace, body: cm('c', { n: '1' }) });
  await core.replaceNamespacedConfigMap({ namespace, name: 'c', body: { ...v1, data: { n: '2' } } });
  const stale = await apiError(() => core.replaceNamespacedConfigMap({ namespace, name: 'c', body: { ...v1, data: { n: '3' } } }));
  assert.deepEqual([stale.code, stale.status.reason], [409, 'Conflict']);
  const staleMerge = await apiError(() =>
    core.patchNamespacedConfigMap({ namespace, name: 'c', body: { metadata: { resourceVersion: v1.metadata?.resourceVersion }, data: { n: '4' } } }, merge),
  );
  assert.equal(staleMerge.code, 409);
  const unconditional = await core.replaceNamespacedConfigMap({ namespace, name: 'c', body: { metadata: { name: 'c' }, data: { n: '5' } } });
  assert.deepEqual(unconditional.data, { n: '5' });
  assert.equal(unconditional.metadata?.uid, v1.metadata?.uid);
});

test('custom resources: generation follows spec only; /status writes change only status', T, async () => {
  const namespace = 'gw';
  const body = {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'Gateway',
    metadata: { name: 'g' },
    spec: { gatewayClassName: 'vgw', listeners: [{ name: 'http', port: 80, protocol: 'HTTP' }] },
    status: { conditions: [{ type: 'Accepted', status: 'True' }] },
  };
  const created = await custom.createNamespacedCustomObject({ ...GW, namespace, plural: 'gateways', body });
  assert.equal(created.metadata.generation, 1);
  assert.equal(created.status, undefined, 'status is dropped on create for kinds with a status subresource');

  const labelled = await custom.patchNamespacedCustomObject({ ...GW, namespace, plural: 'gateways', name: 'g', body: { metadata: { labels: { a: 'b' } } } }, merge);
  assert.equal(labelled.metadata.generation, 1, 'metadata changes leave generation alone');

  const status = { conditions: [{ type: 'Accepted', status: 'True', observedGeneration: 1 }] };
  const withStatus = await custom.patchNamespacedCustomObjectStatus(
    { ...GW, namespace, plural: 'gateways', name: 'g', body: { spec: { gatewayClassName: 'other' }, status } },
    merge,
  );
  assert.deepEqual(withStatus.status, status);
  assert.equal(withStatus.spec.gatewayClassName, 'vgw', 'a /status write ignores spec');
  assert.equal(withStatus.metadata.generation, 1);

  const respec = await custom.replaceNamespacedCustomObject({
    ...GW,
    namespace,
    plural: 'gateways',
    name: 'g',
    body: { ...withStatus, spec: { ...withStatus.spec, gatewayClassName: 'vgw2' }, status: { conditions: [] } },
  });
  assert.equal(respec.metadata.generation, 2);
  assert.deepEqual(respec.status, status, 'a main-resource write ignores status');

  // Writing what is already stored is not a write: no new resourceVersion.
  const same = await custom.replaceNamespacedCustomObject({ ...GW, namespace, plural: 'gateways', name: 'g', body: respec });
  assert.equal(same.metadata.resourceVersion, respec.metadata.resourceVersion);

  const replacedStatus = await custom.replaceNamespacedCustomObjectStatus({ ...GW, namespace, plural: 'gateways', name: 'g', body: { ...respec, status: { conditions: [] } } });
  assert.deepEqual(replacedStatus.status, { conditions: [] });
  assert.equal(replacedStatus.metadata.generation, 2);

  // A kind without a status subresource has no /status path.
  await custom.createNamespacedCustomObject({ group: GW.group, version: 'v1beta1', namespace, plural: 'referencegrants', body: { metadata: { name: 'rg' }, spec: { from: [], to: [] } } });
  const noStatus = await apiError(() => custom.getNamespacedCustomObjectStatus({ group: GW.group, version: 'v1beta1', namespace, plural: 'referencegrants', name: 'rg' }));
  assert.equal(noStatus.code, 404);

  const cls = await custom.createClusterCustomObject({ ...GW, plural: 'gatewayclasses', body: { metadata: { name: 'vgw' }, spec: { controllerName: 'vgw.dev/gateway-controller' } } });
  assert.equal(cls.metadata.namespace, undefined);
  const classes = await custom.listClusterCustomObject({ ...GW, plural: 'gatewayclasses' });
  assert.equal(classes.kind, 'GatewayClassList');
  assert.equal(classes.items[0].kind, 'GatewayClass', 'CRD list items carry kind');
});

test('built-in kinds: deployments bump generation, endpointslices, list items without kind', T, async () => {
  const apps = kc.makeApiClient(AppsV1Api);
  const namespace = 'builtin';
  const d = await apps.createNamespacedDeployment({
    namespace,
    body: { metadata: { name: 'd' }, spec: { selector: { matchLabels: { app: 'd' } }, template: { metadata: { labels: { app: 'd' } } } } },
  });
  const scaled = await apps.patchNamespacedDeployment({ namespace, name: 'd', body: { spec: { replicas: 3 } } }, setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch));
  assert.deepEqual([d.metadata?.generation, scaled.metadata?.generation, scaled.spec?.replicas], [1, 2, 3]);

  const discovery = kc.makeApiClient(DiscoveryV1Api);
  await discovery.createNamespacedEndpointSlice({
    namespace,
    body: { metadata: { name: 'web-abc', labels: { 'kubernetes.io/service-name': 'web' } }, addressType: 'IPv4', endpoints: [{ addresses: ['10.0.0.1'] }] },
  });
  const slices = await discovery.listNamespacedEndpointSlice({ namespace, labelSelector: 'kubernetes.io/service-name=web' });
  assert.deepEqual(slices.items[0].endpoints?.[0].addresses, ['10.0.0.1']);

  // Typed lists of built-ins come without per-item kind/apiVersion, as from a real apiserver.
  const res = await fetch(`${server.url}/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices`);
  const raw = (await res.json()) as { kind: string; items: Record<string, unknown>[] };
  assert.equal(raw.kind, 'EndpointSliceList');
  assert.equal(raw.items[0].kind, undefined);

  // Cluster-scoped core kind with a status subresource: /api/v1/namespaces/{name}[/status].
  await core.createNamespace({ body: { metadata: { name: namespace }, status: { phase: 'Active' } } });
  const nsStatus = await core.replaceNamespaceStatus({ name: namespace, body: { metadata: { name: namespace }, status: { phase: 'Terminating' } } });
  assert.equal(nsStatus.status?.phase, 'Terminating');
  assert.equal((await core.readNamespace({ name: namespace })).metadata?.generation, 1);

  await core.createNamespacedSecret({ namespace, body: { metadata: { name: 's' }, stringData: { token: 'abc' } } });
  const secret = await core.readNamespacedSecret({ namespace, name: 's' });
  assert.deepEqual(secret.data, { token: Buffer.from('abc').toString('base64') });
});

test('KubernetesObjectApi: discovery and server-side apply as create-or-merge', T, async () => {
  const client = KubernetesObjectApi.makeApiClient(kc);
  const route = {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: 'r', namespace: 'apply' },
    spec: { hostnames: ['a.example.com'] },
  };
  const apply = (spec: KubernetesObject) => client.patch(spec, undefined, undefined, 'vgw-test', true, PatchStrategy.ServerSideApply);
  const first = await apply(route);
  assert.equal(first.metadata?.generation, 1);
  const second = (await apply({ ...route, spec: { hostnames: ['b.example.com'] } } as KubernetesObject)) as typeof route;
  assert.deepEqual(second.spec.hostnames, ['b.example.com']);
  assert.equal(second.metadata.name, 'r');
  const read = (await client.read({ apiVersion: route.apiVersion, kind: route.kind, metadata: { name: 'r', namespace: 'apply' } })) as typeof route & KubernetesObject;
  assert.equal(read.metadata.generation, 2);
  assert.ok(server.countRequests({ path: '/apis/gateway.networking.k8s.io/v1', verb: 'discovery' }) >= 1, 'the generic client discovers resources first');
  const noManager = await apiError(() => client.patch(route, undefined, undefined, undefined, undefined, PatchStrategy.ServerSideApply));
  assert.equal(noManager.code, 422);
});

test('pagination with limit/continue; a compacted continue token is 410 Expired', T, async () => {
  const namespace = 'pages';
  for (const n of ['a', 'b', 'c', 'd', 'e']) await core.createNamespacedConfigMap({ namespace, body: cm(n) });
  const p1 = await core.listNamespacedConfigMap({ namespace, limit: 2 });
  assert.deepEqual(p1.items.map((i) => i.metadata?.name), ['a', 'b']);
  assert.equal(p1.metadata?.remainingItemCount, 3);
  // Changes after the first page do not show: later pages are served at the first page's version.
  await core.deleteNamespacedConfigMap({ namespace, name: 'c' });
  const p2 = await core.listNamespacedConfigMap({ namespace, limit: 2, _continue: p1.metadata?._continue });
  assert.deepEqual(p2.items.map((i) => i.metadata?.name), ['c', 'd']);
  assert.equal(p2.metadata?.resourceVersion, p1.metadata?.resourceVersion);
  server.compact();
  const expired = await apiError(() => core.listNamespacedConfigMap({ namespace, limit: 2, _continue: p2.metadata?._continue }));
  assert.deepEqual([expired.code, expired.status.reason], [410, 'Expired']);
});

test('finalizers hold a deleted object until the last one is removed', T, async () => {
  const namespace = 'fin';
  const w = await watch(`/api/v1/namespaces/${namespace}/configmaps`, {});
  await core.createNamespacedConfigMap({ namespace, body: { metadata: { name: 'f', finalizers: ['vgw.dev/cleanup'] } } });
  assert.equal((await w.events.next()).type, 'ADDED');
  // The apiserver answers such a delete with the object, which client-node types as a V1Status.
  await core.deleteNamespacedConfigMap({ namespace, name: 'f' });
  assert.ok((await core.readNamespacedConfigMap({ namespace, name: 'f' })).metadata?.deletionTimestamp);
  const mod = await w.events.next();
  assert.equal(mod.type, 'MODIFIED');
  assert.ok(mod.obj.metadata?.deletionTimestamp);
  await core.patchNamespacedConfigMap({ namespace, name: 'f', body: { metadata: { finalizers: null } } }, merge);
  assert.equal((await w.events.next()).type, 'DELETED');
  assert.equal((await apiError(() => core.readNamespacedConfigMap({ namespace, name: 'f' }))).code, 404);
  w.stop();
});

test('informer: ADDED/UPDATED/DELETED, resumes after a dropped watch, relists after 410', T, async () => {
  const namespace = 'informer';
  const path = `/api/v1/namespaces/${namespace}/configmaps`;
  const informer = makeInformer(kc, path, () => core.listNamespacedConfigMap({ namespace }));
  const events = queue<[string, string]>();
  for (const verb of ['add', 'update', 'delete'] as const) informer.on(verb, (o) => events.push([verb, o.metadata?.name ?? '']));
  const errors: unknown[] = [];
  informer.on('error', (e) => errors.push(e));
  server.set({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'before', namespace } });
  await informer.start();
  assert.deepEqual(await events.next(), ['add', 'before']);
  const mine = { resource: 'configmaps', namespace };
  await server.waitForWatches(1, mine);

  await core.createNamespacedConfigMap({ namespace, body: cm('x') });
  assert.deepEqual(await events.next(), ['add', 'x']);
  await core.patchNamespacedConfigMap({ namespace, name: 'x', body: { data: { a: '1' } } }, merge);
  assert.deepEqual(await events.next(), ['update', 'x']);
  server.remove({ apiVersion: 'v1', kind: 'ConfigMap', namespace, name: 'x' });
  assert.deepEqual(await events.next(), ['delete', 'x']);

  // A clean close (as an apiserver watch timeout): the informer re-watches from its last
  // resourceVersion without listing again, and sees what changed meanwhile.
  const lists = () => server.countRequests({ verb: 'list', path });
  const listsBefore = lists();
  assert.equal(server.dropWatches(mine), 1);
  server.set({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'during-drop', namespace } });
  assert.deepEqual(await events.next(), ['add', 'during-drop']);
  await server.waitForWatches(1, mine);
  assert.equal(lists(), listsBefore);

  // A change the informer misses, then the history compacted past its resourceVersion (all in
  // this tick, before it can re-watch): the re-watch gets an ERROR 410 event and it relists.
  server.dropWatches(mine);
  server.remove({ apiVersion: 'v1', kind: 'ConfigMap', namespace, name: 'before' });
  server.compact();
  assert.deepEqual(await events.next(), ['delete', 'before']);
  await server.waitForWatches(1, mine);
  assert.equal(lists(), listsBefore + 1);
  await core.createNamespacedConfigMap({ namespace, body: cm('after') });
  assert.deepEqual(await events.next(), ['add', 'after']);
  assert.deepEqual(informer.list().map((o) => o.metadata?.name).sort(), ['after', 'during-drop']);
  assert.deepEqual(errors, []);

  // A connection broken mid-stream is not a clean end: client-node reports it and does not re-watch.
  const failed = queue<unknown>();
  informer.on('error', (e) => failed.push(e));
  server.dropWatches({ ...mine, abrupt: true });
  assert.ok((await failed.next()) instanceof Error);
  await informer.stop();
});

test('watch: replay from a resourceVersion, 410 Expired when compacted, bookmarks', T, async () => {
  const namespace = 'replay';
  const path = `/api/v1/namespaces/${namespace}/configmaps`;
  const a = await core.createNamespacedConfigMap({ namespace, body: cm('a') });
  await core.patchNamespacedConfigMap({ namespace, name: 'a', body: { data: { v: '2' } } }, merge);
  await core.deleteNamespacedConfigMap({ namespace, name: 'a' });

  const w = await watch(path, { resourceVersion: a.metadata?.resourceVersion, allowWatchBookmarks: true });
  assert.deepEqual([(await w.events.next()).type, (await w.events.next()).type], ['MODIFIED', 'DELETED']);
  // Bookmarks come from the timer; sendBookmarks() forces one. Either carries only a resourceVersion.
  server.sendBookmarks();
  const bm = await w.events.next();
  assert.equal(bm.type, 'BOOKMARK');
  assert.deepEqual(bm.obj.metadata, { resourceVersion: server.resourceVersion() });
  const timed = await w.events.next();
  assert.equal(timed.type, 'BOOKMARK');
  w.stop();

  // Streaming lists: the current state, then a bookmark marking its end.
  await core.createNamespacedConfigMap({ namespace, body: cm('b') });
  const streamed = await watch(path, { sendInitialEvents: true, resourceVersionMatch: 'NotOlderThan', allowWatchBookmarks: true });
  const first = await streamed.events.next();
  assert.deepEqual([first.type, first.obj.metadata?.name], ['ADDED', 'b']);
  const end = await streamed.events.next();
  assert.equal(end.type, 'BOOKMARK');
  assert.equal(end.obj.metadata?.annotations?.['k8s.io/initial-events-end'], 'true');
  streamed.stop();

  server.compact();
  const old = await watch(path, { resourceVersion: a.metadata?.resourceVersion });
  const err = await old.events.next();
  assert.equal(err.type, 'ERROR');
  assert.deepEqual([err.obj.kind, err.obj.code, err.obj.reason], ['Status', 410, 'Expired']);
  assert.equal(await old.done.next(), null, 'the server closes the stream after the 410');
});

test('watch with a label selector: objects entering and leaving the selection', T, async () => {
  const namespace = 'selector';
  const w = await watch(`/api/v1/namespaces/${namespace}/configmaps`, { labelSelector: 'app=web,tier!=db' });
  await core.createNamespacedConfigMap({ namespace, body: cm('other', {}, { app: 'api' }) });
  await core.createNamespacedConfigMap({ namespace, body: cm('w', {}, { app: 'web' }) });
  const added = await w.events.next();
  assert.deepEqual([added.type, added.obj.metadata?.name], ['ADDED', 'w']);
  const left = await core.patchNamespacedConfigMap({ namespace, name: 'w', body: { metadata: { labels: { tier: 'db' } } } }, merge);
  const del = await w.events.next();
  assert.equal(del.type, 'DELETED');
  assert.equal(del.obj.metadata?.resourceVersion, left.metadata?.resourceVersion);
  assert.equal(del.obj.metadata?.labels?.tier, undefined, 'DELETED carries the last matching state');
  await core.patchNamespacedConfigMap({ namespace, name: 'w', body: { metadata: { labels: { tier: null } } } }, merge);
  assert.equal((await w.events.next()).type, 'ADDED');
  assert.equal(w.events.pending, 0, 'the non-matching object never showed');
  w.stop();

  const byName = await watch(`/api/v1/namespaces/${namespace}/configmaps`, { fieldSelector: 'metadata.name=other' });
  const initial = await byName.events.next();
  assert.deepEqual([initial.type, initial.obj.metadata?.name], ['ADDED', 'other'], 'a watch without resourceVersion starts with the current state');
  byName.stop();
  // All namespaces: /api/v1/configmaps?watch=true, selectors applied likewise.
  const everywhere = await watch('/api/v1/configmaps', { labelSelector: 'app=api' });
  const found = await everywhere.events.next();
  assert.deepEqual([found.type, found.obj.metadata?.namespace, found.obj.metadata?.name], ['ADDED', namespace, 'other']);
  everywhere.stop();

  const bad = await apiError(() => core.listNamespacedConfigMap({ namespace, fieldSelector: 'data.x=1' }));
  assert.equal(bad.code, 400);
});

test('timeoutSeconds ends the stream; an abrupt drop is an error for client-node Watch', T, async () => {
  const timed = await watch('/api/v1/namespaces/timeout/configmaps', { timeoutSeconds: 1 });
  assert.equal(await timed.done.next(), null);

  const w = await watch('/api/v1/namespaces/timeout/configmaps', {});
  const mine = { resource: 'configmaps', namespace: 'timeout' };
  await server.waitForWatches(1, mine);
  assert.equal(server.dropWatches({ ...mine, abrupt: true }), 1);
  assert.ok((await w.done.next()) instanceof Error);
});

test('failure injection and request counting', T, async () => {
  const namespace = 'faults';
  server.resetRequests();
  server.failNext({ verb: 'list', resource: 'configmaps', namespace, times: 2, code: 503, reason: 'ServiceUnavailable' });
  for (let i = 0; i < 2; i++) {
    const e = await apiError(() => core.listNamespacedConfigMap({ namespace }));
    assert.deepEqual([e.code, e.status.reason], [503, 'ServiceUnavailable']);
  }
  await core.listNamespacedConfigMap({ namespace });
  assert.equal(server.countRequests({ verb: 'list', namespace }), 3);
  assert.equal(server.countRequests({ method: 'GET', path: `/api/v1/namespaces/${namespace}/configmaps` }), 3);
});
