// HTTPRoute filters and rule policies end to end: manifests on disk -> `vgw serve`
// (StandaloneServer) -> real varnishd -> real echo backends on loopback. One server and one
// manifest directory serve every case; each case has its own hostname(s), so the cases stay
// independent while varnishd starts only once.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { request, type IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { stringify } from 'yaml';
import { startEchoServer, type EchoServer } from '../../src/echo/server.ts';
import { ofKind } from '../../src/gatewayapi/status.ts';
import { render } from '../../src/pipeline/render.ts';
import { loadManifestDir } from '../../src/providers/file/load.ts';
import { StandaloneServer } from '../../src/standalone/server.ts';
import { silentLogger } from '../../src/util/log.ts';
import { freePort } from '../../src/varnish/ports.ts';
import { startRecordingBackend, type RecordingBackend } from './support/recording-backend.ts';
import { GATEWAY_CLASS, gwRoute, httpGateway, yamlDocs } from './support/manifests.ts';
import { eventually } from './support/poll.ts';

const route = (name: string, hostnames: string[], rules: object[]) => gwRoute(NS, name, hostnames, rules);

// Not used by any other integration test, so the files can run in parallel.
const GW_ADDRESS = '127.0.9.1';
const GW_PORT = 18480;
/** A second listener of the same Gateway: redirects must carry the port a request arrived on. */
const ALT_PORT = 18481;
/** Nothing listens on this address; a port on it is closed for sure (see closedEndpoint). */
const DEAD_ADDRESS = '127.0.9.2';
const NS = 'app';

// ---------------------------------------------------------------------------------------------
// HTTP client

interface Got {
  status: number;
  headers: IncomingHttpHeaders;
  /** name, value, name, value...; values decoded as latin1, the way Node reads them. */
  rawHeaders: string[];
  body: string;
}

interface Call {
  host: string;
  path: string;
  method?: string;
  headers?: Record<string, string | string[]>;
  body?: string;
  port?: number;
}

function call(c: Call): Promise<Got> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | string[]> = { host: c.host, ...c.headers };
    if (c.body !== undefined) headers['content-length'] = String(Buffer.byteLength(c.body));
    const req = request(
      { host: GW_ADDRESS, port: c.port ?? GW_PORT, path: c.path, method: c.method ?? 'GET', headers, agent: false, timeout: 15_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks).toString() }));
      },
    );
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error(`timeout: ${c.host} ${c.path}`)));
    req.end(c.body);
  });
}

const get = (host: string, path: string, headers: Record<string, string | string[]> = {}, port?: number) =>
  call({ host, path, headers, ...(port !== undefined ? { port } : {}) });

/**
 * Node reads header bytes as latin1; re-reading them as UTF-8 gives back the bytes as sent, so
 * values can be compared byte for byte with what a manifest holds.
 */
const utf8 = (latin1: string) => Buffer.from(latin1, 'latin1').toString('utf8');
/** A UTF-8 value written as the latin1 string Node puts on the wire byte for byte. */
const wire = (value: string) => Buffer.from(value, 'utf8').toString('latin1');

/** Every value of one response header (case-insensitive name), in order, as bytes sent. */
function responseValues(g: Got, name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < g.rawHeaders.length; i += 2) if (g.rawHeaders[i].toLowerCase() === name.toLowerCase()) out.push(utf8(g.rawHeaders[i + 1]));
  return out;
}

interface Echoed {
  path: string;
  host: string;
  method: string;
  headers: Record<string, string[]>;
  pod: string;
}

function echoed(g: Got): Echoed {
  assert.equal(g.status, 200, `expected an echo, got ${g.status}: ${g.body.slice(0, 200)}`);
  const e = JSON.parse(g.body) as Echoed;
  // The echo backend read header bytes as latin1 too.
  for (const k of Object.keys(e.headers)) e.headers[k] = e.headers[k].map(utf8);
  return e;
}

// ---------------------------------------------------------------------------------------------
// Manifests

type Endpoint = { address: string; port: number };

function service(name: string, endpoints: Endpoint[], appProtocol?: string): object[] {
  return [
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name, namespace: NS },
      spec: { ports: [{ name: 'http', port: 80, ...(appProtocol ? { appProtocol } : {}) }] },
    },
    // One slice per endpoint: endpoints of one slice share its ports, these differ in port.
    ...endpoints.map((ep, i) => ({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: `${name}-${i}`, namespace: NS, labels: { 'kubernetes.io/service-name': name } },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: ep.port }],
      endpoints: [{ addresses: [ep.address] }],
    })),
  ];
}

const to = (name: string, extra: object = {}) => ({ name, port: 80, ...extra });
const prefix = (value: string) => ({ path: { type: 'PathPrefix', value } });
const exact = (value: string) => ({ path: { type: 'Exact', value } });
type HeaderMod = { set?: { name: string; value: string }[]; add?: { name: string; value: string }[]; remove?: string[] };
const requestHeaders = (m: HeaderMod) => ({ type: 'RequestHeaderModifier', requestHeaderModifier: m });
const responseHeaders = (m: HeaderMod) => ({ type: 'ResponseHeaderModifier', responseHeaderModifier: m });
const redirect = (r: object) => ({ type: 'RequestRedirect', requestRedirect: r });
const rewrite = (r: object) => ({ type: 'URLRewrite', urlRewrite: r });
const replacePrefix = (value: string) => ({ type: 'ReplacePrefixMatch', replacePrefixMatch: value });
const replaceFull = (value: string) => ({ type: 'ReplaceFullPath', replaceFullPath: value });

/** Values that would break out of a VCL string or into inline C if pasted unescaped. */
const NASTY = [
  'he said "hi"',
  '{braces} and }{ and {"',
  '"} + req.http.host + {"',
  'back\\slash \\n \\" \\\\',
  'C{ abort(); }C',
  'naïve – 日本語 € 🎉',
  '"};} sub vcl_recv { return (synth(200)); } sub x {"',
];

