// A kind whose CRD is not installed (BackendTLSPolicy v1 before Gateway API 1.4): the watch
// counts it as empty so the operator starts, and picks it up once the API server serves it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { CustomObjectsApi, type KubernetesObject } from '@kubernetes/client-node';
import pino from 'pino';
import { WatchedKind } from '../../src/providers/kubernetes/watch.ts';
import { eventually } from './support/poll.ts';
import { startKubeApiServer, type KubeApiServer } from '../support/kube-api-server.ts';

const GW = 'gateway.networking.k8s.io';
const POLICY = { group: GW, version: 'v1', kind: 'BackendTLSPolicy', plural: 'backendtlspolicies', namespaced: true, status: true, crd: true };

let server: KubeApiServer;

before(async () => {
  server = await startKubeApiServer({ address: '127.0.90.1', bookmarkIntervalMs: 0, omit: [`${GW}/v1/BackendTLSPolicy`] });
});

after(async () => {
  await server?.close();
});

function policyWatch(optional: boolean, changes: { n: number }): WatchedKind<KubernetesObject> {
  const custom = server.kubeConfig().makeApiClient(CustomObjectsApi);
  return new WatchedKind<KubernetesObject>({
    kubeConfig: server.kubeConfig(),
    path: `/apis/${GW}/v1/backendtlspolicies`,
    list: () => custom.listCustomObjectForAllNamespaces({ group: GW, version: 'v1', plural: 'backendtlspolicies' }),
    onChange: () => changes.n++,
    logger: pino({ level: 'silent' }),
    name: 'BackendTLSPolicy',
    optional,
    minBackoffMs: 20,
    maxBackoffMs: 50,
  });
}

test('an optional kind the API server does not serve syncs as empty, and appears once it is served', async () => {
  const changes = { n: 0 };
  const watch = policyWatch(true, changes);
  try {
    await watch.start();
    await watch.synced;
    assert.deepEqual(watch.list(), []);
    server.addResource(POLICY);
    server.set({ apiVersion: `${GW}/v1`, kind: 'BackendTLSPolicy', metadata: { namespace: 'apps', name: 'api' }, spec: {} });
    await eventually('the policy is listed once the kind is served', () => watch.list().length === 1);
    assert.ok(changes.n >= 2, 'the first (empty) sync and the appearance are both changes');
  } finally {
    await watch.stop();
  }
});

test('a kind that is not optional does not sync while it is not served', async () => {
  const other = await startKubeApiServer({ address: '127.0.90.2', bookmarkIntervalMs: 0, omit: [`${GW}/v1/BackendTLSPolicy`] });
  const custom = other.kubeConfig().makeApiClient(CustomObjectsApi);
  let listed = 0;
  const watch = new WatchedKind<KubernetesObject>({
    kubeConfig: other.kubeConfig(),
    path: `/apis/${GW}/v1/backendtlspolicies`,
    list: () => {
      listed++;
      return custom.listCustomObjectForAllNamespaces({ group: GW, version: 'v1', plural: 'backendtlspolicies' });
    },
    onChange: () => undefined,
    logger: pino({ level: 'silent' }),
    name: 'BackendTLSPolicy',
    minBackoffMs: 20,
    maxBackoffMs: 50,
  });
  let synced = false;
  void watch.synced.then(() => (synced = true));
  try {
    await watch.start();
    await eventually('the list was retried', () => listed >= 3);
    assert.equal(synced, false);
  } finally {
    await watch.stop();
    await other.close();
  }
});
