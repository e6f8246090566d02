// The operator's reconcile loop end to end against the Kubernetes API test server, through
// @kubernetes/client-node: statuses, routing ConfigMaps, per-Gateway infrastructure, Programmed
// from the Deployment and Service, cleanup, a restart that writes nothing, and another
// controller's objects left alone. No varnishd: nothing runs pods here.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { DiscoveryV1Api, PatchStrategy, setHeaderOptions, type AppsV1Api, type CoreV1Api, type CustomObjectsApi, type RbacAuthorizationV1Api, type V1Deployment } from '@kubernetes/client-node';
import type { KubeApiServer } from '../support/kube-api-server.ts';
import type { Operator } from '../../src/operator/operator.ts';
import { CONTROLLER_NAME } from '../../src/gatewayapi/features.ts';
import { decodeRoutingConfig, GATEWAY_LABEL } from '../../src/ir/configmap.ts';
import { GATEWAY_NAME_LABEL, GATEWAY_NAMESPACE_LABEL, INFRA_HASH_ANNOTATION, INSTANCE_LABEL, MANAGED_BY, MANAGED_BY_LABEL, infraName } from '../../src/operator/infrastructure.ts';
import { encodeServed, SERVED_ANNOTATION } from '../../src/ir/served.ts';
import { PARAMETERS_API_VERSION, PARAMETERS_GROUP, PARAMETERS_KIND, PARAMETERS_PLURAL, PARAMETERS_VERSION } from '../../src/operator/parameters.ts';
import type { GatewayStatus, HTTPRouteStatus } from '../../src/gatewayapi/status.ts';
import type { Condition } from '../../src/gatewayapi/types.ts';
import { startOperatorApi, testOperator } from './support/operator-api.ts';
import { eventually } from './support/poll.ts';

const GROUP = 'gateway.networking.k8s.io';
const GW_API = `${GROUP}/v1`;
const NS = 'infra';
const INSTANCE = infraName(NS, 'gw');
const CLUSTER_NAME = infraName('gw', NS, 'gw');

let server: KubeApiServer;
let operator: Operator;
let custom: CustomObjectsApi;
let core: CoreV1Api;
let apps: AppsV1Api;
let rbac: RbacAuthorizationV1Api;

const gw = (name: string) => server.get({ apiVersion: GW_API, kind: 'Gateway', namespace: NS, name });
const gatewayStatus = () => gw('gw')?.status as GatewayStatus | undefined;
const cond = (conditions: Condition[] | undefined, type: string) => conditions?.find((c) => c.type === type);
const deployment = () => server.get({ apiVersion: 'apps/v1', kind: 'Deployment', namespace: NS, name: INSTANCE }) as unknown as V1Deployment | undefined;
const podHash = () => deployment()?.spec?.template?.metadata?.annotations?.[INFRA_HASH_ANNOTATION];

function routingConfig() {
  const cms = server.list('v1', 'ConfigMap', NS).filter((c) => c.metadata.labels?.[GATEWAY_LABEL] === 'gw');
  return decodeRoutingConfig(cms as Parameters<typeof decodeRoutingConfig>[0], 'gw');
}

async function settled(op: Operator): Promise<void> {
  await eventually('the operator leads', () => op.leading);
  await op.settle();
}

const listeners = (port: number) => [{ name: 'http', protocol: 'HTTP', port, allowedRoutes: { namespaces: { from: 'All' } } }];

