// Operating the product on the local cluster, with real operator and gateway pods: both operator
// replicas restarted change nothing (no status, no object written, the gateway pod untouched);
// the leader SIGKILLed is replaced by the other replica, which turns a route change made
// meanwhile into traffic and status; watches dropped and 409s injected while routes change
// still converge; 200 routes on one Gateway converge with a bounded number of writes.
//
// The operator runs from install.yaml with `--resync-seconds` shortened: a completed resync
// (`vgw_operator_resyncs_total` on the leader) is the observable sign that the leader has
// re-read every status it wants and found or made it so, which is what "synced and quiet" means.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { AppsV1Api, PatchStrategy, setHeaderOptions, type KubernetesObject, type KubernetesObjectApi, type V1Pod } from '@kubernetes/client-node';
import { startLocalCluster, type LocalCluster } from '../support/local-cluster/cluster.ts';
import { ClusterProbe, get, isReady, sample, withDiagnostics as withDiagnosticsOf, type WithStatus, stopCluster } from '../support/local-cluster/e2e-helpers.ts';
import { applyInstallManifest, echoBackend, OPERATOR_NAMESPACE } from '../support/local-cluster/install.ts';
import { VGW_IN_POD } from '../support/local-cluster/vgw-in-pod.ts';
import type { RequestRecord } from '../support/kube-api-server.ts';
import { GATEWAY_LABEL, headName } from '../../src/ir/configmap.ts';
import { infraName, INSTANCE_LABEL, MANAGED_BY, MANAGED_BY_LABEL } from '../../src/operator/infrastructure.ts';
import { eventually } from './support/poll.ts';

const NS = 'ops';
const GATEWAY = 'edge';
const PORT = 8080;
const RESYNC_SECONDS = 2;
// Starting varnishd and compiling the first VCL on a loaded 2-core machine takes a while.
const SLOW = 120_000;
const MANY_ROUTES = 200;
/**
 * Status writes per route while 200 routes are created: one per verdict the route goes through.
 * With one gateway replica there are two: Accepted with Programmed=False ("0 of 1 ready gateway
 * replicas serve this generation"), then Programmed=True; a route the replica already serves
 * when its first status is written has one.
 */
const MAX_STATUS_WRITES_PER_ROUTE = 2;

const GW_API = 'gateway.networking.k8s.io/v1';
const MERGE = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const classRef = { apiVersion: GW_API, kind: 'GatewayClass', metadata: { name: 'vgw' } };
const gatewayRef = { apiVersion: GW_API, kind: 'Gateway', metadata: { name: GATEWAY, namespace: NS } };
const routeRef = (name: string) => ({ apiVersion: GW_API, kind: 'HTTPRoute', metadata: { name, namespace: NS } });
const infra = infraName(NS, GATEWAY);
const gatewayPodSelector = `${INSTANCE_LABEL}=${infra},${MANAGED_BY_LABEL}=${MANAGED_BY}`;

const gateway = { ...gatewayRef, spec: { gatewayClassName: 'vgw', listeners: [{ name: 'http', protocol: 'HTTP', port: PORT }] } };
const route = (name: string, hostnames: string[], backend = 'echo') => ({
  ...routeRef(name),
  spec: { parentRefs: [{ name: GATEWAY }], hostnames, rules: [{ backendRefs: [{ name: backend, port: 8080 }] }] },
});
/** Routes every test starts from: one served, one whose backend Service does not exist. */
const GOOD = 'good';
const BROKEN = 'broken';

let cluster: LocalCluster;
let probe: ClusterProbe;
let objects: KubernetesObjectApi;
let apps: AppsV1Api;
let address = '';

const routeNames = new Set([GOOD, BROKEN]);
const watchedRefs = (): KubernetesObject[] => [classRef, gatewayRef, ...[...routeNames].slice(0, 6).map(routeRef)];
const withDiagnostics = (body: () => Promise<void>) =>
  withDiagnosticsOf(() => probe.diagnostics([{ namespace: NS, selector: gatewayPodSelector }], watchedRefs()), body);
const gatewayPods = () => probe.pods(NS, gatewayPodSelector);

