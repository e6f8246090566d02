// End to end on the local cluster: deploy/install.yaml applied as a user would apply it, so the
// operator runs from its own Deployment; then a backend, a Gateway of class `vgw` and an
// HTTPRoute, and traffic through the address the Gateway reports. The gateway pod the operator
// renders runs `vgw chaperone` and varnishd; a route change reaches it without a new pod, and
// deleting the Gateway removes everything the operator made for it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { AppsV1Api, CoreV1Api, KubernetesObjectApi, RbacAuthorizationV1Api, type KubernetesObject } from '@kubernetes/client-node';
import { startLocalCluster, type LocalCluster } from '../support/local-cluster/cluster.ts';
import { ClusterProbe, get, isReady, notFound, withDiagnostics as withDiagnosticsOf, type Reply, stopCluster } from '../support/local-cluster/e2e-helpers.ts';
import { applyInstallManifest, echoBackend, OPERATOR_NAMESPACE, OPERATOR_POD_SELECTOR } from '../support/local-cluster/install.ts';
import { VGW_IN_POD } from '../support/local-cluster/vgw-in-pod.ts';
import { GATEWAY_LABEL } from '../../src/ir/configmap.ts';
import { infraName, INSTANCE_LABEL, MANAGED_BY, MANAGED_BY_LABEL } from '../../src/operator/infrastructure.ts';
import { eventually } from './support/poll.ts';

const OPERATOR_NS = OPERATOR_NAMESPACE;
const NS = 'e2e';
const GATEWAY = 'edge';
const HOST = 'e2e.example.com';
const LISTENER_PORT = 8080;
// Starting varnishd and compiling the first VCL on a loaded 2-core machine takes a while.
const SLOW = 120_000;

const GW_API = 'gateway.networking.k8s.io/v1';
const gatewayRef = { apiVersion: GW_API, kind: 'Gateway', metadata: { name: GATEWAY, namespace: NS } };
const routeRef = { apiVersion: GW_API, kind: 'HTTPRoute', metadata: { name: 'echo', namespace: NS } };
const infra = infraName(NS, GATEWAY);
const gatewayPodSelector = `${INSTANCE_LABEL}=${infra},${MANAGED_BY_LABEL}=${MANAGED_BY}`;

let cluster: LocalCluster;
let objects: KubernetesObjectApi;
let core: CoreV1Api;
let apps: AppsV1Api;
let rbac: RbacAuthorizationV1Api;

const backend = echoBackend(NS);

const gateway = { ...gatewayRef, spec: { gatewayClassName: 'vgw', listeners: [{ name: 'http', protocol: 'HTTP', port: LISTENER_PORT }] } };

function route(hostnames: string[], rule: Record<string, unknown>) {
  return { ...routeRef, spec: { parentRefs: [{ name: GATEWAY }], hostnames, rules: [{ ...rule, backendRefs: [{ name: 'echo', port: 8080 }] }] } };
}

const read = async (ref: KubernetesObject) => (await objects.read(ref as { metadata: { name: string; namespace?: string } })) as KubernetesObject & { status?: Record<string, unknown> };
const gatewayPods = async () => (await core.listNamespacedPod({ namespace: NS, labelSelector: gatewayPodSelector })).items;
const operatorPods = async () => (await core.listNamespacedPod({ namespace: OPERATOR_NS, labelSelector: OPERATOR_POD_SELECTOR })).items;
const echoPods = async () => (await core.listNamespacedPod({ namespace: NS, labelSelector: 'app=echo' })).items;

/** On failure, what the operator, gateway and echo pods wrote and the statuses, next to the assertion. */
const withDiagnostics = (body: () => Promise<void>) =>
  withDiagnosticsOf(() => new ClusterProbe(cluster).diagnostics([{ namespace: NS, selector: gatewayPodSelector }, { namespace: NS, selector: 'app=echo' }], [gatewayRef, routeRef]), body);

before(async () => {
  cluster = await startLocalCluster({
    images: { 'vgw:*': { executables: { vgw: VGW_IN_POD } } },
    podCidr: '127.0.48.0/22',
    loadBalancerCidr: '127.0.52.0/24',
    clusterIPCidr: '127.0.53.0/24',
  });
  const kc = cluster.kubeConfig();
  objects = KubernetesObjectApi.makeApiClient(kc);
  core = kc.makeApiClient(CoreV1Api);
  apps = kc.makeApiClient(AppsV1Api);
  rbac = kc.makeApiClient(RbacAuthorizationV1Api);
  await applyInstallManifest(cluster, objects);
});

after(() => stopCluster(cluster));

let gatewayAddress = '';
let gatewayPod = { name: '', uid: '', restarts: 0 };

