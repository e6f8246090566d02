import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { once } from 'node:events';
import { WebSocketServer } from 'ws';
import { startEchoServer, type EchoServer } from '../../src/echo/server.ts';
import type { Target } from './client.ts';
import { loadCases, type TrafficTest } from './data.ts';
import { dialTarget, websocketEcho, websocketRound, websocketSpec } from './websocket.ts';

const wsTest = (): TrafficTest => {
  const t = loadCases().trafficTests.find((x) => x.name === 'HTTPRouteBackendProtocolWebSocket');
  assert.ok(t);
  return t;
};

test('the spec: upstream origin, a text and a binary step', () => {
  const spec = websocketSpec(wsTest());
  assert.equal(spec.url, 'ws://{gwAddr}/ws');
  assert.equal(spec.origin, 'ws://gateway/TestConformance/HTTPRouteBackendProtocolWebSocket/websocket_connection_should_reach_backend');
  assert.deepEqual(spec.steps, [
    { send: 'text', payload: 'Websocket Support!' },
    { send: 'binary', payload: Buffer.from([1, 2, 3, 4, 5, 6, 7]) },
  ]);
  assert.throws(() => websocketSpec({ ...wsTest(), procedural: { type: 'websocketEcho', steps: [{ ping: 1 }] } }), /unknown WebSocket step/);
});

test('the Host header keeps the port, as x/net/websocket sends the URL authority', () => {
  const spec = websocketSpec(wsTest());
  assert.deepEqual(dialTarget(spec, { ip: '127.0.1.1', port: 80, scheme: 'http' }), { url: 'ws://127.0.1.1:80/ws', host: '127.0.1.1:80' });
});

let echo: EchoServer;
let target: Target;
before(async () => {
  echo = await startEchoServer({ port: 0, address: '127.0.0.1', pod: 'infra-backend-v1-abcdefghij-klmno', namespace: 'gateway-conformance-infra' });
  target = { ip: '127.0.0.1', port: Number(new URL(echo.url).port), scheme: 'http' };
});
after(() => echo.close());

test('a round against the echo /ws passes, with upstream Origin and Host on the handshake', async () => {
  const spec = websocketSpec(wsTest());
  assert.equal(await websocketRound(spec, target), undefined);
  const hs = echo.requests.filter((r) => r.upgrade === 'websocket').at(-1);
  assert.ok(hs);
  assert.equal(hs.path, '/ws');
  assert.equal(hs.host, `127.0.0.1:${target.port}`);
  assert.deepEqual(hs.headers.Origin, [spec.origin]);
});

test('the procedure needs 3 passing rounds in a row', async () => {
  const before = echo.requests.filter((r) => r.upgrade === 'websocket').length;
  const r = await websocketEcho(wsTest(), target, { threshold: 3, timeoutMs: 5000, failDelayMs: 10 });
  assert.deepEqual(r, { name: 'websocket connection should reach backend', ok: true, attempts: 3 });
  assert.equal(echo.requests.filter((x) => x.upgrade === 'websocket').length - before, 3);
});

// Stand-ins for broken gateways.
async function listen(server: net.Server): Promise<Target> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { ip: '127.0.0.1', port: (server.address() as net.AddressInfo).port, scheme: 'http' };
}

test('a wrong reply, a refused handshake and a silent peer each fail the round with a reason', async () => {
  const spec = websocketSpec(wsTest());

  const http1 = http.createServer();
  const wss = new WebSocketServer({ noServer: true });
  http1.on('upgrade', (req, socket, head) => wss.handleUpgrade(req, socket, head, (ws) => ws.on('message', () => ws.send('nope'))));
  const wrong = await listen(http1);
  assert.equal(await websocketRound(spec, wrong), 'unexpected text reply: want "Websocket Support!", got "nope"');

  const refusing = http.createServer((_, res) => res.writeHead(404).end());
  const refused = await listen(refusing);
  assert.equal(await websocketRound(spec, refused), 'handshake answered with HTTP 404');

  const silent = net.createServer((s) => s.on('data', () => {}));
  const quiet = await listen(silent);
  assert.match((await websocketRound(spec, quiet, 300)) ?? '', /handshake has timed out|no answer within/);

  for (const ws of wss.clients) ws.terminate();
  http1.closeAllConnections();
  refusing.closeAllConnections();
  await Promise.all([http1, refusing, silent].map((s) => new Promise((r) => s.close(r))));
});
