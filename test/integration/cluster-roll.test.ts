// A listener change rolls the gateway pods (the listen ports are part of the pod template)
// while clients keep sending requests to the listener that stays: on new connections and on
// keep-alive ones, several at once, never pausing. Not one of them may fail: the old pod keeps
// serving its listeners until it is out of the Service, then answers `Connection: close` so
// the keep-alive clients reconnect (to the new pod) and its drain ends without waiting for them
// to stop; the new one takes traffic once it is ready. Removing a listener rolls the pod the same
// way, and the old pod keeps its socket for the removed port instead of restarting varnishd.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent } from 'node:http';
import { KubernetesObjectApi, type V1Pod } from '@kubernetes/client-node';
import { startLocalCluster, type LocalCluster } from '../support/local-cluster/cluster.ts';
import { ClusterProbe, get, isReady, withDiagnostics as withDiagnosticsOf, stopCluster } from '../support/local-cluster/e2e-helpers.ts';
import { applyInstallManifest, echoBackend } from '../support/local-cluster/install.ts';
import { VGW_IN_POD } from '../support/local-cluster/vgw-in-pod.ts';
import { infraName, INSTANCE_LABEL, MANAGED_BY, MANAGED_BY_LABEL } from '../../src/operator/infrastructure.ts';
import { eventually } from './support/poll.ts';

const NS = 'roll';
const GATEWAY = 'edge';
const HOST = 'roll.example.com';
const OLD_PORT = 8080;
const NEW_PORT = 9090;
// Starting varnishd and compiling the first VCL on a loaded 2-core machine takes a while.
const SLOW = 120_000;
/** Clients sending at once: each on keep-alive connections, each on a new connection per request. */
const KEEP_ALIVE_CLIENTS = 3;
const NEW_CONNECTION_CLIENTS = 2;

const GW_API = 'gateway.networking.k8s.io/v1';
const gatewayRef = { apiVersion: GW_API, kind: 'Gateway', metadata: { name: GATEWAY, namespace: NS } };
const routeRef = { apiVersion: GW_API, kind: 'HTTPRoute', metadata: { name: 'echo', namespace: NS } };
const gatewayPodSelector = `${INSTANCE_LABEL}=${infraName(NS, GATEWAY)},${MANAGED_BY_LABEL}=${MANAGED_BY}`;
const listener = (name: string, port: number) => ({ name, protocol: 'HTTP', port });
const gateway = (listeners: ReturnType<typeof listener>[]) => ({ ...gatewayRef, spec: { gatewayClassName: 'vgw', listeners } });
const route = { ...routeRef, spec: { parentRefs: [{ name: GATEWAY }], hostnames: [HOST], rules: [{ backendRefs: [{ name: 'echo', port: 8080 }] }] } };

let cluster: LocalCluster;
let probe: ClusterProbe;
let objects: KubernetesObjectApi;

const gatewayPods = () => probe.pods(NS, gatewayPodSelector);
const withDiagnostics = (body: () => Promise<void>) =>
  withDiagnosticsOf(() => probe.diagnostics([{ namespace: NS, selector: gatewayPodSelector }, { namespace: NS, selector: 'app=echo' }], [gatewayRef, routeRef]), body);

before(async () => {
  cluster = await startLocalCluster({
    images: { 'vgw:*': { executables: { vgw: VGW_IN_POD } } },
    podCidr: '127.0.72.0/22',
    loadBalancerCidr: '127.0.76.0/24',
    clusterIPCidr: '127.0.77.0/24',
  });
  probe = new ClusterProbe(cluster);
  objects = probe.objects;
  await applyInstallManifest(cluster, objects);
});

after(() => stopCluster(cluster));

interface Failure {
  client: string;
  at: string;
  what: string;
}

/**
 * Clients sending GET / to `port` back to back until stopped; every failure is kept. The
 * keep-alive ones reconnect after a `Connection: close` as a real client does (the agent
 * opens a new connection for the next request).
 */