type Condition = { type: string; status: string; reason?: string; observedGeneration?: number };
const has = (conditions: Condition[] | undefined, type: string, status: string, generation?: number) =>
  (conditions ?? []).some((c) => c.type === type && c.status === status && (generation === undefined || c.observedGeneration === generation));
const parentConditions = (r: WithStatus) => ((r.status?.parents as { conditions?: Condition[] }[] | undefined) ?? [])[0]?.conditions;

/** The route is Accepted and Programmed (and ResolvedRefs as given) at its current generation. */
async function routeConverged(name: string, resolved = true): Promise<boolean> {
  const r = await probe.read(routeRef(name));
  const g = r.metadata?.generation;
  const c = parentConditions(r);
  return has(c, 'Accepted', 'True', g) && has(c, 'ResolvedRefs', resolved ? 'True' : 'False', g) && has(c, 'Programmed', 'True', g);
}

async function gatewayProgrammed(): Promise<boolean> {
  const gw = await probe.read(gatewayRef);
  return has(gw.status?.conditions as Condition[], 'Programmed', 'True', gw.metadata?.generation);
}

async function leaderPod(): Promise<V1Pod | undefined> {
  const { holder } = await probe.lease();
  return (await probe.operatorPods()).find((p) => p.metadata?.name === holder);
}

/** Resyncs the leader has completed (0 when there is no leader or its metrics cannot be read). */
async function leaderResyncs(leader?: V1Pod): Promise<number> {
  const pod = leader ?? (await leaderPod());
  if (!pod || !isReady(pod)) return 0;
  return sample(await probe.metrics(pod).catch(() => ''), 'vgw_operator_resyncs_total');
}

/** Waits until the current leader has completed a full resync that started after this call. */
async function leaderQuiet(what: string): Promise<V1Pod> {
  let leader: V1Pod | undefined;
  let start = -1;
  await eventually(`${what}: a leader completes a resync`, async () => {
    const now = await leaderPod();
    if (!now || !isReady(now)) return false;
    if (now.metadata?.uid !== leader?.metadata?.uid) {
      leader = now;
      start = await leaderResyncs(now);
      return false;
    }
    // Two more: the first may have started before this call.
    return (await leaderResyncs(now)) >= start + 2;
  }, SLOW, 100);
  return leader!;
}

async function statuses(): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const ref of [classRef, gatewayRef, ...[...routeNames].map(routeRef)]) out[`${ref.kind} ${ref.metadata.name}`] = (await probe.read(ref)).status;
  return out;
}

const WRITES = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const isStatusWrite = (r: RequestRecord) => WRITES.has(r.method) && r.subresource === 'status' && ['gatewayclasses', 'gateways', 'httproutes'].includes(r.resource ?? '');
const INFRA_RESOURCES = ['configmaps', 'deployments', 'services', 'serviceaccounts', 'rolebindings', 'clusterrolebindings'];
/** Writes of the operator's objects; the cluster's own controllers write only their status subresources (and Pods, slices). */
const isInfraWrite = (r: RequestRecord) => WRITES.has(r.method) && r.subresource === undefined && INFRA_RESOURCES.includes(r.resource ?? '');
const describeRequest = (r: RequestRecord) => `${r.method} ${r.path}`;

before(async () => {
  cluster = await startLocalCluster({
    images: { 'vgw:*': { executables: { vgw: VGW_IN_POD } } },
    podCidr: '127.0.64.0/22',
    loadBalancerCidr: '127.0.68.0/24',
    clusterIPCidr: '127.0.69.0/24',
  });
  probe = new ClusterProbe(cluster);
  objects = probe.objects;
  apps = cluster.kubeConfig().makeApiClient(AppsV1Api);
  await applyInstallManifest(cluster, objects, { operatorArgs: [`--resync-seconds=${RESYNC_SECONDS}`] });
});

after(() => stopCluster(cluster));

