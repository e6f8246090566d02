// The operator's periodic resync against the Kubernetes API test server: what is changed behind
// the operator's back without an event it acts on (a status edited by hand, an object it does
// not watch, a deleted routing ConfigMap) is put back by the next resync, and a resync of a
// cluster that already matches writes nothing.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { CoreV1Api, CustomObjectsApi, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import type { KubeApiServer } from '../support/kube-api-server.ts';
import type { Operator } from '../../src/operator/operator.ts';
import { CONTROLLER_NAME } from '../../src/gatewayapi/features.ts';
import { headName } from '../../src/ir/configmap.ts';
import { infraName } from '../../src/operator/infrastructure.ts';
import type { GatewayStatus, HTTPRouteStatus } from '../../src/gatewayapi/status.ts';
import type { Condition } from '../../src/gatewayapi/types.ts';
import { startOperatorApi, testOperator } from './support/operator-api.ts';
import { eventually } from './support/poll.ts';

const GROUP = 'gateway.networking.k8s.io';
const GW_API = `${GROUP}/v1`;
const NS = 'edge';
const INSTANCE = infraName(NS, 'gw');
const RESYNC_MS = 300;

let server: KubeApiServer;
let operator: Operator;
let custom: CustomObjectsApi;
let core: CoreV1Api;
let rbac: RbacAuthorizationV1Api;

const cond = (conditions: Condition[] | undefined, type: string) => conditions?.find((c) => c.type === type);
const gatewayStatus = () => server.get({ apiVersion: GW_API, kind: 'Gateway', namespace: NS, name: 'gw' })?.status as GatewayStatus | undefined;
const routeStatus = () => server.get({ apiVersion: GW_API, kind: 'HTTPRoute', namespace: 'apps', name: 'web' })?.status as HTTPRouteStatus | undefined;
/** Conditions without lastTransitionTime: a condition put back after a hand edit transitions anew. */
const conditions = (cs: Condition[] | undefined) => JSON.stringify((cs ?? []).map(({ lastTransitionTime: _t, ...c }) => c));
const ourParent = () => routeStatus()?.parents.find((p) => p.controllerName === CONTROLLER_NAME);

/** Waits until `n` more resyncs have completed than when called. */
async function resyncs(n: number): Promise<void> {
  const target = operator.resyncs + n;
  await eventually(`${n} more resyncs`, () => operator.resyncs >= target);
  await operator.statusWriter.flush();
}