function startClients(address: string, port: number) {
  const agent = new Agent({ keepAlive: true, maxSockets: KEEP_ALIVE_CLIENTS });
  const failures: Failure[] = [];
  const ok = { keepAlive: 0, newConnection: 0 };
  let running = true;
  const loop = async (client: string, keepAlive: boolean) => {
    while (running) {
      try {
        const reply = await get(address, HOST, '/', port, keepAlive ? agent : undefined);
        if (reply.status === 200) ok[keepAlive ? 'keepAlive' : 'newConnection']++;
        else failures.push({ client, at: new Date().toISOString(), what: `HTTP ${reply.status}: ${reply.body.slice(0, 200)}` });
      } catch (err) {
        failures.push({ client, at: new Date().toISOString(), what: (err as Error).message });
      }
    }
  };
  const loops = [
    ...Array.from({ length: KEEP_ALIVE_CLIENTS }, (_, i) => loop(`keep-alive ${i}`, true)),
    ...Array.from({ length: NEW_CONNECTION_CLIENTS }, (_, i) => loop(`new connections ${i}`, false)),
  ];
  return {
    failures,
    ok,
    async stop() {
      running = false;
      await Promise.all(loops);
      agent.destroy();
    },
  };
}

test('adding a listener rolls the gateway pod with no failed request on the existing listener', { timeout: 4 * SLOW }, (t) =>
  withDiagnostics(async () => {
    await eventually('both operator replicas Ready', async () => {
      const pods = await probe.operatorPods();
      return pods.length === 2 && pods.every(isReady);
    }, SLOW, 200);
    for (const obj of [...echoBackend(NS), gateway([listener('http', OLD_PORT)]), route]) await objects.create(obj);

    let address = '';
    await eventually('Gateway Programmed=True with an address', async () => {
      const status = (await probe.read(gatewayRef)).status as { conditions?: { type: string; status: string }[]; addresses?: { value: string }[] } | undefined;
      address = status?.addresses?.[0]?.value ?? '';
      return status?.conditions?.some((c) => c.type === 'Programmed' && c.status === 'True') === true && address !== '';
    }, SLOW, 200);
    await eventually(`GET / through ${address}:${OLD_PORT} answers 200`, async () => (await get(address, HOST, '/', OLD_PORT).catch(() => ({ status: 0 }))).status === 200, SLOW, 200);
    const [before] = await gatewayPods();
    const oldUid = before.metadata!.uid!;

    const clients = startClients(address, OLD_PORT);
    try {
      await eventually('requests flow on both kinds of connection', () => clients.ok.keepAlive > 20 && clients.ok.newConnection > 10, SLOW, 50);
      const live = await probe.read(gatewayRef);
      const rollStart = performance.now();
      await objects.replace({ ...gateway([listener('http', OLD_PORT), listener('extra', NEW_PORT)]), metadata: { ...gatewayRef.metadata, resourceVersion: live.metadata?.resourceVersion } });

      let pods: V1Pod[] = [];
      await eventually('a new gateway pod is Ready and the old one is being deleted or gone', async () => {
        pods = await gatewayPods();
        const fresh = pods.filter((p) => p.metadata?.uid !== oldUid);
        const old = pods.find((p) => p.metadata?.uid === oldUid);
        return fresh.length === 1 && isReady(fresh[0]) && (!old || Boolean(old.metadata?.deletionTimestamp));
      }, SLOW, 200);
      await eventually(`GET / through ${address}:${NEW_PORT} answers 200`, async () => (await get(address, HOST, '/', NEW_PORT).catch(() => ({ status: 0 }))).status === 200, SLOW, 200);
      // The keep-alive clients never stop: the old pod tells them to close, they reconnect to
      // the new pod, and its drain ends while they keep going.
      await rollCompletes(t, oldUid, clients, rollStart);
    } finally {
      await clients.stop();
    }
    assert.deepEqual(clients.failures, [], `no failed request during the roll (${clients.ok.keepAlive} on keep-alive connections and ${clients.ok.newConnection} on new ones succeeded)`);
    assert.equal((await get(address, HOST, '/', OLD_PORT)).status, 200, 'the old listener serves from the new pod');
    const oldExits = cluster.exits({ namespace: NS, name: before.metadata!.name! });
    assert.deepEqual(oldExits.map((e) => ({ code: e.code, killedAfterGrace: e.killedAfterGrace })), [{ code: 0, killedAfterGrace: false }], 'the old pod drained and exited 0');
    const drained = podEvents(before.metadata!.name!);
    assert.ok(drained.includes('drain-vcl-active'), `the old pod loaded the draining VCL: ${drained.join(',')}`);
  }),
);

