import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { StatusOnlyTest, TrafficCase, TrafficTest } from './data.ts';
import { loadCases } from './data.ts';
import { IMPLEMENTED_PROCEDURES, missingFeatures, planAll, planStatusOnlyTest, planTrafficTest } from './plan.ts';
import { formatSummary } from './report.ts';
import { CLUSTER_FEATURES, SUPPORTED_FEATURES } from '../../src/gatewayapi/features.ts';

const gw = { namespace: 'ns', name: 'gw', port: 80, scheme: 'http' as const };
const plain: TrafficCase = { name: 'c', request: { host: '', method: 'GET', path: '/' }, response: { statusCodes: [200] }, backend: '', namespace: '' };
const tlsCase: TrafficCase = { ...plain, tls: { serverName: 'example.org', trustedServerCertificateSecret: 'ns/cert' }, gateway: { ...gw, port: 443, scheme: 'https' } };

function t(over: Partial<TrafficTest>): TrafficTest {
  return { name: 'T', features: ['Gateway', 'HTTPRoute'], level: 'core', provisional: false, manifests: [], gateway: gw, kind: 'traffic', cases: [plain], ...over };
}

test('missing features are named', () => {
  assert.deepEqual(planTrafficTest(t({ features: ['Gateway', 'X', 'Y'] }), ['Gateway']), { run: false, reason: 'unsupported feature(s): X, Y' });
});

test('TLS tests run, TLS-only and mixed ones alike, unless a TLS case names no trusted certificate', () => {
  assert.deepEqual(planTrafficTest(t({ cases: [tlsCase] }), ['Gateway', 'HTTPRoute']), { run: true });
  assert.deepEqual(planTrafficTest(t({ cases: [plain, tlsCase] }), ['Gateway', 'HTTPRoute']), { run: true });
  const { tls: _, ...untrusted } = tlsCase;
  assert.match((planTrafficTest(t({ cases: [untrusted] }), ['Gateway', 'HTTPRoute']) as { reason: string }).reason, /name no server name/);
});

test('procedures the harness lacks are skipped with their name', () => {
  assert.match((planTrafficTest(t({ procedural: { type: 'someNewProcedure' } }), ['Gateway', 'HTTPRoute']) as { reason: string }).reason, /someNewProcedure/);
  assert.deepEqual(planTrafficTest(t({ procedural: { type: 'weightedDistribution' } }), ['Gateway', 'HTTPRoute']), { run: true });
});

// A procedure is required once a test using it is claimed; until then the test is skipped for
// its features, which is the reason reported, never a missing procedure.
test('every procedural part of a claimed test is implemented, the WebSocket and percentage mirror ones included', () => {
  const claimed = loadCases().trafficTests.filter((x) => missingFeatures(x.features).length === 0);
  const types = new Set(claimed.flatMap((x) => (x.procedural ? [x.procedural.type] : [])));
  assert.ok(types.has('websocketEcho') && types.has('mirrorPercentage'));
  for (const type of types) assert.ok(IMPLEMENTED_PROCEDURES.includes(type), type);
  for (const x of loadCases().trafficTests) {
    if (!x.procedural || IMPLEMENTED_PROCEDURES.includes(x.procedural.type)) continue;
    const d = planTrafficTest(x);
    assert.ok(!d.run && d.reason.startsWith('unsupported feature(s): '), `${x.name}: ${JSON.stringify(d)}`);
  }
  // A procedure-only test (no cases) runs once its features are claimed.
  assert.deepEqual(planTrafficTest(t({ cases: [], procedural: { type: 'websocketEcho' } }), ['Gateway', 'HTTPRoute']), { run: true });
});

