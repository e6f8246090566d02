// The declarative machinery end to end, minus the gateway: cases from cases.json go through the
// harness client to an echo pod or to a stand-in that answers as a gateway would, and are judged
// by compareRoundTrip.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { startEchoServer, type EchoServer } from '../../src/echo/server.ts';
import { checkOnce, send } from './cases.ts';
import type { Target } from './client.ts';
import { loadCases, type TrafficCase } from './data.ts';

const byTest = (name: string) => {
  const t = loadCases().trafficTests.find((x) => x.name === name);
  assert.ok(t, name);
  return t;
};

let echo: EchoServer;
let echoTarget: Target;
before(async () => {
  echo = await startEchoServer({ port: 0, address: '127.0.0.1', pod: 'infra-backend-v1-abcdefghij-klmno', namespace: 'gateway-conformance-infra' });
  echoTarget = { ip: '127.0.0.1', port: Number(new URL(echo.url).port), scheme: 'http' };
});
after(() => echo.close());

test('an OPTIONS case goes out as Go sends it: given headers, canonical names, no body framing', async () => {
  const preflight = byTest('HTTPRouteCORS').cases[0];
  assert.equal(preflight.request.method, 'OPTIONS');
  const ex = await send(preflight, echoTarget);
  assert.equal(ex.response.status, 200);
  const seen = echo.requests.at(-1)!;
  assert.equal(seen.method, 'OPTIONS');
  assert.equal(seen.path, '/cors-1');
  assert.deepEqual(seen.headers, {
    'Accept-Encoding': ['gzip'],
    'Access-Control-Request-Headers': ['x-header-1, x-header-2'],
    'Access-Control-Request-Method': ['GET'],
    Connection: ['close'],
    Origin: ['https://www.foo.com'],
    'User-Agent': ['Go-http-client/1.1'],
    'X-Echo-Set-Header': [''],
  });
});

test('a PUT without a body carries Content-Length: 0, as Go sends it', async () => {
  const put = byTest('HTTPRouteCORS').cases.find((c) => c.request.method === 'PUT');
  assert.ok(put);
  await send(put, echoTarget);
  assert.deepEqual(echo.requests.at(-1)!.headers['Content-Length'], ['0']);
});

test('backendSetResponseHeaders reach the echo and come back as response headers', async () => {
  const c: TrafficCase = {
    name: 'set',
    request: { host: '', method: 'GET', path: '/set' },
    backendSetResponseHeaders: { 'Some-Other-Header': 'val', 'X-Header-Set': 'some-other-value' },
    response: { statusCodes: [200], headers: { 'Some-Other-Header': 'val', 'X-Header-Set': 'some-other-value' } },
    backend: 'infra-backend-v1',
    namespace: 'gateway-conformance-infra',
  };
  assert.equal(await checkOnce(c, echoTarget), undefined);
  const line = echo.requests.at(-1)!.headers['X-Echo-Set-Header'][0].split(',').sort();
  assert.deepEqual(line, ['Some-Other-Header:val', 'X-Header-Set:some-other-value']);
  assert.match((await checkOnce({ ...c, response: { statusCodes: [200], headers: { 'X-Header-Set': 'set-overwrites-values' } } }, echoTarget)) ?? '', /X-Header-Set: "set-overwrites-values", got "some-other-value"/);
});

// A stand-in gateway that answers CORS preflights itself, with the value order and spacing a
// real one may choose, and refuses origins it does not know.
async function corsGateway(): Promise<{ target: Target; close(): Promise<void> }> {
  const allowed = /^https:\/\/(www\.foo\.com|.*\.bar\.com)$/;
  const server = http.createServer((req, res) => {
    const origin = String(req.headers.origin ?? '');
    if (req.method !== 'OPTIONS' || !allowed.test(origin)) return void res.writeHead(403).end();
    res.writeHead(204, {
      'access-control-allow-origin': origin,
      'access-control-allow-methods': 'OPTIONS,GET',
      'access-control-allow-headers': 'x-header-2,  x-header-1',
      'access-control-expose-headers': 'x-header-3, x-header-4',
      'access-control-max-age': '3600',
      'access-control-allow-credentials': 'true',
    }).end();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    target: { ip: '127.0.0.1', port: (server.address() as AddressInfo).port, scheme: 'http' },
    close: () => new Promise((r) => server.close(() => r())),
  };
}

test('CORS preflight cases of cases.json pass against a conforming answer', async () => {
  const gw = await corsGateway();
  try {
    const preflights = byTest('HTTPRouteCORS').cases.filter((c) => c.request.method === 'OPTIONS' && c.request.path === '/cors-1');
    assert.equal(preflights.length, 4);
    for (const c of preflights) assert.equal(await checkOnce(c, gw.target), undefined, c.name);
  } finally {
    await gw.close();
  }
});

test('CORS preflight: a missing or unlisted header value fails, naming the header', async () => {
  const gw = await corsGateway();
  try {
    const c = byTest('HTTPRouteCORS').cases[0];
    const stricter = { ...c, response: { ...c.response, validHeaderValues: { ...c.response.validHeaderValues, 'access-control-max-age': ['86400'] } } };
    assert.match((await checkOnce(stricter, gw.target)) ?? '', /access-control-max-age to be one of "86400", got "3600"/);
    const absent = { ...c, response: { ...c.response, absentHeaders: ['access-control-allow-credentials'] } };
    assert.match((await checkOnce(absent, gw.target)) ?? '', /access-control-allow-credentials absent/);
  } finally {
    await gw.close();
  }
});
