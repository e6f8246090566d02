// Hostile request shapes end to end: manifests on disk -> `vgw serve` (StandaloneServer) -> real
// varnishd -> real backends on loopback. Requests are written byte for byte on raw sockets, so
// the gateway sees exactly what an attacker would send (no client library cleans them up).
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { connect, createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { StandaloneServer } from '../../src/standalone/server.ts';
import { silentLogger } from '../../src/util/log.ts';
import { GATEWAY_CLASS, gwRoute, httpGateway, loopbackService, yamlDocs } from './support/manifests.ts';
import { eventually } from './support/poll.ts';

// Not used by any other integration test.
const GW_ADDRESS = '127.0.21.1';
const GW_PORT = 18580;
const NS = 'app';

// ---------------------------------------------------------------------------------------------
// Raw HTTP/1.1 over a socket

interface RawResponse {
  status: number;
  headers: Map<string, string[]>;
  body: string;
}

function parseResponse(text: string): RawResponse {
  const end = text.indexOf('\r\n\r\n');
  const head = text.slice(0, end < 0 ? text.length : end).split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head[0] ?? '')?.[1] ?? 0);
  const headers = new Map<string, string[]>();
  for (const line of head.slice(1)) {
    const i = line.indexOf(':');
    const name = line.slice(0, i).toLowerCase();
    headers.set(name, [...(headers.get(name) ?? []), line.slice(i + 1).trim()]);
  }
  let body = end < 0 ? '' : text.slice(end + 4);
  if (/chunked/i.test(headers.get('transfer-encoding')?.[0] ?? '')) body = unchunk(body);
  return { status, headers, body };
}

function unchunk(text: string): string {
  let out = '';
  for (let at = 0; at < text.length; ) {
    const eol = text.indexOf('\r\n', at);
    const size = parseInt(text.slice(at, eol), 16);
    if (!size) break;
    out += text.slice(eol + 2, eol + 2 + size);
    at = eol + 2 + size + 2;
  }
  return out;
}

/** Sends `head` (request line and headers, CRLF-separated, no final blank line) with Connection: close. */
function raw(head: string): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = connect(GW_PORT, GW_ADDRESS, () => socket.write(`${head}\r\nConnection: close\r\n\r\n`, 'latin1'));
    const chunks: Buffer[] = [];
    socket.setTimeout(15_000, () => socket.destroy(new Error(`timeout: ${head.split('\r\n')[0].slice(0, 80)}`)));
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => resolve(parseResponse(Buffer.concat(chunks).toString('latin1'))));
  });
}

const get = (host: string, target: string, extra: string[] = []) => raw([`GET ${target} HTTP/1.1`, `Host: ${host}`, ...extra].join('\r\n'));

// ---------------------------------------------------------------------------------------------
// Backends

interface Seen {
  url: string;
  headers: IncomingHttpHeaders;
}

/** Answers every request with what it saw, and tries to leak a router header to the client. */
async function startBackend(name: string): Promise<{ server: Server; port: number; seen: Seen[] }> {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    seen.push({ url: req.url ?? '', headers: req.headers });
    const body = JSON.stringify({ backend: name, url: req.url, host: req.headers.host });
    res.writeHead(200, { 'content-type': 'application/json', 'x-vgw-route': 'forged', 'X-Vgw-Leak': '1' }).end(body);
  });
  server.keepAliveTimeout = 0;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port, seen };
}

/**
 * A backend that refuses every WebSocket upgrade with 200. `honoursClose` false keeps the
 * connection open even when asked to close (a non-compliant server): the residual case.
 */
