import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { StatusOnlyTest, TrafficCase, TrafficTest } from './data.ts';
import { loadCases } from './data.ts';
import { planAll, planStatusOnlyTest, planTrafficTest } from './plan.ts';

const gw = { namespace: 'ns', name: 'gw', port: 80, scheme: 'http' as const };
const plain: TrafficCase = { name: 'c', request: { host: '', method: 'GET', path: '/' }, response: { statusCodes: [200] }, backend: '', namespace: '' };
const tlsCase: TrafficCase = { ...plain, tls: { serverName: 'example.org', trustedServerCertificateSecret: 'ns/cert' }, gateway: { ...gw, port: 443, scheme: 'https' } };

function t(over: Partial<TrafficTest>): TrafficTest {
  return { name: 'T', features: ['Gateway', 'HTTPRoute'], level: 'core', provisional: false, manifests: [], gateway: gw, kind: 'traffic', cases: [plain], ...over };
}

test('missing features are named', () => {
  assert.deepEqual(planTrafficTest(t({ features: ['Gateway', 'X', 'Y'] }), ['Gateway']), { run: false, reason: 'unsupported feature(s): X, Y' });
});

test('TLS-only and mixed tests are skipped as a whole', () => {
  assert.match((planTrafficTest(t({ cases: [tlsCase] }), ['Gateway', 'HTTPRoute']) as { reason: string }).reason, /needs TLS/);
  assert.match((planTrafficTest(t({ cases: [plain, tlsCase] }), ['Gateway', 'HTTPRoute']) as { reason: string }).reason, /mixes 1 plain-HTTP case\(s\) with 1 TLS/);
});

test('procedures the harness lacks are skipped with their name', () => {
  assert.match((planTrafficTest(t({ procedural: { type: 'websocketEcho' } }), ['Gateway', 'HTTPRoute']) as { reason: string }).reason, /websocketEcho/);
  assert.deepEqual(planTrafficTest(t({ procedural: { type: 'weightedDistribution' } }), ['Gateway', 'HTTPRoute']), { run: true });
});

test('status-only tests written as prose are skipped', () => {
  const so: StatusOnlyTest = { name: 'S', features: ['Gateway'], manifests: [], kind: 'status-only', statusSummary: 'words' };
  assert.deepEqual(planStatusOnlyTest(so, ['Gateway']), { run: false, reason: 'status-only prose' });
});

test('every test in cases.json gets a decision', () => {
  const cases = loadCases();
  const plan = planAll(cases);
  assert.equal(plan.length, cases.trafficTests.length + cases.statusOnlyTests.length);
  assert.ok(plan.some((p) => p.decision.run));
});