test('removing a listener rolls the gateway pod; the old pod keeps serving the other listener without restarting varnishd', { timeout: 4 * SLOW }, (t) =>
  withDiagnostics(async () => {
    // Where the first test left it: one pod serving both listeners.
    const [before] = await gatewayPods();
    assert.ok(before && isReady(before), 'one ready gateway pod');
    const oldUid = before.metadata!.uid!;
    const oldName = before.metadata!.name!;
    let address = '';
    await eventually(`GET / through :${NEW_PORT} answers 200`, async () => {
      const status = (await probe.read(gatewayRef)).status as { addresses?: { value: string }[] } | undefined;
      address = status?.addresses?.[0]?.value ?? '';
      return address !== '' && (await get(address, HOST, '/', NEW_PORT).catch(() => ({ status: 0 }))).status === 200;
    }, SLOW, 200);
    const startsBefore = podEvents(oldName).filter((e) => e === 'varnishd-started').length;
    assert.equal(startsBefore, 1, 'the pod started varnishd once');

    const clients = startClients(address, NEW_PORT);
    try {
      await eventually('requests flow on both kinds of connection', () => clients.ok.keepAlive > 20 && clients.ok.newConnection > 10, SLOW, 50);
      const live = await probe.read(gatewayRef);
      const rollStart = performance.now();
      await objects.replace({ ...gateway([listener('extra', NEW_PORT)]), metadata: { ...gatewayRef.metadata, resourceVersion: live.metadata?.resourceVersion } });
      await eventually('the old pod took the config without the listener', () => podEvents(oldName).includes('listeners-unrouted'), SLOW, 100);
      await rollCompletes(t, oldUid, clients, rollStart);
    } finally {
      await clients.stop();
    }
    assert.deepEqual(clients.failures, [], `no failed request during the roll (${clients.ok.keepAlive} on keep-alive connections and ${clients.ok.newConnection} on new ones succeeded)`);
    const events = podEvents(oldName);
    assert.equal(events.filter((e) => e === 'varnishd-restart').length, 0, `the old pod never restarted varnishd: ${events.join(',')}`);
    assert.equal(events.filter((e) => e === 'varnishd-started').length, 1, 'one varnishd for the old pod\'s whole life');
    assert.ok(events.indexOf('listeners-unrouted') < events.indexOf('drain-start'), 'the config without the listener went live before the drain');
    assert.deepEqual(cluster.exits({ namespace: NS, name: oldName }).map((e) => ({ code: e.code, killedAfterGrace: e.killedAfterGrace })), [{ code: 0, killedAfterGrace: false }], 'the old pod drained and exited 0');
  }),
);

/** The `event` of each JSON log line of a gateway pod, in order. */
function podEvents(pod: string): string[] {
  return cluster
    .logs({ namespace: NS, name: pod })
    .split('\n')
    .flatMap((l) => {
      try {
        const event = (JSON.parse(l) as { event?: unknown }).event;
        return typeof event === 'string' ? [event] : [];
      } catch {
        return [];
      }
    });
}

/** The old pod gone and one new pod ready, then more requests served on both kinds of connection. */
async function rollCompletes(t: { diagnostic(message: string): void }, oldUid: string, clients: ReturnType<typeof startClients>, rollStart: number): Promise<void> {
  await eventually('the old gateway pod is gone, one new pod serves', async () => {
    const now = await gatewayPods();
    return now.length === 1 && now[0].metadata?.uid !== oldUid && isReady(now[0]);
  }, SLOW, 200);
  t.diagnostic(`roll with busy keep-alive clients: old pod gone ${((performance.now() - rollStart) / 1000).toFixed(1)} s after the Gateway change`);
  const { keepAlive, newConnection } = clients.ok;
  await eventually('more requests on both kinds of connection after the roll', () => clients.ok.keepAlive > keepAlive + 20 && clients.ok.newConnection > newConnection + 10, SLOW, 50);
}
