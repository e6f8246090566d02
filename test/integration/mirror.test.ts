// Request mirroring end to end: a real varnishd runs a hand-written VCL that writes the
// `vgw-mirror` records the generated VCL writes (src/vcl/log-records.ts), the log readers and
// the replayer run as `vgw serve` runs them (LogConsumers), and real HTTP servers on loopback
// play the primary backend and the mirror Services.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { EndpointMap, RoutingIR } from '../../src/ir/types.ts';
import { LogConsumers } from '../../src/metrics/log-consumers.ts';
import { createGatewayMetrics, type GatewayMetrics } from '../../src/metrics/registry.ts';
import { startAdminServer } from '../../src/standalone/admin.ts';
import type { StandaloneStatus } from '../../src/standalone/server.ts';
import { silentLogger } from '../../src/util/log.ts';
import { freePort } from '../../src/varnish/ports.ts';
import { Varnishd } from '../../src/varnish/varnishd.ts';
import { eventually } from './support/poll.ts';

const REC_LEN = 1024;

interface Seen {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  body: string;
}

/** An HTTP server that records what it receives; `hold` keeps matching requests unanswered. */
async function recorder(name: string): Promise<{ server: Server; port: number; seen: Seen[]; held: (() => void)[]; hold: { path?: string } }> {
  const seen: Seen[] = [];
  const held: (() => void)[] = [];
  const hold: { path?: string } = {};
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders, body: Buffer.concat(chunks).toString() });
      const answer = () => res.writeHead(200, { 'content-type': 'text/plain', 'x-served-by': name }).end(`${name} ${req.method} ${req.url}`);
      if (hold.path && req.url === hold.path) held.push(answer);
      else answer();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port, seen, held, hold };
}

function vcl(primaryPort: number): string {
  return `vcl 4.1;
import std;
backend primary { .host = "127.0.0.1"; .port = "${primaryPort}"; }
sub vcl_recv {
  unset req.http.x-vgw-route;
  set req.http.x-vgw-route = "app/web/0/0";
  set req.http.X-Added = "added";
  set req.http.X-Replace = "replaced";
  unset req.http.X-Remove;
  if (req.url ~ "^/rw/") {
    set req.url = regsub(req.url, "^/rw/", "/rewritten/");
  }
  std.log("vgw-filters app/web/0/0 RequestHeaderModifier,RequestMirror");
  if (req.url ~ "^/none") {
    std.log("vgw-mirror app/empty:80");
  } elsif (req.url ~ "^/dead") {
    std.log("vgw-mirror app/dead:80");
  } elsif (req.url ~ "^/unknown") {
    std.log("vgw-mirror app/not-configured:80");
  } elsif (req.url !~ "^/nomirror") {
    std.log("vgw-mirror app/shadow:80");
  }
  # Set after the mirror record: the mirror must not carry it.
  set req.http.X-After = "after";
  return (pass);
}
sub vcl_backend_fetch {
  unset bereq.http.x-vgw-route;
}
`;
}

/** The IR the VCL above stands for: one route whose rule mirrors to three Services. */
function ir(): RoutingIR {
  return {
    version: 4,
    sockets: [
      {
        name: 'a0',
        address: '127.0.0.1',
        port: 0,
        vhosts: [
          {
            hostname: '*',
            listener: 'app/gw/http',
            routes: [
              {
                id: 'app/web/0/0',
                match: { path: { type: 'PathPrefix', value: '/' }, headers: [], queryParams: [] },
                action: {
                  filters: ['RequestHeaderModifier', 'RequestMirror'],
                  mirrors: [1, 2, 3].map((service) => ({ service, percent: 100 })),
                  backends: [{ weight: 1, service: 0 }],
                },
              },
            ],
          },
        ],
      },
    ],
    services: [
      { namespace: 'app', name: 'web', port: 80, portName: '' },
      { namespace: 'app', name: 'shadow', port: 80, portName: '' },
      { namespace: 'app', name: 'empty', port: 80, portName: '' },
      { namespace: 'app', name: 'dead', port: 80, portName: '' },
    ],
  };
}

interface Got {
  status: number;
  body: string;
  headers: IncomingHttpHeaders;
}

function send(port: number, method: string, path: string, headers: Record<string, string>, body?: string): Promise<Got> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers, agent: false, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), headers: res.headers }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end(body);
  });
}

async function counter(m: GatewayMetrics, name: 'mirrorRequests' | 'filterFailures' | 'filterApplications', labels: Record<string, string>): Promise<number> {
  const { values } = await m[name].get();
  const v = values.find((x) => Object.entries(labels).every(([k, val]) => String((x.labels as Record<string, unknown>)[k]) === val));
  return v?.value ?? 0;
}