test('setup: a programmed Gateway with a served route and one whose backend is missing', { timeout: 2 * SLOW }, () =>
  withDiagnostics(async () => {
    await eventually('both operator replicas Ready', async () => {
      const pods = await probe.operatorPods();
      return pods.length === 2 && pods.every(isReady);
    }, SLOW, 200);
    for (const obj of [...echoBackend(NS), gateway, route(GOOD, ['good.example.com']), route(BROKEN, ['broken.example.com'], 'missing')]) await objects.create(obj);
    await eventually('Gateway Programmed with an address', async () => {
      const gw = await probe.read(gatewayRef);
      address = (gw.status?.addresses as { value: string }[] | undefined)?.[0]?.value ?? '';
      return address !== '' && (await gatewayProgrammed());
    }, SLOW, 200);
    await eventually('both routes converged (broken: ResolvedRefs=False)', async () => (await routeConverged(GOOD)) && (await routeConverged(BROKEN, false)), SLOW, 200);
    await eventually('good.example.com answers 200', async () => (await get(address, 'good.example.com', '/', PORT).catch(() => ({ status: 0 }))).status === 200, SLOW, 200);
    assert.equal((await get(address, 'broken.example.com', '/', PORT)).status, 500, 'a route to a missing Service answers 500');
  }),
);

test('restarting both operator pods writes no status and no object and leaves the gateway pod alone', { timeout: 3 * SLOW }, () =>
  withDiagnostics(async () => {
    assert.ok(address, 'setup got the Gateway programmed');
    await leaderQuiet('before the restart');
    const before = await statuses();
    const [gatewayPod] = await gatewayPods();
    const podIdentity = (p: V1Pod) => ({ uid: p.metadata?.uid, restarts: p.status?.containerStatuses?.map((c) => c.restartCount) });
    const oldOperators = (await probe.operatorPods()).map((p) => p.metadata!.name!);
    const mark = cluster.api.requests.length;

    for (const name of oldOperators) await probe.core.deleteNamespacedPod({ namespace: OPERATOR_NAMESPACE, name });
    await eventually('two new operator pods Ready, one of them holding the Lease', async () => {
      const pods = await probe.operatorPods();
      const { holder } = await probe.lease();
      return pods.length === 2 && pods.every((p) => isReady(p) && !oldOperators.includes(p.metadata!.name!)) && pods.some((p) => p.metadata?.name === holder);
    }, SLOW, 200);
    const leader = await leaderQuiet('after the restart');
    assert.ok(!oldOperators.includes(leader.metadata!.name!));

    const since = cluster.api.requests.slice(mark);
    assert.deepEqual(since.filter(isStatusWrite).map(describeRequest), [], 'no status written after the restart');
    assert.deepEqual(since.filter(isInfraWrite).map(describeRequest), [], 'no ConfigMap, Deployment, Service, ServiceAccount or binding written');
    assert.deepEqual(await statuses(), before, 'every status, lastTransitionTimes included, as before');
    const [after] = await gatewayPods();
    assert.deepEqual(podIdentity(after), podIdentity(gatewayPod), 'the same gateway pod, not restarted');
    assert.ok(since.some((r) => r.resource === 'httproutes' && r.method === 'GET'), 'the new leader did read the routes (the check is not vacuous)');
  }),
);

test('SIGKILL of the leader: the other replica takes over and serves a route change made meanwhile', { timeout: 3 * SLOW }, (t) =>
  withDiagnostics(async () => {
    assert.ok(address, 'setup got the Gateway programmed');
    const lease = await probe.lease();
    const leader = await leaderPod();
    assert.ok(leader, `the Lease holder ${lease.holder} is an operator pod`);
    const pid = Number(/^local:\/\/(\d+)$/.exec(leader.status?.containerStatuses?.[0]?.containerID ?? '')?.[1]);
    assert.ok(pid > 0, 'the leader container has a process');
    const killedAt = performance.now();
    process.kill(-pid, 'SIGKILL');
    // Gone without a graceful deletion, as a node that died takes its pods: the kubelet restarts
    // nothing under the old identity and the Deployment controller makes a new pod.
    cluster.api.remove({ apiVersion: 'v1', kind: 'Pod', namespace: OPERATOR_NAMESPACE, name: lease.holder });

    const live = await probe.read(routeRef(GOOD));
    const changed = route(GOOD, ['good.example.com', 'failover.example.com']);
    await objects.replace({ ...changed, metadata: { ...changed.metadata, resourceVersion: live.metadata?.resourceVersion } });

    let takenOverMs = 0;
    await eventually('another replica holds the Lease', async () => {
      const now = await probe.lease();
      if (now.holder === '' || now.holder === lease.holder) return false;
      takenOverMs = performance.now() - killedAt;
      return true;
    }, SLOW, 50);
    t.diagnostic(`lease taken over ${Math.round(takenOverMs)} ms after the SIGKILL (lease duration ${lease.durationSeconds} s)`);
    assert.ok((await probe.lease()).transitions > lease.transitions, 'a takeover, not a release, moved the Lease');
    await eventually('failover.example.com answers 200', async () => (await get(address, 'failover.example.com', '/', PORT).catch(() => ({ status: 0 }))).status === 200, SLOW, 200);
    await eventually('the changed route is Accepted and Programmed at its new generation', () => routeConverged(GOOD), SLOW, 200);
    assert.equal((await probe.read(routeRef(GOOD))).metadata?.generation, 2);
  }),
);

