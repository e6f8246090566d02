import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startEchoServer, type EchoServer } from '../../src/echo/server.ts';
import { REQUEST_ID_PARAM, type RequestLog } from './cases.ts';
import type { Target } from './client.ts';
import { loadCases, type TrafficCase } from './data.ts';
import { countMirrored, judgeMirrorCount, mirrorPercentageCase, mirrorPercentageSpec, mirrorTolerance } from './mirror.ts';
import type { Clock } from './poll.ts';

test('tolerance: 3 binomial standard deviations around 500p', () => {
  const band = (percent: number) => {
    const { expected, margin } = mirrorTolerance(500, percent);
    return [expected, Number(margin.toFixed(1))];
  };
  // The bands cases.json states for the three cases.
  assert.deepEqual(band(20), [100, 26.8]);
  assert.deepEqual(band(50), [250, 33.5]);
  assert.deepEqual(band(35), [175, 32]);
  assert.deepEqual(mirrorTolerance(500, 100), { expected: 500, margin: 0 });
});

test('judging a count: inside the band passes, edges included', () => {
  const { margin } = mirrorTolerance(500, 20);
  assert.equal(judgeMirrorCount(100, 500, 20), undefined);
  assert.equal(judgeMirrorCount(Math.ceil(100 - margin), 500, 20), undefined);
  assert.equal(judgeMirrorCount(Math.floor(100 + margin), 500, 20), undefined);
  assert.equal(judgeMirrorCount(73, 500, 20), '73 mirrored of 500, expected 100 ±26.8 (20%)');
  assert.match(judgeMirrorCount(127, 500, 20) ?? '', /^127 mirrored/);
  assert.equal(judgeMirrorCount(0, 500, 0), undefined);
  assert.match(judgeMirrorCount(499, 500, 100) ?? '', /expected 500 ±0/);
});

test('the spec comes from cases.json, with upstream constants as fallback', () => {
  const t = loadCases().trafficTests.find((x) => x.name === 'HTTPRouteRequestPercentageMirror');
  assert.ok(t);
  assert.deepEqual(mirrorPercentageSpec(t), { totalRequests: 500, concurrency: 10, attempts: 5 });
  assert.deepEqual(mirrorPercentageSpec({ ...t, procedural: { type: 'mirrorPercentage' } }), { totalRequests: 500, concurrency: 10, attempts: 5 });
  assert.ok(t.cases.every((c) => c.mirroredTo?.every((m) => typeof m.percent === 'number')));
});

// The gateway is left out: the harness client talks to an echo pod directly, and a fake request
// log plays the mirror backend, seeing every n-th request the pod answered.
let echo: EchoServer;
let target: Target;
before(async () => {
  echo = await startEchoServer({ port: 0, address: '127.0.0.1', pod: 'infra-backend-v1-abcdefghij-klmno', namespace: 'gateway-conformance-infra' });
  target = { ip: '127.0.0.1', port: Number(new URL(echo.url).port), scheme: 'http' };
});
after(() => echo.close());

function everyNth(n: number): RequestLog {
  return {
    requestsOf: (namespace, deployment) =>
      namespace === 'gateway-conformance-infra' && deployment === 'infra-backend-v2' ? echo.requests.filter((r) => r.path.includes(REQUEST_ID_PARAM)).filter((_, i) => i % n === 0) : [],
  };
}

const stillClock = (): Clock => {
  let t = 0;
  return { now: () => t, sleep: async (ms) => void (t += ms) };
};

const c: TrafficCase = {
  name: '0 request to /percent-mirror',
  request: { host: '', method: 'GET', path: '/percent-mirror' },
  expectedRequest: { path: '/percent-mirror' },
  response: { statusCodes: [200] },
  backend: 'infra-backend-v1',
  namespace: 'gateway-conformance-infra',
  mirroredTo: [{ name: 'infra-backend-v2', namespace: 'gateway-conformance-infra', percent: 20 }],
};
const spec = { totalRequests: 100, concurrency: 10, attempts: 2 };
const convergence = { threshold: 3, timeoutMs: 5000, failDelayMs: 10 };

test('a batch shares one request id, and the mirror count for exactly that URI is judged', async () => {
  echo.requests.length = 0;
  const rows = await mirrorPercentageCase(c, target, spec, { fleet: everyNth(5), convergence, clock: stillClock() });
  assert.deepEqual(rows.map((r) => [r.ok, r.attempts]), [[true, 3], [true, 1]]);
  // The sanity check carried no request id; the batch all carried the same one.
  const ids = new Set(echo.requests.map((r) => new URLSearchParams(r.path.split('?')[1] ?? '').get(REQUEST_ID_PARAM)));
  assert.equal(ids.size, 2);
  assert.ok(ids.has(null));
  const batchPath = echo.requests.at(-1)!.path;
  assert.equal(echo.requests.filter((r) => r.path === batchPath).length, 100);
  assert.equal(countMirrored(everyNth(5), { namespace: 'gateway-conformance-infra', name: 'infra-backend-v2' }, batchPath), 20);
});

test('every attempt gets a fresh id; the failure lists each attempt', async () => {
  echo.requests.length = 0;
  const half: TrafficCase = { ...c, mirroredTo: [{ name: 'infra-backend-v2', namespace: 'gateway-conformance-infra', percent: 50 }] };
  const [sanity, distribution] = await mirrorPercentageCase(half, target, spec, { fleet: everyNth(5), convergence, clock: stillClock() });
  assert.equal(sanity.ok, true);
  assert.equal(distribution.ok, false);
  assert.equal(distribution.attempts, 2);
  assert.equal(distribution.detail, 'attempt 1: gateway-conformance-infra/infra-backend-v2: 20 mirrored of 100, expected 50 ±15 (50%) | attempt 2: gateway-conformance-infra/infra-backend-v2: 20 mirrored of 100, expected 50 ±15 (50%)');
  assert.equal(new Set(echo.requests.map((r) => r.path)).size, 3);
});

test('no batch is sent when the sanity request does not pass', async () => {
  echo.requests.length = 0;
  const wrong: TrafficCase = { ...c, backend: 'infra-backend-v9' };
  const [sanity, distribution] = await mirrorPercentageCase(wrong, target, spec, { fleet: everyNth(5), convergence: { ...convergence, timeoutMs: 200 }, clock: stillClock() });
  assert.equal(sanity.ok, false);
  assert.deepEqual(distribution, { name: `${c.name}: mirrored share (100 requests, ±3σ)`, ok: false, attempts: 0, detail: 'not attempted: the sanity request did not pass' });
  assert.ok(echo.requests.every((r) => !r.path.includes(REQUEST_ID_PARAM)));
});
