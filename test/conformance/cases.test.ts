import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { RecordedRequest } from '../../src/echo/server.ts';
import { checkMirrors, instantiate, REQUEST_ID_PARAM, withRequestId, type RequestLog } from './cases.ts';
import type { TrafficCase } from './data.ts';
import type { Clock } from './poll.ts';

const base: TrafficCase = {
  name: 'c',
  request: { host: '', method: 'GET', path: '/mirror' },
  expectedRequest: { path: '/mirror' },
  response: { statusCodes: [200] },
  backend: 'infra-backend-v1',
  namespace: 'gateway-conformance-infra',
  mirroredTo: [{ name: 'infra-backend-v2', namespace: 'gateway-conformance-infra' }],
};

function fakeClock(): Clock {
  let t = 0;
  return { now: () => t, sleep: async (ms) => void (t += ms) };
}

function rec(path: string, extra: Partial<RecordedRequest> = {}): RecordedRequest {
  return { at: 0, method: 'GET', path, host: '', proto: 'HTTP/1.1', headers: {}, remoteAddress: '', localPort: 3000, ...extra };
}

// A request log whose Deployments see their requests only after `delay` reads, as a gateway that
// replays mirrors from its log would deliver them.
function laggingLog(byDeployment: Record<string, RecordedRequest[]>, delay: number): RequestLog & { reads: number } {
  const log = {
    reads: 0,
    requestsOf(namespace: string, deployment: string) {
      log.reads++;
      return log.reads > delay ? (byDeployment[`${namespace}/${deployment}`] ?? []) : [];
    },
  };
  return log;
}

test('{uuid} gets a fresh value on every instantiation, in the request and the expected path', () => {
  const c: TrafficCase = { ...base, request: { ...base.request, path: '/retry/x?succeedAfter=1&uuid={uuid}' }, expectedRequest: { path: '/retry/x?succeedAfter=1&uuid={uuid}' } };
  const a = instantiate(c);
  const b = instantiate(c);
  assert.match(a.request.path, /^\/retry\/x\?succeedAfter=1&uuid=[0-9a-f-]{36}$/);
  assert.notEqual(a.request.path, b.request.path);
  assert.equal(a.expectedRequest?.path, a.request.path);
  assert.equal(instantiate(base), base);
});

test('the request id goes on the request and the expected path', () => {
  const c = withRequestId(base, 'id-1');
  assert.equal(c.request.path, `/mirror?${REQUEST_ID_PARAM}=id-1`);
  assert.equal(c.expectedRequest?.path, c.request.path);
  assert.equal(withRequestId({ ...base, request: { ...base.request, path: '/m?a=1' } }, 'x').request.path, `/m?a=1&${REQUEST_ID_PARAM}=x`);
});

test('mirror check: polls until every mirror backend recorded the exact request URI', async () => {
  const c = withRequestId({ ...base, mirroredTo: [...base.mirroredTo!, { name: 'infra-backend-v3', namespace: 'gateway-conformance-infra' }] }, 'id-2');
  const log = laggingLog({
    'gateway-conformance-infra/infra-backend-v2': [rec(c.request.path)],
    'gateway-conformance-infra/infra-backend-v3': [rec('/other'), rec(c.request.path)],
  }, 10);
  assert.equal(await checkMirrors(c, log, { clock: fakeClock() }), undefined);
  assert.ok(log.reads > 10, 'read again until the mirrors arrived');
});

test('mirror check: names the backends that never saw the request', async () => {
  const c = withRequestId({ ...base, mirroredTo: [...base.mirroredTo!, { name: 'infra-backend-v3', namespace: 'gateway-conformance-infra' }] }, 'id-3');
  const log = laggingLog({
    'gateway-conformance-infra/infra-backend-v2': [rec(c.request.path)],
    // a WebSocket handshake to the same URI is not an echoed request
    'gateway-conformance-infra/infra-backend-v3': [rec(`${c.request.path}x`), rec(c.request.path, { upgrade: 'websocket' })],
  }, 0);
  const failure = await checkMirrors(c, log, { clock: fakeClock() });
  assert.equal(failure, `no mirrored request ${c.request.path} seen by gateway-conformance-infra/infra-backend-v3 within 10 s`);
});

test('mirror check: percentage mirrors are not expected per request', async () => {
  const c: TrafficCase = { ...base, mirroredTo: [{ name: 'infra-backend-v2', namespace: 'gateway-conformance-infra', percent: 20 }] };
  assert.equal(await checkMirrors(c, laggingLog({}, 0), { clock: fakeClock() }), undefined);
  assert.equal(await checkMirrors({ ...base, mirroredTo: undefined }, laggingLog({}, 0)), undefined);
});