test('the operator from install.yaml programs a Gateway, and an HTTPRoute serves through its address', { timeout: 4 * SLOW }, () =>
  withDiagnostics(async () => {
    await eventually('both operator replicas Ready', async () => {
      const pods = await operatorPods();
      return pods.length === 2 && pods.every(isReady);
    }, SLOW, 200);
    for (const obj of [...backend, gateway, route([HOST], {})]) await objects.create(obj);

    let address = '';
    await eventually('Gateway Programmed=True with an address', async () => {
      const status = (await read(gatewayRef)).status as { conditions?: { type: string; status: string }[]; addresses?: { value: string }[] } | undefined;
      const programmed = status?.conditions?.some((c) => c.type === 'Programmed' && c.status === 'True');
      address = status?.addresses?.[0]?.value ?? '';
      return programmed === true && address !== '';
    }, SLOW, 200);
    gatewayAddress = address;
    const service = await core.readNamespacedService({ namespace: NS, name: infra });
    assert.equal(service.status?.loadBalancer?.ingress?.[0]?.ip, gatewayAddress, 'the Gateway reports its Service load-balancer address');
    assert.match(gatewayAddress, /^127\.0\.52\./);

    let reply: Reply = { status: 0, body: '' };
    await eventually(`GET / Host: ${HOST} through ${gatewayAddress}:${LISTENER_PORT} answers 200`, async () => {
      reply = await get(gatewayAddress, HOST, '/');
      return reply.status === 200;
    }, SLOW, 200);
    const echoed = JSON.parse(reply.body) as { pod: string; host: string; path: string };
    const backends = (await echoPods()).map((p) => p.metadata?.name);
    assert.deepEqual(backends, [echoed.pod], 'the echo body names the backend pod');
    assert.equal(echoed.host, HOST);
    assert.equal(echoed.path, '/');
    assert.equal((await get(gatewayAddress, 'other.example.com', '/')).status, 404, 'a host no route names is not routed');

    const pods = await gatewayPods();
    assert.equal(pods.length, 1);
    gatewayPod = { name: pods[0].metadata!.name!, uid: pods[0].metadata!.uid!, restarts: pods[0].status?.containerStatuses?.[0]?.restartCount ?? 0 };

    // What a PodMonitor scrapes: /metrics at the pod IP, port 9902, of the gateway pod and of
    // each operator replica (left at the pod-local default, nothing answers there).
    const probe = new ClusterProbe(cluster);
    assert.match(await probe.metrics(pods[0]), /^vgw_vcl_reloads_total\{result="success"\} [1-9]/m, 'the gateway pod\'s /metrics on its pod IP');
    for (const pod of await operatorPods()) assert.match(await probe.metrics(pod), /^vgw_operator_leader /m, `${pod.metadata?.name}'s /metrics on its pod IP`);
  }),
);

test('a route change takes effect through the same address without replacing the gateway pod', { timeout: 2 * SLOW }, () =>
  withDiagnostics(async () => {
    assert.ok(gatewayPod.uid, 'the first test got traffic through the Gateway');
    const live = await read(routeRef);
    const changed = route([HOST, 'second.example.com'], { matches: [{ path: { type: 'PathPrefix', value: '/v2' } }] });
    await objects.replace({ ...changed, metadata: { ...changed.metadata, resourceVersion: live.metadata?.resourceVersion } });

    await eventually('GET / is no longer routed and GET /v2/x is, on both hostnames', async () => {
      const [root, v2, second] = await Promise.all([get(gatewayAddress, HOST, '/'), get(gatewayAddress, HOST, '/v2/x'), get(gatewayAddress, 'second.example.com', '/v2/y')]);
      return root.status === 404 && v2.status === 200 && second.status === 200;
    }, SLOW, 200);
    const echoed = JSON.parse((await get(gatewayAddress, 'second.example.com', '/v2/y')).body) as { path: string; host: string };
    assert.equal(echoed.path, '/v2/y');
    assert.equal(echoed.host, 'second.example.com');

    const pods = await gatewayPods();
    assert.deepEqual(
      pods.map((p) => ({ name: p.metadata?.name, uid: p.metadata?.uid, restarts: p.status?.containerStatuses?.[0]?.restartCount ?? 0 })),
      [gatewayPod],
      'the same gateway pod, not restarted, serves the changed route',
    );
  }),
);

test('deleting the Gateway removes its Deployment, Service, ServiceAccount, bindings and routing ConfigMaps', { timeout: 2 * SLOW }, () =>
  withDiagnostics(async () => {
    assert.ok(gatewayPod.uid, 'the first test got traffic through the Gateway');
    assert.ok((await core.listNamespacedConfigMap({ namespace: NS })).items.some((c) => c.metadata?.labels?.[GATEWAY_LABEL] !== undefined), 'routing ConfigMaps exist before');
    await read({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: infraName('gw', NS, GATEWAY) } });
    await objects.delete(gatewayRef);

    await eventually('every object made for the Gateway is gone', async () => {
      const gone = await Promise.all([
        notFound(() => apps.readNamespacedDeployment({ namespace: NS, name: infra })),
        notFound(() => core.readNamespacedService({ namespace: NS, name: infra })),
        notFound(() => core.readNamespacedServiceAccount({ namespace: NS, name: infra })),
        notFound(() => rbac.readNamespacedRoleBinding({ namespace: NS, name: infra })),
        notFound(() => rbac.readClusterRoleBinding({ name: infraName('gw', NS, GATEWAY) })),
      ]);
      const configMaps = (await core.listNamespacedConfigMap({ namespace: NS })).items.filter((c) => c.metadata?.labels?.[GATEWAY_LABEL] !== undefined);
      return gone.every(Boolean) && configMaps.length === 0;
    }, SLOW, 200);
    await eventually('the gateway pod is gone', async () => (await gatewayPods()).length === 0, SLOW, 200);
    assert.equal((await echoPods()).length, 1, 'the backend is untouched');
  }),
);