async function startRefusingUpgradeBackend(honoursClose: boolean) {
  const requests: { line: string; head: string }[] = [];
  const sockets = new Set<Socket>();
  const server = createTcpServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let buf = '';
    socket.on('data', (c: Buffer) => {
      buf += c.toString('latin1');
      for (let end = buf.indexOf('\r\n\r\n'); end >= 0; end = buf.indexOf('\r\n\r\n')) {
        const head = buf.slice(0, end);
        buf = buf.slice(end + 4);
        requests.push({ line: head.split('\r\n')[0], head });
        const body = 'no upgrade here\n';
        socket.write(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
        if (honoursClose && /^connection:.*\bclose\b/im.test(head)) socket.end();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

describe('request hardening (normalisation, Host, absolute-form, internal headers, WebSocket)', () => {
  let dir = '';
  let server: StandaloneServer;
  let pub: Awaited<ReturnType<typeof startBackend>>;
  let admin: Awaited<ReturnType<typeof startBackend>>;
  let wsRefuse: Awaited<ReturnType<typeof startRefusingUpgradeBackend>>;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vgw-hardening-'));
    pub = await startBackend('pub');
    admin = await startBackend('admin');
    wsRefuse = await startRefusingUpgradeBackend(true);
    const to = (name: string) => ({ name, port: 80 });
    const prefix = (value: string) => ({ path: { type: 'PathPrefix', value } });
    await writeFile(
      join(dir, 'gateway.yaml'),
      yamlDocs([
        GATEWAY_CLASS,
        httpGateway(NS, GW_ADDRESS, GW_PORT),
        ...loopbackService(NS, 'pub', pub.port),
        ...loopbackService(NS, 'admin', admin.port),
        ...loopbackService(NS, 'ws-refuse', wsRefuse.port),
        gwRoute(NS, 'secure', ['secure.example.com'], [
          { matches: [prefix('/admin')], backendRefs: [to('admin')] },
          { matches: [prefix('/')], backendRefs: [to('pub')] },
        ]),
        // A route value that is not in normal form matches what its normal form matches.
        gwRoute(NS, 'unnormal', ['unnormal.example.com'], [{ matches: [prefix('/a//b/./c')], backendRefs: [to('admin')] }]),
        gwRoute(NS, 'query', ['query.example.com'], [
          { matches: [{ path: { type: 'PathPrefix', value: '/' }, queryParams: [{ name: 'k', value: 'v' }] }], backendRefs: [to('admin')] },
          { matches: [prefix('/')], backendRefs: [to('pub')] },
        ]),
        gwRoute(NS, 'ws', ['ws.example.com'], [{ backendRefs: [to('ws-refuse')] }]),
        // No hostnames: the listener's catch-all, where a Host is reflected into redirects.
        gwRoute(NS, 'catch-all', [], [{ matches: [prefix('/redirect')], filters: [{ type: 'RequestRedirect', requestRedirect: { scheme: 'https' } }] }]),
      ]),
    );
    server = new StandaloneServer({ dir, defaultAddress: '127.0.0.1', logger: silentLogger() });
    await server.start();
    await eventually('gateway serving', async () => (await get('secure.example.com', '/')).status === 200);
  });

  after(async () => {
    await server?.stop();
    await new Promise((r) => pub?.server.close(r));
    await new Promise((r) => admin?.server.close(r));
    await wsRefuse?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const backendOf = (r: RawResponse) => (r.status === 200 ? (JSON.parse(r.body) as { backend: string; url: string; host: string }) : null);

  test('every spelling of /admin reaches the /admin rule, and the backend gets the normal path', async () => {
    for (const spelling of ['/x/../admin', '/%2e%2e/admin', '/%2E%2E/admin', '//admin', '/./admin', '/%61dmin', '/pub/%2e%2e/admin', '/a/b/../../admin', '/..', '/../../admin', '/.%2e/admin', '///admin//', '/admin/x/..']) {
      const r = await get('secure.example.com', spelling);
      const b = backendOf(r);
      const expected = spelling === '/..' ? { backend: 'pub', url: '/' } : { backend: 'admin', url: spelling === '///admin//' ? '/admin/' : spelling === '/admin/x/..' ? '/admin/' : '/admin' };
      assert.deepEqual(b && { backend: b.backend, url: b.url }, expected, `${spelling}: status ${r.status}`);
    }
  });

  test('the query is kept byte for byte; encodings that stay are upper-cased', async () => {
    const b = backendOf(await get('secure.example.com', '/x/..//admin/caf%c3%a9?a=%2f..//&b=%zz#'));
    assert.equal(b?.url, '/admin/caf%C3%A9?a=%2f..//&b=%zz#');
  });

  test('what cannot be normalised safely is refused with 400', async () => {
    for (const bad of ['/admin%2fx', '/x%2F..%2Fadmin', '/a%5cb', '/a\\..\\admin', '/a%00', '/a%zz', '/a%4', '/a%', '/a#b', '*', 'admin']) {
      assert.equal((await get('secure.example.com', bad)).status, 400, bad);
    }
    // ".." nested deeper than the gateway resolves.
    const deep = `/${'a/'.repeat(9)}${'../'.repeat(9)}admin`;
    assert.equal((await get('secure.example.com', deep)).status, 400);
    const shallow = `/${'a/'.repeat(8)}${'../'.repeat(8)}admin`;
    assert.equal(backendOf(await get('secure.example.com', shallow))?.backend, 'admin');
  });

  test('route values are normalised like request paths', async () => {
    assert.equal(backendOf(await get('unnormal.example.com', '/a/b/c/d'))?.backend, 'admin');
    assert.equal((await get('unnormal.example.com', '/a/b')).status, 404);
  });

  test('long URLs (8 KB paths, dot segments and percent-encodings included) do not hit the regex limits', async () => {
    const segs = '/seg'.repeat(1800); // 7200 bytes
    const cases: [string, string][] = [
      [`/admin${segs}/./x/../%41?q=1`, `/admin${segs}/A?q=1`],
      [`/admin${'/'.repeat(7000)}x`, '/admin/x'],
      [`/admin/${'%7e'.repeat(2400)}`, `/admin/${'~'.repeat(2400)}`],
      [`/admin/${'%c3%a9'.repeat(1300)}`, `/admin/${'%C3%A9'.repeat(1300)}`],
      [`/admin/${'./'.repeat(3500)}x`, '/admin/x'],
      [`/admin/${'a/../'.repeat(1600)}x`, '/admin/x'],
    ];
    for (const [target, expected] of cases) {
      const r = await get('secure.example.com', target);
      assert.equal(backendOf(r)?.url, expected, `${target.slice(0, 20)}... (${target.length} bytes): status ${r.status}`);
    }
  });

  test('absolute-form: the authority replaces Host and the backend gets origin-form', async () => {
    for (const target of ['http://secure.example.com/x/../admin', 'https://secure.example.com/admin', 'HTTPS://secure.example.com:8443/admin']) {
      const b = backendOf(await get('other.example.com', target));
      assert.deepEqual(b && { backend: b.backend, url: b.url }, { backend: 'admin', url: '/admin' }, target);
    }
    const b = backendOf(await get('other.example.com', 'https://secure.example.com?q=1'));
    assert.deepEqual(b && { backend: b.backend, url: b.url, host: b.host }, { backend: 'pub', url: '/?q=1', host: 'secure.example.com' });
    assert.equal((await get('other.example.com', 'https://user@secure.example.com/admin')).status, 400);
  });

  test('a Host that is not an authority is refused, never reflected into a redirect', async () => {
    const ok = await get('plain.example.com:8080', '/redirect');
    assert.equal(ok.status, 302);
    assert.equal(ok.headers.get('location')?.[0], 'https://plain.example.com/redirect');
    for (const host of ['evil.example/x?', 'evil.example#', 'evil.example\\x', 'user@evil.example', 'evil example', 'evil.example:80:81', 'evil.example:8x', '[::1', 'a%zz']) {
      const r = await get(host, '/redirect');
      assert.equal(r.status, 400, host);
      assert.equal(r.headers.get('location'), undefined, host);
    }
    assert.equal((await get('[::1]:8080', '/redirect')).status, 302);
    // HTTP/1.1 requires Host; HTTP/1.0 does not.
    assert.equal((await raw('GET /redirect HTTP/1.1')).status, 400);
    assert.equal((await raw('GET /redirect HTTP/1.0')).status, 302);
  });

  test('query parameter matches work on query strings up to the request size limits', async () => {
    // 16 000 bytes: twice http_req_hdr_len, half http_req_size (32 KB for the request line and
    // headers together; under the gateway varnishd itself answered 431 at 24 000).
    for (const filler of ['x'.repeat(8000), '&'.repeat(8000), 'k'.repeat(8000), 'k=w&'.repeat(1900), 'x'.repeat(16_000)]) {
      const r = await get('query.example.com', `/p?pad=${filler}&k=v&k=w`);
      assert.equal(backendOf(r)?.backend, filler.startsWith('k=w') ? 'pub' : 'admin', `${filler.slice(0, 10)}: status ${r.status}`);
    }
    assert.equal(backendOf(await get('query.example.com', '/p?kk=v&k=vv'))?.backend, 'pub');
    assert.equal(backendOf(await get('query.example.com', '/p?k=v#frag'))?.backend, 'admin');
    // Only the first "?" starts the query: "?k=v" inside the value of "a" is no parameter k.
    assert.equal(backendOf(await get('query.example.com', '/p?a=?k=v'))?.backend, 'pub');
    assert.equal(backendOf(await get('query.example.com', '/p?a=?k=w&k=v'))?.backend, 'admin');
  });

  test('x-vgw-* headers never reach a backend from a client, nor a client from a backend', async () => {
    const before = pub.seen.length;
    const r = await get('secure.example.com', '/hdr', ['x-vgw-q5: evil', 'X-VGW-Route: forged', 'x-vgw-rh: 0', 'X-Vgw-Anything: 1', 'x-keep: yes']);
    assert.equal(r.status, 200);
    const seen = pub.seen.slice(before).find((s) => s.url === '/hdr');
    assert.ok(seen);
    assert.equal(seen.headers['x-keep'], 'yes');
    assert.deepEqual(Object.keys(seen.headers).filter((h) => h.startsWith('x-vgw-')), []);
    assert.deepEqual([...r.headers.keys()].filter((h) => h.startsWith('x-vgw-')), []);
  });

  test('a refused WebSocket upgrade leaves no tunnel: the next request on the connection never reaches the backend', async () => {
    const socket = connect(GW_PORT, GW_ADDRESS);
    socket.on('error', () => undefined);
    let received = '';
    let closed = false;
    socket.on('data', (c: Buffer) => (received += c.toString('latin1')));
    socket.on('close', () => (closed = true));
    socket.write('GET /chat HTTP/1.1\r\nHost: ws.example.com\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
    await eventually('the refusal', () => received.includes('no upgrade here'));
    if (!closed) socket.write('GET /admin HTTP/1.1\r\nHost: secure.example.com\r\n\r\n');
    await eventually('the gateway closing the connection', () => closed);
    assert.deepEqual(wsRefuse.requests.map((r) => r.line), ['GET /chat HTTP/1.1']);
    assert.match(wsRefuse.requests[0].head, /^Connection: Upgrade, close$/im);
  });

  test('only a GET that asks for the upgrade in Connection is piped', async () => {
    const before = wsRefuse.requests.length;
    await raw('POST /chat HTTP/1.1\r\nHost: ws.example.com\r\nUpgrade: websocket\r\nContent-Length: 0');
    await raw('GET /chat2 HTTP/1.1\r\nHost: ws.example.com\r\nUpgrade: websocket');
    const heads = wsRefuse.requests.slice(before).map((r) => r.head);
    assert.equal(heads.length, 2);
    for (const h of heads) assert.doesNotMatch(h, /^upgrade:/im);
  });
});
