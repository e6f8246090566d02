import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { startEchoServer, type EchoServer } from '../../src/echo/server.ts';

interface Reply {
  status: number;
  rawHeaders: string[];
  headers: http.IncomingHttpHeaders;
  body: string;
  ms: number;
}

// Raw node:http rather than fetch: the assertions are about header-name case on the wire.
function get(base: string, path: string, headers: Record<string, string> = {}): Promise<Reply> {
  const u = new URL(base);
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, path, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, rawHeaders: res.rawHeaders, headers: res.headers, body, ms: Date.now() - started }));
    });
    req.on('error', reject);
    req.end();
  });
}

let echo: EchoServer;
before(async () => {
  echo = await startEchoServer({ port: 0, address: '127.0.0.1', pod: 'infra-backend-v1-abc12def34-xyz89', namespace: 'gateway-conformance-infra', h2cPort: 0, keep: 5 });
});
after(async () => {
  await echo.close();
});

test('echo body describes the request as received', async () => {
  const r = await get(echo.url, '//v2//example?x=1&y=%2F', { 'x-lower': 'a', 'X-Echo-Set-Header': '' });
  assert.equal(r.status, 200);
  assert.equal(r.headers['content-type'], 'application/json');
  assert.equal(r.headers['x-content-type-options'], 'nosniff');
  const body = JSON.parse(r.body);
  assert.equal(body.path, '//v2//example?x=1&y=%2F');
  assert.equal(body.host, new URL(echo.url).host);
  assert.equal(body.method, 'GET');
  assert.equal(body.proto, 'HTTP/1.1');
  assert.deepEqual(body.headers['X-Lower'], ['a']);
  assert.deepEqual(body.headers['X-Echo-Set-Header'], ['']);
  assert.equal(body.headers.Host, undefined);
  assert.equal(body.namespace, 'gateway-conformance-infra');
  assert.equal(body.pod, 'infra-backend-v1-abc12def34-xyz89');
  assert.equal(body.httpPort, new URL(echo.url).port);
  assert.equal(body.ingress, '');
  assert.equal(body.service, '');
});

test('repeated header lines stay separate values', async () => {
  const u = new URL(echo.url);
  const socket = net.connect(Number(u.port), u.hostname);
  socket.end(`GET /multi HTTP/1.1\r\nHost: h.example\r\nx-multi: one\r\nX-Multi: two\r\nConnection: close\r\n\r\n`);
  let raw = '';
  socket.setEncoding('utf8');
  for await (const chunk of socket) raw += chunk;
  const body = JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4));
  assert.deepEqual(body.headers['X-Multi'], ['one', 'two']);
  assert.equal(body.host, 'h.example');
});

test('X-Echo-Set-Header writes names verbatim and comma-appends repeats', async () => {
  const r = await get(echo.url, '/', { 'X-Echo-Set-Header': 'lower-name:v1,X-Dup:a, X-Dup: b' });
  const names = r.rawHeaders.filter((_, i) => i % 2 === 0);
  assert.ok(names.includes('lower-name'), `raw names: ${names.join(' ')}`);
  assert.equal(r.headers['lower-name'], 'v1');
  assert.equal(r.headers['x-dup'], 'a,b');
});

test('?delay= sleeps for a Go duration before answering', async () => {
  const r = await get(echo.url, '/slow?delay=300ms');
  assert.equal(r.status, 200);
  assert.ok(r.ms >= 290, `answered after ${r.ms} ms`);
  const bad = await get(echo.url, '/slow?delay=soon');
  assert.equal(bad.status, 500);
  assert.match(JSON.parse(bad.body).message, /invalid duration/);
});

test('/status/NNN, /health and // collapsing', async () => {
  const s = await get(echo.url, '/status/503');
  assert.equal(s.status, 503);
  assert.equal(s.body, '');
  assert.equal((await get(echo.url, '/status/5x3')).status, 400);
  assert.equal((await get(echo.url, '/status/503?q=1')).status, 400);
  const h = await get(echo.url, '//health');
  assert.equal(h.status, 200);
  assert.equal(h.body, 'OK');
});