before(async () => {
  ({ server, custom, core, apps, rbac } = await startOperatorApi({ address: '127.0.33.1' }));
  const discovery = server.kubeConfig().makeApiClient(DiscoveryV1Api);

  await custom.createClusterCustomObject({
    group: PARAMETERS_GROUP, version: PARAMETERS_VERSION, plural: PARAMETERS_PLURAL,
    body: { apiVersion: PARAMETERS_API_VERSION, kind: PARAMETERS_KIND, metadata: { name: 'edge' }, spec: { replicas: 2, service: { type: 'LoadBalancer' } } },
  });
  const gwObj = (plural: string, body: object, namespace?: string) =>
    namespace
      ? custom.createNamespacedCustomObject({ group: GROUP, version: 'v1', plural, namespace, body })
      : custom.createClusterCustomObject({ group: GROUP, version: 'v1', plural, body });
  await gwObj('gatewayclasses', {
    apiVersion: GW_API, kind: 'GatewayClass', metadata: { name: 'vgw' },
    spec: { controllerName: CONTROLLER_NAME, parametersRef: { group: PARAMETERS_GROUP, kind: PARAMETERS_KIND, name: 'edge' } },
  });
  await gwObj('gatewayclasses', { apiVersion: GW_API, kind: 'GatewayClass', metadata: { name: 'other' }, spec: { controllerName: 'example.com/other-controller' } });
  await gwObj('gateways', { apiVersion: GW_API, kind: 'Gateway', metadata: { name: 'gw', namespace: NS }, spec: { gatewayClassName: 'vgw', listeners: listeners(8080) } }, NS);
  await gwObj('gateways', { apiVersion: GW_API, kind: 'Gateway', metadata: { name: 'theirs', namespace: NS }, spec: { gatewayClassName: 'other', listeners: listeners(8080) } }, NS);
  await core.createNamespacedService({ namespace: 'apps', body: { metadata: { name: 'web', namespace: 'apps' }, spec: { ports: [{ name: 'http', port: 80, targetPort: 8080 }] } } });
  await discovery.createNamespacedEndpointSlice({
    namespace: 'apps',
    body: {
      metadata: { name: 'web-1', namespace: 'apps', labels: { 'kubernetes.io/service-name': 'web' } },
      addressType: 'IPv4',
      endpoints: [{ addresses: ['10.0.0.5'], conditions: { ready: true } }],
      ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    },
  });
  await gwObj('httproutes', {
    apiVersion: GW_API, kind: 'HTTPRoute', metadata: { name: 'web', namespace: 'apps' },
    spec: {
      parentRefs: [{ name: 'gw', namespace: NS }, { name: 'theirs', namespace: NS }],
      hostnames: ['web.example.com'],
      rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/' } }], backendRefs: [{ name: 'web', port: 80 }] }],
    },
  }, 'apps');

  operator = testOperator(server);
  await operator.start();
});

after(async () => {
  await operator?.stop();
  await server?.close();
});

test('statuses, routing ConfigMaps and per-Gateway objects of an accepted Gateway', async () => {
  await settled(operator);
  await eventually('GatewayClass Accepted', () => {
    const gc = server.get({ apiVersion: GW_API, kind: 'GatewayClass', name: 'vgw' });
    return cond((gc?.status as { conditions?: Condition[] } | undefined)?.conditions, 'Accepted')?.status === 'True';
  });
  await eventually('Gateway Accepted, not Programmed', () => {
    const s = gatewayStatus();
    return cond(s?.conditions, 'Accepted')?.status === 'True' && cond(s?.conditions, 'Programmed')?.reason === 'NoResources';
  });
  assert.equal(cond(gatewayStatus()?.conditions, 'Programmed')?.status, 'False');
  await eventually('route parent Accepted', () => {
    const r = server.get({ apiVersion: GW_API, kind: 'HTTPRoute', namespace: 'apps', name: 'web' })?.status as HTTPRouteStatus | undefined;
    const ours = r?.parents.filter((p) => p.controllerName === CONTROLLER_NAME) ?? [];
    return ours.length === 1 && ours[0].parentRef.name === 'gw' && cond(ours[0].conditions, 'Accepted')?.status === 'True';
  });

  const config = routingConfig();
  assert.equal(config.state, 'ok', 'reason' in config ? config.reason : '');
  if (config.state === 'ok') {
    assert.deepEqual(Object.keys(config.ir.routeGenerations ?? {}), ['apps/web']);
    assert.deepEqual(config.ir.services.map((s) => `${s.namespace}/${s.name}:${s.port}`), ['apps/web:80']);
    assert.deepEqual(config.ir.sockets.map((s) => s.port), [8080]);
  }

  const labelled = (labels: Record<string, string> | undefined) =>
    labels?.[MANAGED_BY_LABEL] === MANAGED_BY && labels?.['app.kubernetes.io/instance'] === INSTANCE && labels?.[GATEWAY_NAME_LABEL] === 'gw';
  const dep = await apps.readNamespacedDeployment({ namespace: NS, name: INSTANCE });
  assert.ok(labelled(dep.metadata?.labels));
  assert.equal(dep.spec?.replicas, 2, 'replicas from the class parameters');
  assert.equal(dep.metadata?.ownerReferences?.[0]?.name, 'gw');
  const svc = await core.readNamespacedService({ namespace: NS, name: INSTANCE });
  assert.ok(labelled(svc.metadata?.labels));
  assert.deepEqual(svc.spec?.ports?.map((p) => p.port), [8080]);
  assert.ok(labelled((await core.readNamespacedServiceAccount({ namespace: NS, name: INSTANCE })).metadata?.labels));
  assert.ok(labelled((await rbac.readNamespacedRoleBinding({ namespace: NS, name: INSTANCE })).metadata?.labels));
  assert.ok(labelled((await rbac.readClusterRoleBinding({ name: CLUSTER_NAME })).metadata?.labels));
});

