import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CONTROLLER_NAME } from '../../src/gatewayapi/features.ts';
import { AddressBook, composeWorld, loadManifests, mountedKeyData, type K8sObject } from './world.ts';
import { backendOfPod, judgeDistribution, patchedEndpointSlices } from './procedures.ts';
import { awaitConsistentFailure, awaitConvergence } from './converge.ts';
import type { TrafficTest } from './data.ts';

const BASE = 'base/manifests.yaml';
const find = (objs: K8sObject[], kind: string, name: string) => objs.find((o) => o.kind === kind && o.metadata.name === name);

test('gateways get the class under test and a stable loopback address', () => {
  const book = new AddressBook();
  const a = composeWorld(loadManifests([BASE]), book);
  const b = composeWorld(loadManifests([BASE, 'tests/httproute-hostname-intersection.yaml']), book);
  const gw = find(b.objects, 'Gateway', 'same-namespace');
  assert.equal(gw?.spec.gatewayClassName, 'vgw');
  assert.deepEqual(gw?.spec.addresses, [{ type: 'IPAddress', value: a.gatewayIps.get('gateway-conformance-infra/same-namespace') }]);
  const ips = [...b.gatewayIps.values()];
  assert.equal(new Set(ips).size, ips.length);
  assert.ok(ips.every((ip) => ip.startsWith('127.0.1.')));
  assert.equal(find(b.objects, 'GatewayClass', 'vgw')?.spec.controllerName, CONTROLLER_NAME);
  assert.equal(find(b.objects, 'Deployment', 'infra-backend-v1'), undefined);
});

test('echo pods per runnable Deployment and EndpointSlices with target ports', () => {
  const w = composeWorld(loadManifests([BASE]), new AddressBook());
  const byDeployment = (d: string) => w.pods.filter((p) => p.deployment === d);
  assert.equal(byDeployment('infra-backend-v1').length, 2);
  assert.equal(byDeployment('infra-backend-v3').length, 1);
  // One in the infra and one in the app-backend namespace, both in the echo's HTTPS mode.
  assert.equal(byDeployment('tls-backend').length, 2);
  assert.equal(byDeployment('grpc-infra-backend-v1').length, 0);
  for (const p of w.pods) assert.match(p.name, new RegExp(`^${p.deployment}-[a-z0-9]{10}-[a-z0-9]{5}$`));
  assert.equal(new Set(w.pods.map((p) => p.ip)).size, w.pods.length);
  const slice = w.objects.find((o) => o.kind === 'EndpointSlice' && o.metadata.labels?.['kubernetes.io/service-name'] === 'infra-backend-v1');
  assert.deepEqual(
    (slice?.ports as { name: string; port: number }[]).map((p) => `${p.name}:${p.port}`),
    ['first-port:3000', 'second-port:3001', 'third-port:3000'],
  );
  assert.deepEqual((slice?.endpoints as { addresses: string[] }[]).map((e) => e.addresses[0]), byDeployment('infra-backend-v1').map((p) => p.ip));
});

test('TLS echo Deployments serve HTTPS with the mounted Secret, client CAs from the mounted ConfigMap', () => {
  const w = composeWorld(loadManifests([BASE, 'tests/gateway-tls-backend-client-certificate.yaml']), new AddressBook());
  const infra = w.pods.find((p) => p.deployment === 'tls-backend' && p.namespace === 'gateway-conformance-infra');
  const key = (name: string, k: string, kind = 'Secret') => ({ kind, namespace: 'gateway-conformance-infra', name, key: k });
  assert.deepEqual(infra?.tls, { cert: key('tls-checks-certificate', 'tls.crt'), key: key('tls-checks-certificate', 'tls.key') });
  const validating = w.pods.find((p) => p.deployment === 'tls-backend-with-client-cert-validation');
  assert.deepEqual(validating?.tls?.clientCa, key('tls-checks-ca-certificate', 'ca.crt', 'ConfigMap'));
  const slice = w.objects.find((o) => o.kind === 'EndpointSlice' && o.metadata.namespace === 'gateway-conformance-infra' && o.metadata.labels?.['kubernetes.io/service-name'] === 'tls-backend');
  assert.deepEqual((slice?.ports as { port: number }[]).map((p) => p.port), [8443]);
  assert.deepEqual((slice?.endpoints as { addresses: string[] }[])[0].addresses, [infra?.ip]);
  // A cluster runs the TLS echo Deployments itself (its kubelet mounts the Secret and ConfigMap).
  const cluster = composeWorld(loadManifests([BASE]), new AddressBook(), { cluster: true });
  assert.equal(cluster.deployments.find((d) => d.name === 'tls-backend')?.notRunnable, undefined);
  assert.ok(cluster.objects.some((o) => o.kind === 'Deployment' && o.metadata.name === 'tls-backend'), 'applied to the cluster');
  // The key material is read from the world's objects (Secret data is base64).
  const objects: K8sObject[] = [{ apiVersion: 'v1', kind: 'Secret', metadata: { name: 's', namespace: 'n' }, data: { 'tls.crt': Buffer.from('PEM').toString('base64') } }];
  assert.equal(mountedKeyData(objects, { kind: 'Secret', namespace: 'n', name: 's', key: 'tls.crt' }).toString(), 'PEM');
  assert.throws(() => mountedKeyData(objects, { kind: 'Secret', namespace: 'n', name: 's', key: 'tls.key' }), /has no key tls.key/);
});