test('/retry/ fails the first N requests of a uuid', async () => {
  const path = '/retry/x?uuid=u1&succeedAfter=1&responseCode=502';
  assert.equal((await get(echo.url, path)).status, 502);
  assert.equal((await get(echo.url, path)).status, 200);
});

test('requests are recorded in a bounded ring', async () => {
  for (let i = 0; i < 7; i++) await get(echo.url, `/ring?i=${i}`);
  assert.equal(echo.requests.length, 5);
  assert.equal(echo.requests.at(-1)?.path, '/ring?i=6');
  assert.equal(echo.requests[0].path, '/ring?i=2');
});

test('the h2c port echoes HTTP/2 with prior knowledge and rejects HTTP/1.1', async () => {
  assert.ok(echo.h2cUrl);
  const plain = await get(echo.h2cUrl, '/');
  assert.equal(plain.status, 400);
  assert.equal(plain.body, 'Expected h2c request');
  const session = http2.connect(echo.h2cUrl);
  try {
    const stream = session.request({ ':path': '/h2?z=1' });
    let body = '';
    stream.setEncoding('utf8');
    stream.on('data', (c: string) => (body += c));
    await once(stream, 'end');
    const parsed = JSON.parse(body);
    assert.equal(parsed.proto, 'HTTP/2.0');
    assert.equal(parsed.path, '/h2?z=1');
  } finally {
    session.close();
  }
});

test('the log line is printed only when asked for', async (t) => {
  const lines: string[] = [];
  t.mock.method(console, 'log', (...args: unknown[]) => lines.push(args.join(' ')));
  const quiet = await startEchoServer({ port: 0 });
  const loud = await startEchoServer({ port: 0, log: true });
  try {
    await get(quiet.url, '/q');
    await get(loud.url, '/l?x=1');
  } finally {
    await quiet.close();
    await loud.close();
  }
  assert.equal(lines.length, 1);
  assert.match(lines[0], /^Echoing back request made to \/l\?x=1 to client \(127\.0\.0\.1:\d+\)$/);
});

// A WebSocket client that collects replies; `ws` does the protocol on both ends.
async function openWs(base: string, path: string, headers: Record<string, string> = {}, origin: string | undefined = 'ws://gateway/test'): Promise<WebSocket> {
  const ws = new WebSocket(`${base.replace(/^http/, 'ws')}${path}`, { headers, perMessageDeflate: false, ...(origin !== undefined ? { origin } : {}) });
  await once(ws, 'open');
  return ws;
}

function nextMessage(ws: WebSocket): Promise<{ data: Buffer; isBinary: boolean }> {
  return new Promise((resolve, reject) => {
    ws.once('message', (data, isBinary) => resolve({ data: Buffer.isBuffer(data) ? data : Buffer.concat(data as Buffer[]), isBinary }));
    ws.once('close', () => reject(new Error('closed before a reply')));
  });
}

test('/ws echoes WebSocket messages: text stays text, binary stays binary', async () => {
  const ws = await openWs(echo.url, '/ws');
  try {
    ws.send('Websocket Support!');
    const text = await nextMessage(ws);
    assert.equal(text.isBinary, false);
    assert.equal(text.data.toString('utf8'), 'Websocket Support!');
    ws.send(Buffer.from([1, 2, 3, 4, 5, 6, 7]));
    const bin = await nextMessage(ws);
    assert.equal(bin.isBinary, true);
    assert.deepEqual([...bin.data], [1, 2, 3, 4, 5, 6, 7]);
  } finally {
    ws.close();
  }
});

test('the WebSocket handshake is recorded in the request log', async () => {
  const ws = await openWs(echo.url, '//ws?id=hs1', { 'X-Probe': 'p' });
  ws.close();
  const entry = echo.requests.find((r) => r.path === '//ws?id=hs1');
  assert.ok(entry, 'handshake recorded');
  assert.equal(entry.upgrade, 'websocket');
  assert.equal(entry.method, 'GET');
  assert.deepEqual(entry.headers['X-Probe'], ['p']);
  assert.deepEqual(entry.headers.Upgrade, ['websocket']);
});