test('dropped watches and 409s on status, ConfigMap and Deployment writes while routes change still converge', { timeout: 3 * SLOW }, () =>
  withDiagnostics(async () => {
    assert.ok(address, 'setup got the Gateway programmed');
    await leaderQuiet('before the faults');
    const api = cluster.api;
    const mark = api.requests.length;
    const conflict = { code: 409, reason: 'Conflict', message: 'injected conflict' };
    api.failNext({ method: 'PUT', resource: 'httproutes', path: /\/status$/, times: 4, ...conflict });
    api.failNext({ method: 'PUT', resource: 'gateways', path: /\/status$/, times: 2, ...conflict });
    api.failNext({ method: 'PUT', resource: 'configmaps', namespace: NS, times: 2, ...conflict });
    api.failNext({ method: 'PUT', resource: 'deployments', namespace: NS, path: /\/deployments\/[^/]+$/, times: 2, ...conflict });

    routeNames.add('late');
    await objects.create(route('late', ['late.example.com']));
    assert.ok(api.dropWatches({ abrupt: true }) > 0, 'watches were open');
    const live = await probe.read(routeRef(BROKEN));
    const fixed = route(BROKEN, ['broken.example.com', 'drops.example.com'], 'missing');
    await objects.replace({ ...fixed, metadata: { ...fixed.metadata, resourceVersion: live.metadata?.resourceVersion } });
    // A hand edit of the gateway Deployment's labels: the operator puts them back (a Deployment update).
    await apps.patchNamespacedDeployment({ namespace: NS, name: infra, body: { metadata: { labels: { 'edited-by': 'hand' } } } }, MERGE);
    // The operator's route watch is back (it re-lists or resumes) before it is ended again, cleanly.
    await api.waitForWatches(1, { resource: 'httproutes' });
    assert.ok(api.dropWatches() > 0, 'watches were open again');
    const goodLive = await probe.read(routeRef(GOOD));
    const good = route(GOOD, ['good.example.com', 'failover.example.com', 'third.example.com']);
    await objects.replace({ ...good, metadata: { ...good.metadata, resourceVersion: goodLive.metadata?.resourceVersion } });

    for (const host of ['late.example.com', 'third.example.com']) {
      await eventually(`${host} answers 200`, async () => (await get(address, host, '/', PORT).catch(() => ({ status: 0 }))).status === 200, SLOW, 200);
    }
    await eventually('drops.example.com answers 500 (the backend is still missing)', async () => (await get(address, 'drops.example.com', '/', PORT).catch(() => ({ status: 0 }))).status === 500, SLOW, 200);
    await eventually('every route converged at its current generation', async () => (await routeConverged(GOOD)) && (await routeConverged('late')) && (await routeConverged(BROKEN, false)), SLOW, 200);
    await eventually('the Deployment\'s labels are put back', async () => (await apps.readNamespacedDeployment({ namespace: NS, name: infra })).metadata?.labels?.['edited-by'] === undefined, SLOW, 200);
    await eventually('the Gateway is Programmed', gatewayProgrammed, SLOW, 200);

    const since = api.requests.slice(mark);
    const count = (f: (r: RequestRecord) => boolean) => since.filter(f).length;
    assert.ok(count((r) => r.method === 'PUT' && r.resource === 'httproutes' && r.subresource === 'status') > 4, 'route status writes got past the injected 409s');
    assert.ok(count((r) => r.method === 'PUT' && r.resource === 'configmaps' && r.namespace === NS) > 2, 'ConfigMap writes got past the injected 409s');
    assert.ok(count((r) => r.method === 'PUT' && r.resource === 'deployments' && r.subresource === undefined && r.namespace === NS) > 2, 'Deployment updates got past the injected 409s');
  }),
);