before(async () => {
  ({ server, custom, core, rbac } = await startOperatorApi({ address: '127.0.38.1' }));
  const create = (plural: string, body: object, namespace?: string) =>
    namespace
      ? custom.createNamespacedCustomObject({ group: GROUP, version: 'v1', plural, namespace, body })
      : custom.createClusterCustomObject({ group: GROUP, version: 'v1', plural, body });
  await create('gatewayclasses', { apiVersion: GW_API, kind: 'GatewayClass', metadata: { name: 'vgw' }, spec: { controllerName: CONTROLLER_NAME } });
  await create('gateways', {
    apiVersion: GW_API, kind: 'Gateway', metadata: { name: 'gw', namespace: NS },
    spec: { gatewayClassName: 'vgw', listeners: [{ name: 'http', protocol: 'HTTP', port: 8080, allowedRoutes: { namespaces: { from: 'All' } } }] },
  }, NS);
  await core.createNamespacedService({ namespace: 'apps', body: { metadata: { name: 'web', namespace: 'apps' }, spec: { ports: [{ name: 'http', port: 80 }] } } });
  await create('httproutes', {
    apiVersion: GW_API, kind: 'HTTPRoute', metadata: { name: 'web', namespace: 'apps' },
    spec: { parentRefs: [{ name: 'gw', namespace: NS }], rules: [{ backendRefs: [{ name: 'web', port: 80 }] }] },
  }, 'apps');
  operator = testOperator(server, { resyncMs: RESYNC_MS });
  await operator.start();
  await eventually('the operator leads', () => operator.leading);
  await operator.settle();
  await eventually('route accepted', () => cond(ourParent()?.conditions, 'Accepted')?.status === 'True');
  await eventually('RoleBinding created', () => server.get({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', namespace: NS, name: INSTANCE }) !== undefined);
});

after(async () => {
  await operator?.stop();
  await server?.close();
});

test('a resync of a cluster that matches writes nothing', async () => {
  await resyncs(1);
  server.resetRequests();
  await resyncs(2);
  const writes = server.requests.filter((r) => r.verb !== 'get' && r.verb !== 'list' && r.verb !== 'watch' && r.resource !== 'leases');
  assert.deepEqual(writes.map((r) => `${r.method} ${r.path}`), []);
  assert.ok(server.requests.some((r) => r.verb === 'get' && r.resource === 'httproutes'), 'the route status was re-read');
});

test('hand-edited statuses of a route entry and a Gateway are put back by the resync', async () => {
  const route = server.get({ apiVersion: GW_API, kind: 'HTTPRoute', namespace: 'apps', name: 'web' }) as unknown as { status: HTTPRouteStatus };
  const wanted = structuredClone(ourParent());
  const edited = structuredClone(route.status);
  const accepted = cond(edited.parents.find((p) => p.controllerName === CONTROLLER_NAME)?.conditions, 'Accepted') as Condition;
  accepted.message = 'edited by hand';
  await custom.replaceNamespacedCustomObjectStatus({ group: GROUP, version: 'v1', plural: 'httproutes', namespace: 'apps', name: 'web', body: { ...route, status: edited } });

  const gateway = server.get({ apiVersion: GW_API, kind: 'Gateway', namespace: NS, name: 'gw' }) as unknown as { status: GatewayStatus };
  const wantedGateway = structuredClone(gateway.status);
  await custom.replaceNamespacedCustomObjectStatus({
    group: GROUP, version: 'v1', plural: 'gateways', namespace: NS, name: 'gw',
    body: { ...gateway, status: { ...gateway.status, conditions: gateway.status.conditions.filter((c) => c.type !== 'Programmed') } },
  });
  assert.equal(cond(ourParent()?.conditions, 'Accepted')?.message, 'edited by hand');

  await eventually('route entry put back', () => conditions(ourParent()?.conditions) === conditions(wanted?.conditions));
  await eventually('Gateway status put back', () => conditions(gatewayStatus()?.conditions) === conditions(wantedGateway.conditions));
  assert.deepEqual(ourParent()?.parentRef, wanted?.parentRef);
  assert.deepEqual(gatewayStatus()?.listeners, wantedGateway.listeners);
});

test('an unwatched object edited by hand and a deleted routing ConfigMap are put back by the resync', async () => {
  const rb = await rbac.readNamespacedRoleBinding({ namespace: NS, name: INSTANCE });
  const subjects = structuredClone(rb.subjects);
  await rbac.replaceNamespacedRoleBinding({ namespace: NS, name: INSTANCE, body: { ...rb, subjects: [{ kind: 'ServiceAccount', name: 'intruder', namespace: NS }] } });
  const sa = await core.readNamespacedServiceAccount({ namespace: NS, name: INSTANCE });
  const labels = structuredClone(sa.metadata?.labels);
  await core.replaceNamespacedServiceAccount({ namespace: NS, name: INSTANCE, body: { ...sa, metadata: { ...sa.metadata, labels: { ...labels, extra: 'by-hand' } } } });
  await core.deleteNamespacedConfigMap({ namespace: NS, name: headName('gw') });

  await eventually('RoleBinding subjects put back', async () => JSON.stringify((await rbac.readNamespacedRoleBinding({ namespace: NS, name: INSTANCE })).subjects) === JSON.stringify(subjects));
  await eventually('ServiceAccount labels put back', async () => JSON.stringify((await core.readNamespacedServiceAccount({ namespace: NS, name: INSTANCE })).metadata?.labels) === JSON.stringify(labels));
  await eventually('head ConfigMap re-published', () => server.get({ apiVersion: 'v1', kind: 'ConfigMap', namespace: NS, name: headName('gw') }) !== undefined);
});