test('test-provided EndpointSlices are kept, and filled like upstream does', () => {
  const w = composeWorld(loadManifests([BASE, 'tests/httproute-service-types.yaml']), new AddressBook());
  const slicesOf = (svc: string) => w.objects.filter((o) => o.kind === 'EndpointSlice' && o.metadata.labels?.['kubernetes.io/service-name'] === svc);
  assert.equal(slicesOf('manual-endpointslices').length, 2);
  assert.equal(slicesOf('headless').length, 1);
  const test = { gateway: { namespace: 'gateway-conformance-infra' }, procedural: { type: 'patchEndpointSlices', endpointSlices: ['manual-endpointslices-ip4', 'manual-endpointslices-ip6'] } } as unknown as TrafficTest;
  const patched = patchedEndpointSlices(test, w.objects, w.pods);
  assert.deepEqual(patched.map((o) => o.metadata.name), ['manual-endpointslices-ip4']);
  assert.equal((patched[0].endpoints as unknown[]).length, 2);
});

test('weight helpers follow upstream', () => {
  assert.equal(backendOfPod('infra-backend-v1-7d4f9c6b8d-x2v9q'), 'infra-backend-v1');
  const weights = { 'infra-backend-v1': 0.7, 'infra-backend-v2': 0.3, 'infra-backend-v3': 0 };
  assert.deepEqual(judgeDistribution(new Map([['infra-backend-v1', 360], ['infra-backend-v2', 140]]), 500, weights, 0.05), []);
  assert.equal(judgeDistribution(new Map([['infra-backend-v1', 300], ['infra-backend-v2', 200]]), 500, weights, 0.05).length, 2);
  assert.match(judgeDistribution(new Map([['infra-backend-v1', 350], ['infra-backend-v2', 140], ['infra-backend-v3', 10]]), 500, weights, 0.05)[0], /expected 2 backends/);
});

test('convergence needs consecutive passes and resets on failure', async () => {
  const script = [undefined, 'bad', undefined, undefined, undefined];
  let i = 0;
  const r = await awaitConvergence(async () => script[i++], { threshold: 3, timeoutMs: 2000, failDelayMs: 1 });
  assert.deepEqual({ ok: r.ok, attempts: r.attempts }, { ok: true, attempts: 5 });
  const never = await awaitConvergence(async () => 'nope', { threshold: 3, timeoutMs: 50, failDelayMs: 5 });
  assert.equal(never.ok, false);
  assert.equal(never.lastFailure, 'nope');
  const thrown = await awaitConvergence(async () => { throw new Error('ECONNREFUSED'); }, { threshold: 1, timeoutMs: 20, failDelayMs: 5 });
  assert.match(thrown.lastFailure ?? '', /request failed: ECONNREFUSED/);
});

test('a consistent failure needs 5 non-200, non-timeout answers in a row; a 200 fails at once', async () => {
  const opts = { threshold: 3, timeoutMs: 2000, failDelayMs: 1 };
  const run = async (script: (number | Error)[]) => {
    let i = 0;
    return awaitConsistentFailure(async () => {
      const next = script[Math.min(i++, script.length - 1)];
      if (next instanceof Error) throw next;
      return next;
    }, opts);
  };
  const ok = await run([502, 504, new Error('reset'), 502, 503, 500, 404, 502]);
  assert.deepEqual({ ok: ok.ok, attempts: ok.attempts }, { ok: true, attempts: 8 });
  const served = await run([502, 502, 200]);
  assert.deepEqual({ ok: served.ok, attempts: served.attempts }, { ok: false, attempts: 3 });
  const timeouts = await awaitConsistentFailure(async () => 504, { ...opts, timeoutMs: 30 });
  assert.equal(timeouts.ok, false);
});