// The suite's rule for traffic tests: once its features are claimed, a test runs, in either mode.
test('with every feature claimed, a traffic test runs; the HTTPS ones with the features either mode claims', () => {
  const cases = loadCases();
  const every = [...new Set(cases.trafficTests.flatMap((x) => x.features))];
  for (const x of cases.trafficTests) {
    const d = planTrafficTest(x, every);
    if (!d.run) assert.doesNotMatch(d.reason, /TLS|HTTPS/, x.name);
  }
  for (const name of ['HTTPRouteHTTPSListener', 'HTTPRouteHTTPSListenerDetectMisdirectedRequests', 'HTTPRouteRedirectPortAndScheme']) {
    assert.equal(planAll(cases).find((p) => p.name === name)?.decision.run, true, name);
    assert.equal(planAll(cases, CLUSTER_FEATURES).find((p) => p.name === name)?.decision.run, true, `${name} (cluster)`);
  }
  for (const name of ['HTTPRouteBackendProtocolWebSocket', 'HTTPRouteRequestPercentageMirror', 'HTTPRouteRequestMirror', 'HTTPRouteRequestMultipleMirrors', 'HTTPRouteCORS', 'HTTPRouteRetry', 'HTTPRouteResponseHeaderModifier', 'HTTPRouteTimeoutRequest', 'HTTPRouteTimeoutBackendRequest']) {
    assert.deepEqual(planTrafficTest(cases.trafficTests.find((x) => x.name === name)!, every), { run: true }, name);
  }
});

// Tests of claimed features run; the others are skipped naming exactly the missing features.
test('skip reasons name the features the product does not claim', () => {
  const cases = loadCases();
  for (const p of planAll(cases).filter((x) => x.kind === 'traffic' && !x.decision.run)) {
    const reason = (p.decision as { reason: string }).reason;
    const missing = missingFeatures(cases.trafficTests.find((x) => x.name === p.name)!.features);
    assert.equal(reason, `unsupported feature(s): ${missing.join(', ')}`, p.name);
  }
});

test('status-only tests: features and expectations decide', () => {
  const so: StatusOnlyTest = { name: 'S', features: ['Gateway'], manifests: [], kind: 'status-only', statusSummary: 'words' };
  const checks = [{ check: 'GatewayZeroRoutes', gateway: 'ns/gw' }];
  assert.match((planStatusOnlyTest(so, ['Gateway']) as { reason: string }).reason, /status-only\.ts/);
  assert.deepEqual(planStatusOnlyTest(so, ['Gateway'], { phases: [{ checks }] }), { run: true });
  assert.deepEqual(planStatusOnlyTest(so, [], { phases: [{ checks }] }), { run: false, reason: 'unsupported feature(s): Gateway' });
  const withParts = { tlsParts: [{ description: 'the HTTPS Gateway', checks }], phases: [{ checks }] };
  assert.deepEqual(planStatusOnlyTest(so, ['Gateway'], withParts), { run: true });
});

// The suite's rule: a test is skipped only for a feature the product lacks, in either mode.
test('every status-only test runs unless it needs an unsupported feature', () => {
  for (const features of [SUPPORTED_FEATURES, CLUSTER_FEATURES]) {
    for (const p of planAll(loadCases(), features).filter((x) => x.kind === 'status-only')) {
      if (!p.decision.run) assert.match(p.decision.reason, /^unsupported feature\(s\)/, p.name);
    }
  }
});

test('every test in cases.json gets a decision', () => {
  const cases = loadCases();
  const plan = planAll(cases);
  assert.equal(plan.length, cases.trafficTests.length + cases.statusOnlyTests.length);
  assert.ok(plan.some((p) => p.decision.run));
});

test('the closing summary lists every skipped test with its reason, then failures and the tally', () => {
  const text = formatSummary(['A'], ['B', 'C'], [{ name: 'D', reason: 'unsupported feature(s): X' }, { name: 'E', reason: 'no cases transcribed' }]);
  assert.deepEqual(text.split('\n'), [
    '--- SKIP D: unsupported feature(s): X',
    '--- SKIP E: no cases transcribed',
    'failed: B, C',
    '1 passed, 2 failed, 2 skipped',
  ]);
  assert.equal(formatSummary(['A'], [], []), '1 passed, 0 failed, 0 skipped');
});