// ReplacePrefixMatch table of the HTTPPathModifier spec, one hostname per (prefix, replacement).
const REWRITE_PREFIXES = ['/foo', '/foo/'];
const REWRITE_REPLACEMENTS = ['/xyz', '/xyz/', '/', ''];
const rewriteHost = (p: number, r: number) => `rw-p${p}-r${r}.example.com`;

/** Routes that hold a value the gateway must refuse; each has its own hostname. */
const REJECTED: { name: string; rule: object }[] = [
  { name: 'bad-req-header-cr', rule: { filters: [requestHeaders({ set: [{ name: 'X-Bad', value: 'a\rb' }] })], backendRefs: [to('svc-a')] } },
  { name: 'bad-req-header-lf', rule: { filters: [requestHeaders({ add: [{ name: 'X-Bad', value: 'a\nX-Injected: 1' }] })], backendRefs: [to('svc-a')] } },
  { name: 'bad-resp-header-crlf', rule: { filters: [responseHeaders({ set: [{ name: 'X-Bad', value: 'a\r\nSet-Cookie: x=1' }] })], backendRefs: [to('svc-a')] } },
  { name: 'bad-redirect-host-cr', rule: { filters: [redirect({ hostname: 'evil.example.com\r' })] } },
  { name: 'bad-redirect-host-lf', rule: { filters: [redirect({ hostname: 'evil.example.com\nX-Injected: 1' })] } },
  { name: 'bad-rewrite-space', rule: { filters: [rewrite({ path: replaceFull('/a b') })], backendRefs: [to('svc-a')] } },
  { name: 'bad-rewrite-quote', rule: { filters: [rewrite({ path: replaceFull('/a"b') })], backendRefs: [to('svc-a')] } },
  { name: 'bad-rewrite-prefix-quote', rule: { matches: [prefix('/p')], filters: [rewrite({ path: replacePrefix('/"} + "x') })], backendRefs: [to('svc-a')] } },
  { name: 'bad-redirect-path-space', rule: { filters: [redirect({ path: replaceFull('/a b') })] } },
  { name: 'bad-cors-origin-crlf', rule: { filters: [{ type: 'CORS', cors: { allowOrigins: ['https://a.example.com\r\nX-Injected: 1'] } }], backendRefs: [to('svc-a')] } },
];

// ---------------------------------------------------------------------------------------------

