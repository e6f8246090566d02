import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CONTROLLER_NAME } from '../../src/gatewayapi/features.ts';
import { AddressBook, composeWorld, loadManifests, type K8sObject } from './world.ts';
import { backendOfPod, judgeDistribution, patchedEndpointSlices } from './procedures.ts';
import { awaitConvergence } from './converge.ts';
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
  assert.equal(byDeployment('tls-backend').length, 0);
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