test('a WebSocket handshake without Origin is refused as x/net/websocket does', async () => {
  const ws = new WebSocket(`${echo.url.replace(/^http/, 'ws')}/ws`, { perMessageDeflate: false });
  const [req, res] = (await once(ws, 'unexpected-response')) as [http.ClientRequest, http.IncomingMessage];
  assert.equal(res.statusCode, 403);
  // With an 'unexpected-response' listener the caller owns the request and ends it.
  req.destroy();
});

test('plain GET /ws still fails the handshake, and Upgrade elsewhere is echoed', async () => {
  const plain = await get(echo.url, '/ws');
  assert.equal(plain.status, 400);
  const elsewhere = await get(echo.url, '/not-ws', { Connection: 'Upgrade', Upgrade: 'websocket' });
  assert.equal(elsewhere.status, 200);
  assert.equal(JSON.parse(elsewhere.body).path, '/not-ws');
});

test('close() ends open WebSocket connections', async () => {
  const server = await startEchoServer({ port: 0 });
  const ws = await openWs(server.url, '/ws');
  const closed = once(ws, 'close');
  await server.close();
  await closed;
  assert.equal(ws.readyState, WebSocket.CLOSED);
});

test('runEchoCommand serves until SIGTERM', async (t) => {
  const server = fileURLToPath(new URL('../../src/echo/server.ts', import.meta.url));
  const script = `import(${JSON.stringify(server)}).then((m) => m.runEchoCommand(process.argv.slice(1)))`;
  const child = spawn(process.execPath, ['-e', script, '--', '--port', '0', '--namespace', 'ns1', '--pod', 'svc-a-b'], { stdio: ['ignore', 'pipe', 'inherit'] });
  // A failed assertion must not leave the child holding this file's event loop open.
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let out = '';
  child.stdout.setEncoding('utf8');
  let exited = false;
  const waiters: Array<() => void> = [];
  const wake = () => waiters.splice(0).forEach((w) => w());
  child.stdout.on('data', (c: string) => {
    out += c;
    wake();
  });
  child.once('exit', () => {
    exited = true;
    wake();
  });
  // Resolves once the output matches; the child's exit before that is a failure.
  const outputMatching = (re: RegExp) =>
    new Promise<RegExpExecArray>((resolve, reject) => {
      const check = () => {
        const m = re.exec(out);
        if (m) resolve(m);
        else if (exited) reject(new Error(`exited: ${out}`));
        else waiters.push(check);
      };
      check();
    });
  const url = (await outputMatching(/listening on (http:\/\/\S+) \(http\)/))[1];
  const body = JSON.parse((await get(url, '/cli')).body);
  assert.equal(body.namespace, 'ns1');
  assert.equal(body.pod, 'svc-a-b');
  // The log line is written after the response goes out, so it may arrive after the body.
  await outputMatching(/Echoing back request made to \/cli to client/);
  child.kill('SIGTERM');
  const [code] = await once(child, 'exit');
  assert.equal(code, 0);
});

test('Go duration syntax', async () => {
  const { parseGoDuration } = await import('../../src/echo/duration.ts');
  assert.equal(parseGoDuration('1s'), 1000);
  assert.equal(parseGoDuration('500ms'), 500);
  assert.equal(parseGoDuration('1.5h'), 5_400_000);
  assert.equal(parseGoDuration('1m30s'), 90_000);
  assert.equal(parseGoDuration('0'), 0);
  assert.equal(parseGoDuration('-2s'), -2000);
  assert.equal(parseGoDuration('.5s'), 500);
  for (const bad of ['', '1', 's', '1x', '.s', '1s2']) assert.throws(() => parseGoDuration(bad), /time: /, bad);
});

test('Go header-name canonicalization', async () => {
  const { canonicalHeaderKey } = await import('../../src/echo/headers.ts');
  assert.equal(canonicalHeaderKey('x-header-set'), 'X-Header-Set');
  assert.equal(canonicalHeaderKey('X-HEADER'), 'X-Header');
  assert.equal(canonicalHeaderKey('content_type'), 'Content_type');
  assert.equal(canonicalHeaderKey('bad name'), 'bad name');
});