describe('request mirroring from the shared-memory log', () => {
  let workDir = '';
  let varnishd: Varnishd;
  let port = 0;
  let primary: Awaited<ReturnType<typeof recorder>>;
  let shadow: Awaited<ReturnType<typeof recorder>>;
  let metrics: GatewayMetrics;
  let consumers: LogConsumers;
  let admin: Server;
  const mirrored = (url: string) => shadow.seen.filter((s) => s.url === url);
  const outcome = (service: string, o: string) => counter(metrics, 'mirrorRequests', { service, outcome: o });

  before(async () => {
    primary = await recorder('primary');
    shadow = await recorder('shadow');
    workDir = await mkdtemp(join(tmpdir(), 'vgw-mirror-'));
    port = await freePort();
    varnishd = new Varnishd({
      listeners: [{ name: 'a0', address: '127.0.0.1', port }],
      workDir,
      vcl: vcl(primary.port),
      params: { vsl_reclen: String(REC_LEN) },
      logger: silentLogger(),
    });
    await varnishd.start();
    const deadPort = await freePort();
    const endpoints: EndpointMap = new Map([
      ['app/web:80', [{ address: '127.0.0.1', port: primary.port }]],
      ['app/shadow:80', [{ address: '127.0.0.1', port: shadow.port }]],
      ['app/empty:80', []],
      ['app/dead:80', [{ address: '127.0.0.1', port: deadPort }]],
    ]);
    metrics = createGatewayMetrics();
    consumers = new LogConsumers({ metrics, logger: silentLogger(), recLen: REC_LEN, mirror: { maxInFlight: 1, timeoutMs: 10_000 } });
    consumers.update({ instanceDir: varnishd.instanceDir, ir: ir(), endpoints });
    assert.ok(consumers.readers.mirror && consumers.readers.records, 'a config with mirrors and filters runs both readers');
    await consumers.readers.mirror.attached();
    await consumers.readers.records.attached();
    const status: StandaloneStatus = { ready: true, generation: 1, problems: [], listeners: [] };
    admin = await startAdminServer('127.0.0.1', 0, () => status, metrics.registry);
  });

  after(async () => {
    await consumers?.stop();
    await varnishd?.stop();
    admin?.close();
    primary?.server.close();
    shadow?.server.close();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  test('the mirror receives the request as VCL left it; the primary response is unaffected', async () => {
    const cookie = `session=${'c'.repeat(500)}`;
    const res = await send(port, 'GET', '/rw/items?x=1', {
      Host: 'www.example.com',
      'X-Replace': 'original',
      'X-Remove': 'secret',
      'X-Client': 'one',
      'X-Vgw-Route': 'forged',
      Cookie: cookie,
      Connection: 'close',
    });
    assert.equal(res.status, 200);
    assert.equal(res.body, 'primary GET /rewritten/items?x=1');
    assert.equal(res.headers['x-served-by'], 'primary');

    await eventually('mirror received the request', () => mirrored('/rewritten/items?x=1').length === 1, 15_000);
    const m = mirrored('/rewritten/items?x=1')[0];
    assert.equal(m.method, 'GET');
    assert.equal(m.headers.host, 'www.example.com', 'Host as the client sent it');
    assert.equal(m.headers['x-client'], 'one');
    assert.equal(m.headers['x-added'], 'added');
    assert.equal(m.headers['x-replace'], 'replaced');
    assert.equal(m.headers.cookie, cookie, 'a 500-byte header fits vsl_reclen and arrives whole');
    assert.equal(m.headers['x-remove'], undefined);
    assert.equal(m.headers['x-after'], undefined, 'set after the mirror record');
    assert.equal(m.headers['x-vgw-route'], undefined, 'internal headers stay inside');
    assert.equal(m.headers['x-forwarded-for'], '127.0.0.1');
    assert.notEqual(m.headers.connection, 'close', 'hop-by-hop headers of the client connection are not replayed');

    // The primary backend saw the same request once, as VCL sent it.
    const p = primary.seen.filter((s) => s.url === '/rewritten/items?x=1');
    assert.equal(p.length, 1);
    assert.equal(p[0].headers['x-after'], 'after');
    await eventually('ok counted', async () => (await outcome('app/shadow:80', 'ok')) === 1, 15_000);
  });

  test('a request with a body is not mirrored and is counted', async () => {
    const res = await send(port, 'POST', '/upload', { Host: 'www.example.com', 'Content-Type': 'text/plain' }, 'payload');
    assert.equal(res.status, 200);
    assert.equal(primary.seen.find((s) => s.url === '/upload')?.body, 'payload');
    await eventually('body_not_mirrored counted', async () => (await outcome('app/shadow:80', 'body_not_mirrored')) === 1, 15_000);
    assert.equal(mirrored('/upload').length, 0);
    assert.equal(await counter(metrics, 'filterFailures', { route: 'app/web', rule: '0', filter: 'RequestMirror', reason: 'body_not_mirrored' }), 1);
  });

  test('a mirror Service without endpoints is counted as no_endpoints', async () => {
    assert.equal((await send(port, 'GET', '/none', { Host: 'www.example.com' })).status, 200);
    await eventually('no_endpoints counted', async () => (await outcome('app/empty:80', 'no_endpoints')) === 1, 15_000);
    assert.equal(await counter(metrics, 'filterFailures', { route: 'app/web', rule: '0', filter: 'RequestMirror', reason: 'no_endpoints' }), 1);
  });

  test('an unreachable mirror endpoint is counted as error and delays nothing', async () => {
    assert.equal((await send(port, 'GET', '/dead', { Host: 'www.example.com' })).status, 200);
    await eventually('error counted', async () => (await outcome('app/dead:80', 'error')) === 1, 15_000);
  });

  test('a header longer than vsl_reclen is not mirrored cut', async () => {
    assert.equal((await send(port, 'GET', '/long', { Host: 'www.example.com', 'X-Long': 'l'.repeat(REC_LEN * 2) })).status, 200);
    await eventually('truncated counted', async () => (await outcome('app/shadow:80', 'truncated')) === 1, 15_000);
    assert.equal(mirrored('/long').length, 0);
  });

  test('a Service that is not a mirror target of the config is ignored', async () => {
    assert.equal((await send(port, 'GET', '/unknown', { Host: 'www.example.com' })).status, 200);
    // Followed by a mirrored request: once that one is through, the first was handled too.
    await send(port, 'GET', '/after-unknown', { Host: 'www.example.com' });
    await eventually('next mirror arrived', () => mirrored('/after-unknown').length === 1, 15_000);
    const { values } = await metrics.mirrorRequests.get();
    assert.equal(values.filter((v) => v.labels.service === 'app/not-configured:80').length, 0);
  });

  test('beyond the in-flight bound mirrors are dropped, and the primary is never held up', async () => {
    shadow.hold.path = '/slow';
    try {
      assert.equal((await send(port, 'GET', '/slow', { Host: 'www.example.com' })).status, 200);
      await eventually('slow mirror in flight', () => shadow.held.length === 1, 15_000);
      const res = await send(port, 'GET', '/while-slow', { Host: 'www.example.com' });
      assert.equal(res.body, 'primary GET /while-slow');
      await eventually('dropped counted', async () => (await outcome('app/shadow:80', 'dropped')) === 1, 15_000);
      assert.equal(mirrored('/while-slow').length, 0);
    } finally {
      shadow.hold.path = undefined;
      for (const answer of shadow.held.splice(0)) answer();
    }
    await eventually('slow mirror completed', () => consumers.replayer.inFlight === 0, 15_000);
  });

  test('/metrics shows the counters after traffic', async () => {
    const before = await counter(metrics, 'filterApplications', { route: 'app/web', rule: '0', filter: 'RequestHeaderModifier' });
    assert.ok(before >= 8, `every request so far applied its filters (got ${before})`);
    const res = await send((admin.address() as AddressInfo).port, 'GET', '/metrics', {});
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    const line = (re: RegExp) => res.body.split('\n').find((l) => re.test(l));
    assert.match(line(/^vgw_mirror_requests_total\{service="app\/shadow:80",outcome="ok"\}/) ?? '', / [3-9]\d*$/);
    assert.match(line(/^vgw_mirror_requests_total\{service="app\/shadow:80",outcome="body_not_mirrored"\}/) ?? '', / 1$/);
    assert.match(line(/^vgw_mirror_requests_total\{service="app\/empty:80",outcome="no_endpoints"\}/) ?? '', / 1$/);
    assert.match(line(/^vgw_mirror_requests_total\{service="app\/dead:80",outcome="error"\}/) ?? '', / 1$/);
    assert.match(line(/^vgw_filter_failures_total\{route="app\/web",rule="0",filter="RequestMirror",reason="no_endpoints"\}/) ?? '', / 1$/);
    assert.match(line(/^vgw_filter_applications_total\{route="app\/web",rule="0",filter="RequestMirror"\}/) ?? '', / \d+$/);
    assert.match(line(/^vgw_vsl_overruns_total\{reader="mirror"\}/) ?? '', / 0$/);
  });
});