test('a ready replica and a load-balancer address make the Gateway Programmed with that address', async () => {
  const dep = await apps.readNamespacedDeployment({ namespace: NS, name: INSTANCE });
  await apps.replaceNamespacedDeploymentStatus({ namespace: NS, name: INSTANCE, body: { ...dep, status: { replicas: 1, readyReplicas: 1 } } });
  await eventually('AddressNotAssigned once a pod is ready', () => cond(gatewayStatus()?.conditions, 'Programmed')?.reason === 'AddressNotAssigned');
  const svc = await core.readNamespacedService({ namespace: NS, name: INSTANCE });
  await core.replaceNamespacedServiceStatus({ namespace: NS, name: INSTANCE, body: { ...svc, status: { loadBalancer: { ingress: [{ ip: '192.0.2.10' }] } } } });
  await eventually('Gateway Programmed', () => cond(gatewayStatus()?.conditions, 'Programmed')?.status === 'True');
  assert.deepEqual(gatewayStatus()?.addresses, [{ type: 'IPAddress', value: '192.0.2.10' }]);
});

test('route Programmed: True only once every ready replica reports a config serving the route generation', async () => {
  const webRoute = () => server.get({ apiVersion: GW_API, kind: 'HTTPRoute', namespace: 'apps', name: 'web' });
  const programmed = () => {
    const r = webRoute();
    const ours = (r?.status as HTTPRouteStatus | undefined)?.parents.find((p) => p.controllerName === CONTROLLER_NAME && p.parentRef.name === 'gw');
    return cond(ours?.conditions, 'Programmed');
  };
  const is = (status: string, reason: string, message: RegExp, generation?: number) => () => {
    const c = programmed();
    return c?.status === status && c.reason === reason && message.test(c.message) && (generation === undefined || c.observedGeneration === generation);
  };
  const currentSha = () => {
    const c = routingConfig();
    assert.equal(c.state, 'ok');
    return c.state === 'ok' ? c.sha256 : '';
  };
  const podNames = ['gw-pod-a', 'gw-pod-b'];
  // Pods as the Deployment would make them: the pod template's labels, Ready; nothing runs.
  const setPod = (name: string, ready: boolean, served?: string) =>
    server.set({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name,
        namespace: NS,
        labels: { [MANAGED_BY_LABEL]: MANAGED_BY, [INSTANCE_LABEL]: INSTANCE, [GATEWAY_NAMESPACE_LABEL]: NS },
        ...(served ? { annotations: { [SERVED_ANNOTATION]: encodeServed({ sha256: served }) } } : {}),
      },
      spec: { containers: [{ name: 'gateway', image: 'vgw:test' }] },
      status: { phase: 'Running', conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] },
    });
  // What the agent does: a merge patch of its one annotation.
  const report = (name: string, sha: string) =>
    core.patchNamespacedPod({ namespace: NS, name, body: { metadata: { annotations: { [SERVED_ANNOTATION]: encodeServed({ sha256: sha }) } } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));

  await eventually('no ready replica: Pending', is('False', 'Pending', /no gateway replica is ready/));
  for (const name of podNames) setPod(name, true);
  const gen1 = webRoute()?.metadata.generation ?? 1;
  await eventually('two ready replicas, neither reports: Pending 0 of 2', is('False', 'Pending', /^0 of 2 ready gateway replicas/, gen1));
  const sha1 = currentSha();
  await report('gw-pod-a', sha1);
  await eventually('one of two reports the config: Pending 1 of 2', is('False', 'Pending', /^1 of 2 ready/, gen1));
  await report('gw-pod-b', sha1);
  await eventually('both report it: Programmed', is('True', 'Programmed', /every ready gateway replica/, gen1));
  const since = programmed()?.lastTransitionTime;

  // Re-reports of the same config and unrelated Pod changes write no route status.
  await operator.settle();
  const routeWrites = () => server.countRequests({ verb: 'update', resource: 'httproutes' });
  const writesBefore = routeWrites();
  for (const name of podNames) {
    await report(name, sha1);
    await core.patchNamespacedPod({ namespace: NS, name, body: { metadata: { labels: { touched: 'yes' } } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
  }
  const reconcilesBefore = operator.counts.reconciles;
  await eventually('the Pod events reached the operator', () => operator.counts.reconciles > reconcilesBefore);
  await operator.settle();
  assert.equal(routeWrites(), writesBefore, 'no route status write for an unchanged verdict');
  assert.equal(programmed()?.lastTransitionTime, since);

  // A new route generation: Pending until both replicas serve a config carrying it.
  const route = webRoute();
  const spec = route?.spec as { rules: unknown[] };
  await custom.replaceNamespacedCustomObject({
    group: GROUP, version: 'v1', plural: 'httproutes', namespace: 'apps', name: 'web',
    body: { ...route, spec: { ...spec, rules: [...spec.rules, { matches: [{ path: { type: 'PathPrefix', value: '/v2' } }], backendRefs: [{ name: 'web', port: 80 }] }] } },
  });
  const gen2 = gen1 + 1;
  await eventually('new generation: Pending 0 of 2', is('False', 'Pending', /^0 of 2 ready/, gen2));
  await eventually('new routing config', () => currentSha() !== sha1);
  const sha2 = currentSha();
  await report('gw-pod-a', sha2);
  await eventually('one replica on the new config: Pending 1 of 2', is('False', 'Pending', /^1 of 2 ready/, gen2));
  // A replica that is not ready does not hold the route back.
  setPod('gw-pod-b', false, sha1);
  await eventually('the only ready replica serves it: Programmed', is('True', 'Programmed', /every ready/, gen2));
  setPod('gw-pod-b', true, sha1);
  await eventually('ready again on the old config: Pending 1 of 2', is('False', 'Pending', /^1 of 2 ready/, gen2));
  await report('gw-pod-b', sha2);
  await eventually('both on the new config: Programmed', is('True', 'Programmed', /every ready/, gen2));
  assert.equal(cond((webRoute()?.status as HTTPRouteStatus).parents.find((p) => p.parentRef.name === 'gw')?.conditions, 'Accepted')?.observedGeneration, gen2);
});

test('a route change re-publishes the routing config and keeps the pods; a listener port change replaces them', async () => {
  const before = routingConfig();
  assert.equal(before.state, 'ok');
  const hash = podHash();
  assert.ok(hash);
  const reusedBefore = operator.translationStats.reused;
  const route = server.get({ apiVersion: GW_API, kind: 'HTTPRoute', namespace: 'apps', name: 'web' });
  const spec = route?.spec as { hostnames: string[] };
  await custom.replaceNamespacedCustomObject({
    group: GROUP, version: 'v1', plural: 'httproutes', namespace: 'apps', name: 'web',
    body: { ...route, spec: { ...spec, hostnames: ['web.example.com', 'www.example.com'] } },
  });
  await eventually('new routing config', () => {
    const now = routingConfig();
    return now.state === 'ok' && before.state === 'ok' && now.sha256 !== before.sha256;
  });
  await settled(operator);
  assert.equal(podHash(), hash, 'a route change does not touch the pod template');
  // Unchanged API objects reach the translator as the same objects: only the route is new.
  assert.ok(operator.translationStats.reused > reusedBefore, 'a route change is translated incrementally');

  const gateway = gw('gw');
  await custom.replaceNamespacedCustomObject({
    group: GROUP, version: 'v1', plural: 'gateways', namespace: NS, name: 'gw',
    body: { ...gateway, spec: { ...(gateway?.spec as object), listeners: listeners(9090) } },
  });
  await eventually('new pod template', () => podHash() !== undefined && podHash() !== hash);
  const svc = await core.readNamespacedService({ namespace: NS, name: INSTANCE });
  assert.deepEqual(svc.spec?.ports?.map((p) => p.port), [9090]);
  await eventually('routing config on the new port', () => {
    const c = routingConfig();
    return c.state === 'ok' && c.ir.sockets.map((s) => s.port).join() === '9090';
  });
});

test('objects from the API are validated: a rejected route and a class with missing parameters get status', async () => {
  await custom.createNamespacedCustomObject({
    group: GROUP, version: 'v1', plural: 'httproutes', namespace: 'apps',
    body: { apiVersion: GW_API, kind: 'HTTPRoute', metadata: { name: 'bad', namespace: 'apps' }, spec: { parentRefs: [{ name: 'gw', namespace: NS }], hostnames: ['-bad-'] } },
  });
  await custom.createClusterCustomObject({
    group: GROUP, version: 'v1', plural: 'gatewayclasses',
    body: { apiVersion: GW_API, kind: 'GatewayClass', metadata: { name: 'broken' }, spec: { controllerName: CONTROLLER_NAME, parametersRef: { group: PARAMETERS_GROUP, kind: PARAMETERS_KIND, name: 'missing' } } },
  });
  await eventually('rejected route reported', () => {
    const r = server.get({ apiVersion: GW_API, kind: 'HTTPRoute', namespace: 'apps', name: 'bad' })?.status as HTTPRouteStatus | undefined;
    return cond(r?.parents[0]?.conditions, 'Accepted')?.status === 'False';
  });
  await eventually('class with missing parameters not accepted', () => {
    const gc = server.get({ apiVersion: GW_API, kind: 'GatewayClass', name: 'broken' });
    const c = cond((gc?.status as { conditions?: Condition[] } | undefined)?.conditions, 'Accepted');
    return c?.status === 'False' && c.reason === 'InvalidParameters' && /GatewayClassParameters missing not found/.test(c.message);
  });
  const config = routingConfig();
  assert.ok(config.state === 'ok' && Object.keys(config.ir.routeGenerations ?? {}).join() === 'apps/web', 'the rejected route is not routed');
});

test('a restarted operator writes no status and updates no object', async () => {
  await settled(operator);
  await operator.stop();
  server.resetRequests();
  operator = testOperator(server);
  await operator.start();
  await settled(operator);
  // One more reconcile from a quiet state, so that nothing is left pending.
  await operator.settle();
  const writes = server.requests.filter((r) => r.verb !== 'get' && r.verb !== 'list' && r.verb !== 'watch' && r.resource !== 'leases');
  assert.deepEqual(writes.map((r) => `${r.method} ${r.path}`), []);
  assert.equal(operator.statusWriter.counts.written, 0);
  assert.equal(operator.counts.infra.created + operator.counts.infra.updated + operator.counts.infra.deleted, 0);
  assert.ok(operator.counts.infra.unchanged >= 5);
  assert.equal(operator.counts.published, 0);
});

test('a Gateway whose Deployment cannot be written is Pending and retried; the others are unaffected', async () => {
  const gw2 = infraName(NS, 'gw2');
  const programmedBefore = cond(gatewayStatus()?.conditions, 'Programmed');
  server.failNext({ verb: 'create', resource: 'deployments', namespace: NS, times: 1, code: 500 });
  await custom.createNamespacedCustomObject({
    group: GROUP, version: 'v1', plural: 'gateways', namespace: NS,
    body: { apiVersion: GW_API, kind: 'Gateway', metadata: { name: 'gw2', namespace: NS }, spec: { gatewayClassName: 'vgw', listeners: listeners(8081) } },
  });
  await eventually('gw2 reported Pending', () => cond((gw('gw2')?.status as GatewayStatus | undefined)?.conditions, 'Programmed')?.reason === 'Pending');
  await eventually('gw2 Deployment created by a retry', () => server.get({ apiVersion: 'apps/v1', kind: 'Deployment', namespace: NS, name: gw2 }) !== undefined);
  await eventually('gw2 NoResources after the retry', () => cond((gw('gw2')?.status as GatewayStatus | undefined)?.conditions, 'Programmed')?.reason === 'NoResources');
  assert.deepEqual(cond(gatewayStatus()?.conditions, 'Programmed'), programmedBefore, 'the other Gateway keeps its status');
  assert.match(await operator.metrics.registry.metrics(), /vgw_operator_reconcile_duration_seconds_count\{outcome="error"\} [1-9]/);
  await custom.deleteNamespacedCustomObject({ group: GROUP, version: 'v1', plural: 'gateways', namespace: NS, name: 'gw2' });
  await eventually('gw2 objects deleted', () => server.get({ apiVersion: 'apps/v1', kind: 'Deployment', namespace: NS, name: gw2 }) === undefined);
});

test('a 409 on a Deployment update is retried in place: the object converges and the Gateway status is not written', async () => {
  await settled(operator);
  const live = deployment();
  assert.ok(live?.spec);
  const replicas = live.spec.replicas;
  assert.equal(replicas, 2, 'the class parameters ask for 2 replicas');
  server.resetRequests();
  server.failNext({ verb: 'update', resource: 'deployments', namespace: NS, name: INSTANCE, code: 409, reason: 'Conflict' });
  // A hand edit: the operator puts the rendering back, and that update meets the conflict.
  await apps.patchNamespacedDeployment({ namespace: NS, name: INSTANCE, body: { spec: { replicas: 5 } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
  await eventually('the Deployment is put back', () => deployment()?.spec?.replicas === replicas);
  await settled(operator);
  assert.equal(server.countRequests({ verb: 'update', resource: 'deployments', namespace: NS, name: INSTANCE }), 2, 'the conflicting update, then the retried one');
  assert.ok(server.countRequests({ verb: 'get', resource: 'deployments', namespace: NS, name: INSTANCE }) >= 2, 're-read before the retry');
  const statusWrites = server.requests.filter((r) => r.resource === 'gateways' && r.subresource === 'status' && r.name === 'gw' && r.verb !== 'get');
  assert.deepEqual(statusWrites.map((r) => `${r.method} ${r.path}`), [], 'no Pending status, no status written back');
});

test('spec.addresses: one IPAddress is the LoadBalancer Service\'s loadBalancerIP; two are AddressNotUsable', async () => {
  const gw3 = infraName(NS, 'gw3');
  const gw3Status = () => gw('gw3')?.status as GatewayStatus | undefined;
  const body = (addresses: { type: string; value: string }[]) => ({
    apiVersion: GW_API, kind: 'Gateway', metadata: { name: 'gw3', namespace: NS },
    spec: { gatewayClassName: 'vgw', addresses, listeners: listeners(8082) },
  });
  await custom.createNamespacedCustomObject({ group: GROUP, version: 'v1', plural: 'gateways', namespace: NS, body: body([{ type: 'IPAddress', value: '192.0.2.33' }]) });
  await eventually('gw3 Service asks for the address', () => (server.get({ apiVersion: 'v1', kind: 'Service', namespace: NS, name: gw3 })?.spec as { loadBalancerIP?: string } | undefined)?.loadBalancerIP === '192.0.2.33');
  await eventually('gw3 waits for pods', () => cond(gw3Status()?.conditions, 'Programmed')?.reason === 'NoResources');

  const live = gw('gw3') as { metadata: object };
  await custom.replaceNamespacedCustomObject({
    group: GROUP, version: 'v1', plural: 'gateways', namespace: NS, name: 'gw3',
    body: { ...body([{ type: 'IPAddress', value: '192.0.2.33' }, { type: 'IPAddress', value: '192.0.2.34' }]), metadata: live.metadata },
  });
  await eventually('gw3 AddressNotUsable', () => cond(gw3Status()?.conditions, 'Programmed')?.reason === 'AddressNotUsable');
  assert.equal(cond(gw3Status()?.conditions, 'Programmed')?.status, 'False');
  assert.match(cond(gw3Status()?.conditions, 'Programmed')?.message ?? '', /only one IPAddress/);
  assert.equal(cond(gw3Status()?.conditions, 'Accepted')?.status, 'True');
  await custom.deleteNamespacedCustomObject({ group: GROUP, version: 'v1', plural: 'gateways', namespace: NS, name: 'gw3' });
  await eventually('gw3 objects deleted', () => server.get({ apiVersion: 'v1', kind: 'Service', namespace: NS, name: gw3 }) === undefined);
});

test('deleting the Gateway removes its objects, ClusterRoleBinding and ConfigMaps included', async () => {
  await custom.deleteNamespacedCustomObject({ group: GROUP, version: 'v1', plural: 'gateways', namespace: NS, name: 'gw' });
  await eventually('per-Gateway objects deleted', () =>
    ['Deployment', 'Service', 'ServiceAccount', 'RoleBinding'].every((kind) => {
      const apiVersion = kind === 'Deployment' ? 'apps/v1' : kind === 'RoleBinding' ? 'rbac.authorization.k8s.io/v1' : 'v1';
      return server.get({ apiVersion, kind, namespace: NS, name: INSTANCE }) === undefined;
    }) &&
    server.get({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', name: CLUSTER_NAME }) === undefined &&
    server.list('v1', 'ConfigMap', NS).length === 0,
  );
  assert.deepEqual(server.list('rbac.authorization.k8s.io/v1', 'ClusterRoleBinding').map((o) => o.metadata.name), []);
  await eventually('our route parent entry removed', () => {
    const r = server.get({ apiVersion: GW_API, kind: 'HTTPRoute', namespace: 'apps', name: 'web' })?.status as HTTPRouteStatus | undefined;
    return r !== undefined && r.parents.every((p) => p.controllerName !== CONTROLLER_NAME);
  });
});

test('/metrics names reconciles, status writes by outcome, published configs and infrastructure applies', async () => {
  const text = await operator.metrics.registry.metrics();
  assert.match(text, /vgw_operator_reconcile_duration_seconds_count\{outcome="ok"\} [1-9]/);
  assert.match(text, /vgw_operator_translation_duration_seconds_count [1-9]/);
  assert.match(text, /vgw_operator_status_writes_total\{outcome="noop"\} [1-9]/);
  assert.match(text, /vgw_operator_infrastructure_applies_total\{kind="Deployment",action="deleted"\} [1-9]/);
  assert.match(text, /vgw_operator_routing_configs_published_total [1-9]/);
});

test("another controller's class and Gateway are never touched", async () => {
  await settled(operator);
  const theirs = gw('theirs');
  assert.equal(theirs?.status, undefined);
  assert.equal(server.get({ apiVersion: GW_API, kind: 'GatewayClass', name: 'other' })?.status, undefined);
  const route = server.get({ apiVersion: GW_API, kind: 'HTTPRoute', namespace: 'apps', name: 'web' })?.status as HTTPRouteStatus;
  assert.ok(route.parents.every((p) => p.parentRef.name !== 'theirs'));
  assert.deepEqual(server.list('apps/v1', 'Deployment').map((d) => d.metadata.name), []);
});