describe('HTTPRoute filters and rule policies through vgw serve', () => {
  let dir = '';
  let server: StandaloneServer;
  let a: EchoServer;
  let b: EchoServer;
  let rec: RecordingBackend;
  let closedEndpoint: Endpoint;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vgw-filters-'));
    a = await startEchoServer({ port: 0, pod: 'svc-a-pod', namespace: NS });
    b = await startEchoServer({ port: 0, pod: 'svc-b-pod', namespace: NS });
    rec = await startRecordingBackend();
    // No listener on DEAD_ADDRESS; freePort on it also rules out a wildcard listener there.
    closedEndpoint = { address: DEAD_ADDRESS, port: await freePort(DEAD_ADDRESS) };
    const at = (e: EchoServer): Endpoint => ({ address: '127.0.0.1', port: Number(new URL(e.url).port) });

    await writeFile(
      join(dir, 'gateway.yaml'),
      yamlDocs([
        GATEWAY_CLASS,
        httpGateway(NS, GW_ADDRESS, [{ name: 'http', port: GW_PORT }, { name: 'alt', port: ALT_PORT }]),
        ...service('svc-a', [at(a)]),
        ...service('svc-b', [at(b)]),
        ...service('svc-rec', [{ address: '127.0.0.1', port: rec.port }]),
        ...service('svc-closed', [closedEndpoint]),
        ...service('svc-half', [at(a), closedEndpoint]),
        ...service('svc-ws', [at(a)], 'kubernetes.io/ws'),
        ...service('svc-h2c', [at(a)], 'kubernetes.io/h2c'),
      ]),
    );

    const respMod: HeaderMod = { set: [{ name: 'X-Resp-Set', value: 'set' }], add: [{ name: 'X-Resp-Add', value: 'added' }], remove: ['X-Resp-Remove'] };
    const ownMod: HeaderMod = { set: [{ name: 'Content-Type', value: 'application/x-set-by-filter' }], remove: ['X-Varnish'] };
    const routes: object[] = [
      route('plain', ['plain.example.com'], [{ backendRefs: [to('svc-a')] }]),
      route('headers', ['hdr.example.com'], [
        {
          filters: [
            requestHeaders({
              set: [{ name: 'X-Set', value: 'set-value' }, { name: 'X-Order', value: 'first' }, { name: 'X-Dropped', value: 'never seen' }],
              add: [{ name: 'X-Add', value: 'b' }, { name: 'X-Order', value: 'second' }],
              remove: ['X-Remove', 'X-Dropped'],
            }),
          ],
          backendRefs: [to('svc-a')],
        },
      ]),
      route('responses', ['resp.example.com'], [
        { matches: [prefix('/backend')], filters: [responseHeaders(respMod)], backendRefs: [to('svc-a')] },
        { matches: [prefix('/missing')], filters: [responseHeaders(respMod)], backendRefs: [to('svc-does-not-exist')] },
        { matches: [prefix('/redirect')], filters: [redirect({ hostname: 'elsewhere.example.com', statusCode: 301 }), responseHeaders(respMod)] },
        { matches: [prefix('/closed')], filters: [responseHeaders(respMod)], backendRefs: [to('svc-closed')] },
      ]),
      // Headers Varnish itself writes on every response are the filter's to change as well.
      route('response-own', ['resp-own.example.com'], [
        { matches: [prefix('/backend')], filters: [responseHeaders(ownMod)], backendRefs: [to('svc-a')] },
        { matches: [prefix('/missing')], filters: [responseHeaders(ownMod)], backendRefs: [to('svc-does-not-exist')] },
        { matches: [prefix('/closed')], filters: [responseHeaders(ownMod)], backendRefs: [to('svc-closed')] },
      ]),
      route('rewrites', ['rw.example.com'], [
        { matches: [prefix('/host')], filters: [rewrite({ hostname: 'rewritten.example.com' })], backendRefs: [to('svc-a')] },
        { matches: [exact('/full')], filters: [rewrite({ path: replaceFull('/replaced/full') })], backendRefs: [to('svc-a')] },
        { matches: [prefix('/fullprefix')], filters: [rewrite({ path: replaceFull('/one') })], backendRefs: [to('svc-a')] },
        // Each match replaces its own prefix.
        { matches: [prefix('/multi-a'), prefix('/multi-b/deeper')], filters: [rewrite({ path: replacePrefix('/m') })], backendRefs: [to('svc-a')] },
        { backendRefs: [to('svc-a')] },
      ]),
      ...REWRITE_PREFIXES.flatMap((p, pi) =>
        REWRITE_REPLACEMENTS.map((r, ri) =>
          route(`rw-p${pi}-r${ri}`, [rewriteHost(pi, ri)], [
            { matches: [prefix(p)], filters: [rewrite({ path: replacePrefix(r) })], backendRefs: [to('svc-a')] },
            // Anything else reaches the backend unchanged: shows where the prefix match ends.
            { backendRefs: [to('svc-a')] },
          ]),
        ),
      ),
      route('redirects', ['redir.example.com', '*.redir.example.com'], [
        { matches: [exact('/plain')], filters: [redirect({})] },
        { matches: [exact('/https')], filters: [redirect({ scheme: 'https' })] },
        { matches: [exact('/https-port')], filters: [redirect({ scheme: 'https', port: 8443 })] },
        { matches: [exact('/port')], filters: [redirect({ port: 8080 })] },
        { matches: [exact('/port80')], filters: [redirect({ port: 80 })] },
        { matches: [exact('/hostname')], filters: [redirect({ hostname: 'other.example.com' })] },
        { matches: [exact('/fullpath')], filters: [redirect({ path: replaceFull('/new/full') })] },
        { matches: [prefix('/prefix')], filters: [redirect({ path: replacePrefix('/swapped') })] },
        ...[301, 302, 303, 307, 308].map((code) => ({ matches: [exact(`/code/${code}`)], filters: [redirect({ statusCode: code })] })),
        // Explicit freshness on a redirect must not make Varnish cache it across hosts.
        {
          matches: [exact('/cacheable')],
          filters: [redirect({}), responseHeaders({ set: [{ name: 'Cache-Control', value: 'public, max-age=3600' }] })],
        },
      ]),
      route('split', ['split.example.com'], [
        {
          backendRefs: [
            to('svc-a', { weight: 1, filters: [requestHeaders({ set: [{ name: 'X-Backend', value: 'a' }] }), responseHeaders({ set: [{ name: 'X-Served-By', value: 'a' }] })] }),
            to('svc-b', { weight: 1, filters: [requestHeaders({ set: [{ name: 'X-Backend', value: 'b' }] }), responseHeaders({ set: [{ name: 'X-Served-By', value: 'b' }] })] }),
          ],
        },
      ]),
      route('mirror', ['mirror.example.com'], [
        {
          filters: [
            requestHeaders({ set: [{ name: 'X-Before-Mirror', value: 'yes' }] }),
            rewrite({ path: replaceFull('/mirrored') }),
            { type: 'RequestMirror', requestMirror: { backendRef: to('svc-b') } },
          ],
          backendRefs: [to('svc-a')],
        },
      ]),
      route('combo', ['combo.example.com'], [
        {
          matches: [prefix('/api')],
          filters: [rewrite({ path: replacePrefix('/v2') }), requestHeaders({ set: [{ name: 'X-Combo', value: 'yes' }] })],
          backendRefs: [
            to('svc-a', { weight: 1, filters: [requestHeaders({ add: [{ name: 'X-Backend', value: 'a' }] })] }),
            to('svc-b', { weight: 1, filters: [requestHeaders({ add: [{ name: 'X-Backend', value: 'b' }] })] }),
          ],
        },
        { matches: [prefix('/old')], filters: [redirect({ path: replacePrefix('/api'), statusCode: 301 })] },
      ]),
      route('timeouts', ['timeout.example.com'], [
        { matches: [prefix('/request')], timeouts: { request: '300ms' }, backendRefs: [to('svc-a')] },
        { matches: [prefix('/backend')], timeouts: { backendRequest: '300ms' }, backendRefs: [to('svc-a')] },
        { matches: [prefix('/disabled')], timeouts: { request: '0s', backendRequest: '0s' }, backendRefs: [to('svc-a')] },
      ]),
      // A backendRequest timeout counts as a 504 for retries: retried only when 504 is listed.
      // Hostnames, not paths, tell them apart: the echo's /retry/ contract needs the path.
      route('timeout-retry-504', ['timeout-retry-504.example.com'], [{ timeouts: { backendRequest: '300ms' }, retry: { attempts: 1, codes: [504] }, backendRefs: [to('svc-a')] }]),
      route('timeout-retry-500', ['timeout-retry-500.example.com'], [{ timeouts: { backendRequest: '300ms' }, retry: { attempts: 1, codes: [500] }, backendRefs: [to('svc-a')] }]),
      route('retries', ['retry.example.com'], [
        { matches: [prefix('/r2')], retry: { attempts: 2, codes: [500, 503] }, backendRefs: [to('svc-rec')] },
        { matches: [prefix('/r0')], retry: { attempts: 0, codes: [500] }, backendRefs: [to('svc-rec')] },
        // More attempts than varnishd's default max_retries (4), fewer than the gateway's cap (16).
        { matches: [prefix('/r6')], retry: { attempts: 6, codes: [500] }, backendRefs: [to('svc-rec')] },
      ]),
      route('retry-conn', ['retry-conn.example.com'], [{ retry: { attempts: 1 }, backendRefs: [to('svc-half')] }]),
      route('noretry-conn', ['noretry-conn.example.com'], [{ backendRefs: [to('svc-half')] }]),
      route('cors', ['cors.example.com'], [
        {
          filters: [
            {
              type: 'CORS',
              cors: {
                allowOrigins: ['https://www.foo.com', 'https://*.example.com'],
                allowMethods: ['GET', 'PUT'],
                allowHeaders: ['X-Custom', 'Content-Type'],
                exposeHeaders: ['X-Exposed'],
                allowCredentials: true,
                maxAge: 600,
              },
            },
          ],
          backendRefs: [to('svc-a')],
        },
      ]),
      route('websocket', ['ws.example.com'], [{ filters: [requestHeaders({ set: [{ name: 'X-Ws-Filter', value: 'yes' }] })], backendRefs: [to('svc-ws')] }]),
      route('h2c', ['h2c.example.com'], [{ backendRefs: [to('svc-h2c')] }]),
      route('nasty', ['nasty.example.com'], [
        {
          filters: [
            requestHeaders({
              set: NASTY.map((value, i) => ({ name: `X-Nasty-${i}`, value })),
              add: [{ name: 'X-Nasty-Add', value: NASTY[2] }],
            }),
            responseHeaders({ set: NASTY.map((value, i) => ({ name: `X-Nasty-Resp-${i}`, value })) }),
          ],
          backendRefs: [to('svc-a')],
        },
      ]),
      ...REJECTED.map(({ name, rule }) => route(name, [`${name}.example.com`], [rule])),
    ];
    await writeFile(join(dir, 'routes.yaml'), yamlDocs(routes));

    server = new StandaloneServer({ dir, defaultAddress: '127.0.0.1', logger: silentLogger() });
    await server.start();
    await eventually('the gateway serving', async () => (await get('plain.example.com', '/')).status === 200);
  });

  after(async () => {
    await server?.stop();
    await a?.close();
    await b?.close();
    await rec?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('RequestHeaderModifier: set, add, remove in spec order; names case-insensitive; add appends with ","', async () => {
    const e = echoed(await get('hdr.example.com', '/', { 'x-set': 'client', 'x-add': 'a', 'x-remove': 'gone', 'x-keep': 'kept', 'x-order': 'client' }));
    assert.deepEqual(e.headers['X-Set'], ['set-value'], 'set replaces the client value');
    assert.deepEqual(e.headers['X-Add'], ['a,b'], 'add appends to the client value, no space');
    assert.equal(e.headers['X-Remove'], undefined, 'remove drops the client header');
    assert.deepEqual(e.headers['X-Keep'], ['kept']);
    // set, then add, then remove, as the spec orders them.
    assert.deepEqual(e.headers['X-Order'], ['first,second']);
    assert.equal(e.headers['X-Dropped'], undefined, 'a header set then removed is gone');

    const bare = echoed(await get('hdr.example.com', '/'));
    assert.deepEqual(bare.headers['X-Add'], ['b'], 'add without a client value');
    assert.deepEqual(bare.headers['X-Set'], ['set-value']);

    const repeated = echoed(await get('hdr.example.com', '/', { 'x-add': ['one', 'two'] }));
    assert.deepEqual(repeated.headers['X-Add'], ['one,two,b'], 'repeated client lines are folded before appending');
    const lines = echoed(await get('hdr.example.com', '/', { 'x-set': ['c1', 'c2'], 'X-REMOVE': ['r1', 'r2'] }));
    assert.deepEqual(lines.headers['X-Set'], ['set-value'], 'set replaces every client line');
    assert.equal(lines.headers['X-Remove'], undefined, 'remove drops every client line');
  });

  test('ResponseHeaderModifier on backend responses and on responses Varnish synthesizes', async () => {
    const check = (g: Got, what: string, fromBackend: boolean) => {
      assert.deepEqual(responseValues(g, 'X-Resp-Set'), ['set'], `${what}: set`);
      assert.deepEqual(responseValues(g, 'X-Resp-Add'), [fromBackend ? 'orig,added' : 'added'], `${what}: add`);
      assert.deepEqual(responseValues(g, 'X-Resp-Remove'), [], `${what}: remove`);
    };
    const backend = await get('resp.example.com', '/backend', { 'X-Echo-Set-Header': 'X-Resp-Set:orig,X-Resp-Add:orig,X-Resp-Remove:gone,X-Resp-Keep:kept' });
    assert.equal(backend.status, 200);
    check(backend, 'backend response', true);
    assert.deepEqual(responseValues(backend, 'X-Resp-Keep'), ['kept']);

    const missing = await get('resp.example.com', '/missing');
    assert.equal(missing.status, 500, 'a backendRef to a missing Service answers 500');
    check(missing, '500 for a missing Service', false);

    const redirected = await get('resp.example.com', '/redirect');
    assert.equal(redirected.status, 301);
    assert.equal(redirected.headers.location, `http://elsewhere.example.com:${GW_PORT}/redirect`);
    check(redirected, 'redirect', false);

    const closed = await get('resp.example.com', '/closed');
    assert.equal(closed.status, 503, 'a failed fetch answers 503');
    check(closed, '503 from a failed fetch', false);
  });

  test(
    'ResponseHeaderModifier also changes headers Varnish writes itself (Content-Type, X-Varnish)',
    async () => {
      const wrong: string[] = [];
      for (const [path, status] of [['/backend', 200], ['/missing', 500], ['/closed', 503]] as const) {
        const g = await get('resp-own.example.com', path);
        assert.equal(g.status, status, path);
        const type = responseValues(g, 'Content-Type');
        if (type.join() !== 'application/x-set-by-filter') wrong.push(`${path} (${status}): Content-Type ${JSON.stringify(type)}`);
        const varnish = responseValues(g, 'X-Varnish');
        if (varnish.length) wrong.push(`${path} (${status}): X-Varnish ${JSON.stringify(varnish)} not removed`);
      }
      assert.deepEqual(wrong, []);
    },
  );

  test('URLRewrite: hostname, ReplaceFullPath, a prefix per match; the query string is kept byte for byte', async () => {
    const query = '?x=%2F&y=a+b&z=%E2%82%AC&&w=';
    const host = echoed(await get('rw.example.com', `/host/a${query}`));
    assert.equal(host.host, 'rewritten.example.com');
    assert.equal(host.path, `/host/a${query}`, 'a hostname rewrite leaves the path alone');

    assert.equal(echoed(await get('rw.example.com', `/full${query}`)).path, `/replaced/full${query}`);
    assert.equal(echoed(await get('rw.example.com', '/full')).path, '/replaced/full');
    assert.equal(echoed(await get('rw.example.com', `/fullprefix/deep/er${query}`)).path, `/one${query}`);
    assert.equal(echoed(await get('rw.example.com', '/fullprefixed')).path, '/fullprefixed', '/fullprefixed is not under /fullprefix');
    assert.equal(echoed(await get('rw.example.com', '/multi-a/x')).path, '/m/x');
    assert.equal(echoed(await get('rw.example.com', '/multi-b/deeper/x')).path, '/m/x');
    assert.equal(echoed(await get('rw.example.com', '/multi-b/x')).path, '/multi-b/x', 'not under either prefix');
    const untouched = echoed(await get('rw.example.com', `/other${query}`));
    assert.equal(untouched.path, `/other${query}`);
    assert.equal(untouched.host, 'rw.example.com');
  });

  test('URLRewrite ReplacePrefixMatch: the HTTPPathModifier table, segment boundaries, the query kept', async () => {
    // [request path, replacement] -> modified path; identical for prefix "/foo" and "/foo/"
    // (a trailing "/" of the prefix is ignored). "/foo" with "/xyz/" is not in the spec's table:
    // the replacement's trailing "/" is dropped like the prefix's, giving "/xyz".
    const expected: Record<string, Record<string, string>> = {
      '/xyz': { '/foo': '/xyz', '/foo/': '/xyz/', '/foo/bar': '/xyz/bar' },
      '/xyz/': { '/foo': '/xyz', '/foo/': '/xyz/', '/foo/bar': '/xyz/bar' },
      '/': { '/foo': '/', '/foo/': '/', '/foo/bar': '/bar' },
      '': { '/foo': '/', '/foo/': '/', '/foo/bar': '/bar' },
    };
    const failures: string[] = [];
    for (const [pi, p] of REWRITE_PREFIXES.entries()) {
      for (const [ri, r] of REWRITE_REPLACEMENTS.entries()) {
        for (const [path, want] of Object.entries(expected[r])) {
          const got = echoed(await get(rewriteHost(pi, ri), path)).path;
          if (got !== want) failures.push(`prefix ${p} replacement ${r}: ${path} -> ${got}, want ${want}`);
        }
        // Segment boundaries: /foobar is not under /foo and reaches the backend unchanged.
        const boundary = echoed(await get(rewriteHost(pi, ri), '/foobar/x')).path;
        if (boundary !== '/foobar/x') failures.push(`prefix ${p} replacement ${r}: /foobar/x -> ${boundary}, want it unchanged`);
        const deep = echoed(await get(rewriteHost(pi, ri), '/foo/bar/baz/')).path;
        const wantDeep = `${r.replace(/\/$/, '')}/bar/baz/`;
        if (deep !== wantDeep) failures.push(`prefix ${p} replacement ${r}: /foo/bar/baz/ -> ${deep}, want ${wantDeep}`);
      }
    }
    assert.deepEqual(failures, []);
    const query = '?x=%2F&y=a+b&z=%E2%82%AC&&w=';
    assert.equal(echoed(await get(rewriteHost(0, 0), `/foo/bar${query}`)).path, `/xyz/bar${query}`);
    assert.equal(echoed(await get(rewriteHost(0, 2), `/foo${query}`)).path, `/${query}`);
  });

  test('RequestRedirect: Location from the request, listener port, scheme, port, hostname, path, codes, query', async () => {
    const loc = async (path: string, host = 'redir.example.com', port?: number) => {
      const g = await get(host, path, {}, port);
      assert.ok(g.status >= 300 && g.status < 400, `${host}${path}: status ${g.status}`);
      return g.headers.location;
    };
    // No hostname in the filter: the request's own host; its port is replaced by the listener's.
    assert.equal(await loc('/plain?a=1&b=%2F'), `http://redir.example.com:${GW_PORT}/plain?a=1&b=%2F`);
    assert.equal(await loc('/plain', 'redir.example.com:9999'), `http://redir.example.com:${GW_PORT}/plain`);
    assert.equal(await loc('/plain', 'x.redir.example.com'), `http://x.redir.example.com:${GW_PORT}/plain`);
    assert.equal(await loc('/plain', 'redir.example.com', ALT_PORT), `http://redir.example.com:${ALT_PORT}/plain`, 'the port the request arrived on');
    assert.equal(await loc('/https', 'redir.example.com:9999'), 'https://redir.example.com/https', 'https implies 443, left out');
    assert.equal(await loc('/https-port'), 'https://redir.example.com:8443/https-port');
    assert.equal(await loc('/port'), 'http://redir.example.com:8080/port');
    assert.equal(await loc('/port80?q'), 'http://redir.example.com/port80?q', 'port 80 is the default for http');
    assert.equal(await loc('/hostname?q=1'), `http://other.example.com:${GW_PORT}/hostname?q=1`);
    assert.equal(await loc('/fullpath?q=1'), `http://redir.example.com:${GW_PORT}/new/full?q=1`);
    assert.equal(await loc('/prefix/a/b?q=1'), `http://redir.example.com:${GW_PORT}/swapped/a/b?q=1`);
    // The path is normalised first (docs/requests.md): reserved encodings stay, in upper case.
    assert.equal(await loc('/prefix/a%20b%3a?x=%2F'), `http://redir.example.com:${GW_PORT}/swapped/a%20b%3A?x=%2F`, 'percent-encoding kept');
    assert.equal(await loc('/prefix'), `http://redir.example.com:${GW_PORT}/swapped`);
    assert.equal(await loc('/prefix/'), `http://redir.example.com:${GW_PORT}/swapped/`);
    assert.equal((await get('redir.example.com', '/prefixed')).status, 404, '/prefixed is not under /prefix');

    for (const code of [301, 302, 303, 307, 308]) {
      const g = await get('redir.example.com', `/code/${code}?k=v`);
      assert.equal(g.status, code);
      assert.equal(g.headers.location, `http://redir.example.com:${GW_PORT}/code/${code}?k=v`);
    }
    assert.equal((await get('redir.example.com', '/plain')).status, 302, 'the default status code');
  });

  test('RequestRedirect responses are never cached, whatever their Cache-Control', async () => {
    const first = await get('one.redir.example.com', '/cacheable?same');
    assert.equal(first.headers['cache-control'], 'public, max-age=3600');
    assert.equal(first.headers.location, `http://one.redir.example.com:${GW_PORT}/cacheable?same`);
    const second = await get('two.redir.example.com', '/cacheable?same');
    assert.equal(second.headers.location, `http://two.redir.example.com:${GW_PORT}/cacheable?same`);
    const third = await get('one.redir.example.com:1234', '/plain?same', { 'cache-control': 'max-age=3600' });
    const fourth = await get('two.redir.example.com:1234', '/plain?same', { 'cache-control': 'max-age=3600' });
    assert.equal(third.headers.location, `http://one.redir.example.com:${GW_PORT}/plain?same`);
    assert.equal(fourth.headers.location, `http://two.redir.example.com:${GW_PORT}/plain?same`);
  });

  test('backendRef header modifiers with a 1:1 split: each backend sees only its own value, its own response header', async () => {
    const seen = new Map<string, number>();
    for (let i = 0; i < 40; i++) {
      const g = await get('split.example.com', `/split/${i}`, { 'x-backend': 'client' });
      const e = echoed(g);
      const want = e.pod === 'svc-a-pod' ? 'a' : 'b';
      assert.deepEqual(e.headers['X-Backend'], [want], `request ${i} on ${e.pod}`);
      assert.deepEqual(responseValues(g, 'X-Served-By'), [want], `response ${i} from ${e.pod}: backendRef ResponseHeaderModifier`);
      seen.set(e.pod, (seen.get(e.pod) ?? 0) + 1);
    }
    assert.deepEqual([...seen.keys()].sort(), ['svc-a-pod', 'svc-b-pod'], `both backends hit: ${JSON.stringify([...seen])}`);
  });

  test('URLRewrite + RequestHeaderModifier + weighted split in one rule; a redirect rule beside it', async () => {
    const pods = new Set<string>();
    for (let i = 0; i < 30; i++) {
      const e = echoed(await get('combo.example.com', `/api/items/${i}?x=%2F`));
      assert.equal(e.path, `/v2/items/${i}?x=%2F`);
      assert.deepEqual(e.headers['X-Combo'], ['yes']);
      assert.deepEqual(e.headers['X-Backend'], [e.pod === 'svc-a-pod' ? 'a' : 'b']);
      pods.add(e.pod);
    }
    assert.deepEqual([...pods].sort(), ['svc-a-pod', 'svc-b-pod']);

    const r = await get('combo.example.com', '/old/items?x=1');
    assert.equal(r.status, 301);
    assert.equal(r.headers.location, `http://combo.example.com:${GW_PORT}/api/items?x=1`);
    const followed = echoed(await get('combo.example.com', new URL(r.headers.location as string).pathname + '?x=1'));
    assert.equal(followed.path, '/v2/items?x=1');
  });

  test('RequestMirror: a copy with the rule\'s request filters reaches the mirror Service; the primary answers', async () => {
    const id = randomUUID();
    const path = `/mirrored?id=${id}`;
    const e = echoed(await get('mirror.example.com', `/orig/x?id=${id}`));
    assert.equal(e.pod, 'svc-a-pod');
    assert.equal(e.path, path);
    // The copy leaves after the primary transaction ends, from the log reader: poll for it.
    await eventually('the mirrored copy on svc-b', async () => b.requests.some((r) => r.path === path));
    const copies = b.requests.filter((r) => r.path === path);
    assert.equal(copies.length, 1, 'one copy per request');
    assert.equal(copies[0].host, 'mirror.example.com');
    assert.deepEqual(copies[0].headers['X-Before-Mirror'], ['yes']);
  });

  test('timeouts: request and backendRequest answer 504 on their route only; 0s disables', async () => {
    const [request, other] = await Promise.all([get('timeout.example.com', '/request?delay=1s'), get('plain.example.com', '/concurrent?delay=1s')]);
    assert.equal(request.status, 504, 'timeouts.request 300ms with a 1 s backend');
    assert.equal(other.status, 200, 'a route without timeouts waits for the same 1 s backend');

    const [backend, other2] = await Promise.all([get('timeout.example.com', '/backend?delay=1s'), get('plain.example.com', '/concurrent2?delay=1s')]);
    assert.equal(backend.status, 504, 'timeouts.backendRequest 300ms with a 1 s backend');
    assert.equal(other2.status, 200);

    // A quick backend answers within 300 ms; polled, since a loaded machine may need a second try.
    await eventually('a quick backend answering within timeouts.request', async () => (await get('timeout.example.com', '/request')).status === 200);
    assert.equal((await get('timeout.example.com', '/disabled?delay=1s')).status, 200, '0s means no timeout');
  });

  test('a backendRequest timeout is retried when 504 is among the retry codes, and only then', async () => {
    // The echo's first attempt for a uuid waits 1 s (past the 300 ms timeout); the second answers.
    const slowFirst = (codes: string) => get(`timeout-retry-${codes}.example.com`, `/retry/x?uuid=${randomUUID()}&succeedAfter=1&delayRetry=1s&responseCode=500`);
    const retried = await slowFirst('504');
    assert.equal(retried.status, 200, `retried after the timeout: ${retried.body.slice(0, 100)}`);
    assert.equal((await slowFirst('500')).status, 504, '504 not listed: the timeout is final');
  });

  test('retry: within attempts, beyond them, unlisted codes, attempts 0, POST body sent again', async () => {
    const uuid = () => randomUUID();
    const attempt = async (path: string, id: string, succeedAfter: number, code: number) =>
      get('retry.example.com', `${path}/retry/x?uuid=${id}&succeedAfter=${succeedAfter}&responseCode=${code}`);

    const within = uuid();
    assert.equal((await attempt('/r2', within, 2, 500)).status, 200, '2 failures, 2 retries');
    assert.equal(rec.attempts(within).length, 3);

    const beyond = uuid();
    const failed = await attempt('/r2', beyond, 3, 503);
    assert.equal(failed.status, 503);
    assert.equal(failed.body, 'failing attempt 3\n', "the backend's own last answer, not one Varnish made up");
    assert.equal(rec.attempts(beyond).length, 3);

    const unlisted = uuid();
    assert.equal((await attempt('/r2', unlisted, 1, 502)).status, 502, '502 is not among the codes');
    assert.equal(rec.attempts(unlisted).length, 1);

    const never = uuid();
    assert.equal((await attempt('/r0', never, 1, 500)).status, 500);
    assert.equal(rec.attempts(never).length, 1, 'attempts: 0 never retries');

    const post = uuid();
    const body = 'a request body that must arrive on every attempt\n'.repeat(20);
    const answered = await call({ host: 'retry.example.com', path: `/r2/retry/x?uuid=${post}&succeedAfter=1&responseCode=503`, method: 'POST', body });
    assert.equal(answered.status, 200);
    const attempts = rec.attempts(post);
    assert.equal(attempts.length, 2);
    for (const at of attempts) {
      assert.equal(at.method, 'POST');
      assert.equal(at.body, body, 'the body is sent again on the retry');
    }
  });

  test(
    'retry: more attempts than varnishd\'s default max_retries (4) still succeed',
    async () => {
      const id = randomUUID();
      const g = await get('retry.example.com', `/r6/retry/x?uuid=${id}&succeedAfter=6&responseCode=500`);
      assert.equal(rec.attempts(id).length, 7, 'first attempt + 6 retries');
      assert.equal(g.status, 200);
    },
  );

  test('retry on a connection error: one endpoint of two is a closed port', async () => {
    // Without a retry policy the closed endpoint's share fails: the test below is not vacuous.
    const plain = [];
    for (let i = 0; i < 10; i++) plain.push((await get('noretry-conn.example.com', `/n/${i}`)).status);
    assert.ok(plain.includes(503) && plain.includes(200), `without retry: ${plain.join(',')}`);

    const statuses = [];
    for (let i = 0; i < 20; i++) statuses.push((await get('retry-conn.example.com', `/c/${i}`)).status);
    assert.deepEqual(statuses, Array(20).fill(200), `with retry {attempts: 1}: ${statuses.join(',')}`);
  });

  test('CORS: preflight answered by the gateway, origins allowed or not, Vary: Origin, wildcard origins', async () => {
    const preflight = (origin: string, path: string) =>
      call({
        host: 'cors.example.com',
        path,
        method: 'OPTIONS',
        headers: { origin, 'access-control-request-method': 'PUT', 'access-control-request-headers': 'x-custom' },
      });
    const allowed = await preflight('https://www.foo.com', '/preflight-allowed');
    assert.ok(allowed.status >= 200 && allowed.status < 300, `preflight status ${allowed.status}`);
    assert.equal(allowed.headers['access-control-allow-origin'], 'https://www.foo.com');
    assert.equal(allowed.headers['access-control-allow-methods'], 'GET, PUT');
    assert.equal(allowed.headers['access-control-allow-headers'], 'X-Custom, Content-Type');
    assert.equal(allowed.headers['access-control-max-age'], '600');
    assert.equal(allowed.headers['access-control-allow-credentials'], 'true');

    const refused = await preflight('https://evil.test', '/preflight-refused');
    assert.equal(refused.headers['access-control-allow-origin'], undefined);
    assert.equal(refused.headers['access-control-allow-methods'], undefined);
    assert.ok(
      !a.requests.some((r) => r.path.startsWith('/preflight-')),
      'preflights never reach the backend',
    );

    const actual = await get('cors.example.com', '/actual', { origin: 'https://www.foo.com' });
    assert.equal(echoed(actual).method, 'GET');
    assert.equal(actual.headers['access-control-allow-origin'], 'https://www.foo.com');
    assert.equal(actual.headers['access-control-allow-credentials'], 'true');
    assert.equal(actual.headers['access-control-expose-headers'], 'X-Exposed');
    assert.match(String(actual.headers.vary ?? ''), /(^|,\s*)Origin(\s*,|$)/i);

    const foreign = await get('cors.example.com', '/actual', { origin: 'https://evil.test' });
    assert.equal(foreign.status, 200);
    assert.equal(foreign.headers['access-control-allow-origin'], undefined);

    // "https://*.example.com": one label or more in place of "*", never none.
    const deep = await preflight('https://a.b.example.com', '/preflight-wildcard');
    assert.equal(deep.headers['access-control-allow-origin'], 'https://a.b.example.com');
    assert.equal((await get('cors.example.com', '/actual', { origin: 'https://a.b.example.com' })).headers['access-control-allow-origin'], 'https://a.b.example.com');
    const apex = await get('cors.example.com', '/actual', { origin: 'https://example.com' });
    assert.equal(apex.headers['access-control-allow-origin'], undefined, 'the apex is not under *.example.com');
    const lookalike = await get('cors.example.com', '/actual', { origin: 'https://evilexample.com' });
    assert.equal(lookalike.headers['access-control-allow-origin'], undefined);
    const otherScheme = await get('cors.example.com', '/actual', { origin: 'http://a.example.com' });
    assert.equal(otherScheme.headers['access-control-allow-origin'], undefined, 'the scheme is part of the origin');
  });

  test('WebSocket: a kubernetes.io/ws backend, text and binary messages echoed through the gateway', async () => {
    const ws = new WebSocket(`ws://${GW_ADDRESS}:${GW_PORT}/ws`, {
      headers: { Host: 'ws.example.com' },
      // The echo's handler refuses a handshake without an Origin, as upstream's does.
      origin: 'http://ws.example.com',
      perMessageDeflate: false,
      handshakeTimeout: 10_000,
    });
    const inbox: { data: Buffer; isBinary: boolean }[] = [];
    let wake: () => void = () => undefined;
    ws.on('message', (data, isBinary) => {
      inbox.push({ data: Buffer.isBuffer(data) ? data : Buffer.concat(Array.isArray(data) ? data : [Buffer.from(data)]), isBinary });
      wake();
    });
    const next = async () => {
      const deadline = Date.now() + 10_000;
      while (inbox.length === 0) {
        assert.ok(Date.now() < deadline, 'no message echoed back');
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, 200);
        });
      }
      return inbox.shift() as { data: Buffer; isBinary: boolean };
    };
    try {
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
        ws.once('unexpected-response', (_req, res) => reject(new Error(`handshake answered ${res.statusCode}`)));
      });
      ws.send('hello through varnish');
      const text = await next();
      assert.equal(text.isBinary, false);
      assert.equal(text.data.toString(), 'hello through varnish');
      const bytes = Buffer.from([0, 1, 2, 0xff, 0xfe, 10, 13]);
      ws.send(bytes, { binary: true });
      const binary = await next();
      assert.equal(binary.isBinary, true);
      assert.deepEqual(binary.data, bytes);
    } finally {
      ws.terminate();
    }
    const handshake = a.requests.find((r) => r.upgrade === 'websocket' && r.host === 'ws.example.com');
    assert.ok(handshake, 'the handshake reached the backend');
    assert.deepEqual(handshake.headers['X-Ws-Filter'], ['yes'], "the rule's request filter applies to the handshake");
  });

  test('adversarial values in header modifiers arrive byte for byte', async () => {
    const g = await get('nasty.example.com', '/', { 'x-nasty-add': wire('client "} ü') });
    const e = echoed(g);
    NASTY.forEach((value, i) => {
      assert.deepEqual(e.headers[`X-Nasty-${i}`], [value], `request header ${i}`);
      assert.deepEqual(responseValues(g, `X-Nasty-Resp-${i}`), [value], `response header ${i}`);
    });
    assert.deepEqual(e.headers['X-Nasty-Add'], [`client "} ü,${NASTY[2]}`]);
  });

  test('values with CR/LF, unsafe paths and bad origins reject their route alone', async () => {
    const { snapshot } = await loadManifestDir(dir);
    const statuses = render(snapshot, { defaultAddress: '127.0.0.1' }).statuses;
    for (const { name } of REJECTED) {
      assert.ok(
        server.state.problems.some((p) => p.kind === 'HTTPRoute' && p.object === `${NS}/${name}` && p.message.includes('UnsupportedValue')),
        `${name} reported: ${JSON.stringify(server.state.problems)}`,
      );
      const accepted = routeCondition(statuses, name, 'Accepted');
      assert.equal(accepted?.status, 'False', name);
      assert.equal(accepted?.reason, 'UnsupportedValue', name);
      const g = await get(`${name}.example.com`, '/p/x');
      assert.equal(g.status, 404, `${name} is not served`);
      assert.equal(g.headers['x-injected'], undefined);
    }
    assert.equal(server.state.lastError, undefined, 'the config as a whole went live');
    assert.equal(echoed(await get('plain.example.com', '/')).pod, 'svc-a-pod', 'other routes keep serving');
    assert.deepEqual(echoed(await get('hdr.example.com', '/')).headers['X-Set'], ['set-value']);
  });

  test('a kubernetes.io/h2c backendRef: 500 and ResolvedRefs=False/UnsupportedProtocol', async () => {
    assert.equal((await get('h2c.example.com', '/')).status, 500);
    const { snapshot } = await loadManifestDir(dir);
    const statuses = render(snapshot, { defaultAddress: '127.0.0.1' }).statuses;
    const refs = routeCondition(statuses, 'h2c', 'ResolvedRefs');
    assert.equal(refs?.status, 'False');
    assert.equal(refs?.reason, 'UnsupportedProtocol');
    assert.equal(routeCondition(statuses, 'h2c', 'Accepted')?.status, 'True', 'the route itself is accepted');
    assert.ok(!a.requests.some((r) => r.host === 'h2c.example.com'), 'nothing was sent to the backend');
  });
});

type Condition = { type: string; status: string; reason: string };

/** A condition of an HTTPRoute's (only) parent, from the statuses `vgw check` prints. */
function routeCondition(statuses: ReturnType<typeof render>['statuses'], name: string, type: string): Condition | undefined {
  const s = statuses.filter(ofKind('HTTPRoute')).find((x) => x.metadata.name === name && x.metadata.namespace === NS);
  return s?.status.parents[0]?.conditions.find((c) => c.type === type);
}