test(`${MANY_ROUTES} HTTPRoutes on one Gateway converge with a bounded number of writes`, { timeout: 4 * SLOW }, (t) =>
  withDiagnostics(async () => {
    assert.ok(address, 'setup got the Gateway programmed');
    await leaderQuiet('before the routes');
    const mark = cluster.api.requests.length;
    const names = Array.from({ length: MANY_ROUTES }, (_, i) => `r${String(i).padStart(3, '0')}`);
    const host = (name: string) => `${name}.many.example.com`;
    // Created quickly: 8 at a time.
    for (let i = 0; i < names.length; i += 8) await Promise.all(names.slice(i, i + 8).map((n) => objects.create(route(n, [host(n)]))));

    await eventually(`all ${MANY_ROUTES} routes Accepted and Programmed`, async () => {
      const list = (await objects.list(GW_API, 'HTTPRoute', NS)).items as WithStatus[];
      const done = list.filter((r) => names.includes(r.metadata!.name!) && has(parentConditions(r), 'Accepted', 'True', r.metadata?.generation) && has(parentConditions(r), 'Programmed', 'True', r.metadata?.generation));
      return done.length === MANY_ROUTES;
    }, 3 * SLOW, 500);
    for (let i = 0; i < names.length; i += 10) {
      const replies = await Promise.all(names.slice(i, i + 10).map((n) => get(address, host(n), '/', PORT).then((r) => ({ n, status: r.status }))));
      assert.deepEqual(replies.filter((r) => r.status !== 200), [], 'every route answers 200');
    }
    await leaderQuiet('after the routes');

    const since = cluster.api.requests.slice(mark);
    const perRoute = new Map<string, number>();
    for (const r of since) if (r.method === 'PUT' && r.resource === 'httproutes' && r.subresource === 'status') perRoute.set(r.name!, (perRoute.get(r.name!) ?? 0) + 1);
    const histogram = new Map<number, number>();
    for (const n of names) histogram.set(perRoute.get(n) ?? 0, (histogram.get(perRoute.get(n) ?? 0) ?? 0) + 1);
    const configMapWrites = since.filter((r) => WRITES.has(r.method) && r.resource === 'configmaps' && r.namespace === NS);
    const heads = configMapWrites.filter((r) => r.method === 'PUT' && r.name === headName(GATEWAY));
    t.diagnostic(`status writes per route (writes: routes): ${JSON.stringify(Object.fromEntries([...histogram].sort()))}`);
    t.diagnostic(`routing ConfigMap writes: ${configMapWrites.length} (${heads.length} to the head)`);
    const over = names.filter((n) => (perRoute.get(n) ?? 0) > MAX_STATUS_WRITES_PER_ROUTE);
    assert.deepEqual(over, [], `each route's status written at most ${MAX_STATUS_WRITES_PER_ROUTE} times`);
    assert.ok(names.every((n) => (perRoute.get(n) ?? 0) >= 1), 'each route\'s status was written');
    // Publishing is coalesced: a burst of route events makes at most one more reconcile, and a
    // reconcile publishes a Gateway's config at most once. Far fewer head writes than routes.
    assert.ok(heads.length <= MANY_ROUTES / 4, `routing config published ${heads.length} times for ${MANY_ROUTES} routes`);
    assert.ok((await cluster.api.list('v1', 'ConfigMap', NS)).some((c) => c.metadata.labels?.[GATEWAY_LABEL] === GATEWAY));
  }),
);
