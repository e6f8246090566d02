// StatsCollector against a real varnishd and a real HTTP backend: snapshots, the async stream,
// the background loop, open-connection counting, per-backend sums across reloads and restarts.
//
// varnishd adds most MAIN counters (client_req, sess_conn, sc_*...) to the shared ones only
// when a worker thread goes idle, so checks on them poll until the value arrives; the
// mempool and VBE counters are written directly.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, request, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { silentLogger } from '../../src/util/log.ts';
import { freePort } from '../../src/varnish/ports.ts';
import { VclReloader } from '../../src/varnish/reloader.ts';
import { backendName } from '../../src/vcl/backend-names.ts';
import { activeSessions, StatsCollector, type StatsSnapshot } from '../../src/varnish/stats.ts';
import { Varnishd, type VarnishdEvent } from '../../src/varnish/varnishd.ts';

/** Name of the backend of 127.0.0.1:port, as the VCL compiler writes it. */
const nameOf = (port: number) => backendName('127.0.0.1', port)!;

/** Two backends: the HTTP server, and a closed port for connection failures. */
function vcl(backendPort: number, deadPort: number, gen: number): string {
  return `vcl 4.1;
# generation ${gen}
backend ${nameOf(backendPort)} { .host = "127.0.0.1"; .port = "${backendPort}"; }
backend ${nameOf(deadPort)} { .host = "127.0.0.1"; .port = "${deadPort}"; }
sub vcl_recv {
  if (req.url ~ "^/dead") { set req.backend_hint = ${nameOf(deadPort)}; return (pass); }
}
`;
}

function get(port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false, timeout: 10_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

/** A client connection that made one request and stays open (HTTP/1.1 keep-alive). */
async function keepAliveConnection(port: number): Promise<Socket> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  await new Promise<void>((resolve, reject) => {
    let seen = '';
    const onData = (chunk: Buffer) => {
      seen += chunk.toString();
      // The backend answers "ok", with a length or chunked (a miss is streamed).
      if (/\r\n\r\n(ok|[\s\S]*\r\n0\r\n\r\n)$/.test(seen)) {
        socket.off('data', onData);
        socket.off('error', reject);
        resolve();
      }
    };
    socket.on('data', onData);
    socket.on('error', reject);
    socket.write('GET /ka HTTP/1.1\r\nHost: stats.test\r\n\r\n');
  });
  return socket;
}

async function eventually<T>(what: string, fn: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  while (Date.now() < deadline) {
    last = await fn();
    if (ok(last)) return last;
    await sleep(50);
  }
  assert.fail(`timed out waiting for ${what}; last: ${JSON.stringify(last)}`);
}

describe('StatsCollector on a real varnishd', () => {
  let workDir = '';
  let varnishd: Varnishd;
  let reloader: VclReloader;
  let collector: StatsCollector;
  let backend: Server;
  let backendPort = 0;
  let deadPort = 0;
  let port = 0;
  const live = () => `127.0.0.1:${backendPort}`;
  const dead = () => `127.0.0.1:${deadPort}`;

  before(async () => {
    backend = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '2', 'cache-control': 'max-age=300' }).end('ok'));
    backend.keepAliveTimeout = 60_000;
    await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
    backendPort = (backend.address() as AddressInfo).port;
    deadPort = await freePort();
    workDir = await mkdtemp(join(tmpdir(), 'vgw-stats-'));
    port = await freePort();
    varnishd = new Varnishd({ listeners: [{ name: 'a0', address: '127.0.0.1', port }], workDir, vcl: vcl(backendPort, deadPort, 0), logger: silentLogger() });
    await varnishd.start();
    reloader = new VclReloader(varnishd, { logger: silentLogger() });
    collector = StatsCollector.forVarnishd(varnishd, { logger: silentLogger() });
  });

  after(async () => {
    await collector?.stop();
    await varnishd?.stop();
    backend?.close();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  test('a snapshot holds every counter with its type; counter() reads one', async () => {
    const s = await collector.get();
    assert.ok(s.time instanceof Date);
    assert.ok(s.counters.size > 300, `${s.counters.size} counters`);
    assert.deepEqual(s.counters.get('MAIN.client_req'), { value: s.counter('MAIN.client_req'), type: 'counter', description: 'Good client requests received', format: 'i' });
    assert.equal(s.counters.get('MAIN.n_backend')?.type, 'gauge');
    assert.equal(s.counters.get('MAIN.uptime')?.format, 'd');
    assert.equal(s.counters.get(`VBE.boot.${nameOf(backendPort)}.happy`)?.type, 'bitmap');
    assert.equal(s.counter('MAIN.n_backend'), 2);
    assert.equal(s.counter('MAIN.no_such_counter'), undefined);
    assert.ok(Object.isFrozen(s));
    assert.equal(collector.latest, s);
    // Backends are labelled by the address their name encodes.
    assert.deepEqual([...s.backends.keys()].sort(), [live(), dead()].sort());
  });

  test('client requests, hits, misses, backend requests and failures move after traffic', async () => {
    const s0 = await collector.get();
    const req0 = s0.backends.get(live())!.get('req')!.value;
    assert.equal(await get(port, '/page'), 200);
    assert.equal(await get(port, '/page'), 200);
    assert.equal(await get(port, '/page'), 200);
    assert.equal(await get(port, '/dead'), 503);
    const s = await eventually(
      'MAIN counters flushed',
      () => collector.get(),
      (x) => x.counter('MAIN.client_req')! >= s0.counter('MAIN.client_req')! + 4,
    );
    assert.ok(s.counter('MAIN.cache_miss')! >= s0.counter('MAIN.cache_miss')! + 1);
    await eventually('hits counted', () => collector.get(), (x) => x.counter('MAIN.cache_hit')! >= s0.counter('MAIN.cache_hit')! + 2);
    // VBE counters are written directly: no waiting.
    assert.equal(s.backends.get(live())!.get('req')!.value, req0 + 1);
    assert.equal(s.backends.get(dead())!.get('fail_econnrefused')!.value, 1);
    assert.equal(s.backends.get(live())!.get('fail_econnrefused')!.value, 0);
  });

  test('activeSessions counts open keep-alive connections and drops back once they close', async () => {
    // Connections of earlier tests were closed by the client: none is left.
    await eventually('no session open', () => collector.get(), (x) => activeSessions(x) === 0);
    const sockets: Socket[] = [];
    for (let i = 0; i < 5; i++) sockets.push(await keepAliveConnection(port));
    // An idle connection, no request sent yet, is a session too.
    const idle = connect(port, '127.0.0.1');
    await once(idle, 'connect');
    sockets.push(idle);
    const open = await eventually('6 sessions', () => collector.get(), (x) => activeSessions(x) === 6);
    // The counter formula catches up once the worker threads are idle.
    const sc = (x: StatsSnapshot) => [...x.counters].filter(([n]) => n.startsWith('MAIN.sc_')).reduce((a, [, c]) => a + c.value, 0);
    await eventually('sess_conn - sc_* = 6', () => collector.get(), (x) => x.counter('MAIN.sess_conn')! - sc(x) === 6);
    assert.equal(activeSessions(open), 6);
    for (const s of sockets) s.destroy();
    const closed = await eventually('sessions closed', () => collector.get(), (x) => activeSessions(x) === 0);
    await eventually('sess_conn - sc_* = 0', () => collector.get(), (x) => x.counter('MAIN.sess_conn')! - sc(x) === 0);
    assert.equal(activeSessions(closed), 0);
  });

  test('watch() yields snapshots until its signal aborts', async () => {
    const ac = new AbortController();
    const seen: StatsSnapshot[] = [];
    for await (const s of collector.watch(20, ac.signal)) {
      seen.push(s);
      if (seen.length === 3) ac.abort();
    }
    assert.equal(seen.length, 3);
    assert.ok(seen[0] !== seen[1] && seen[1] !== seen[2], 'one poll per snapshot');
    assert.ok(seen[2].counter('MAIN.uptime')! >= seen[0].counter('MAIN.uptime')!);
    // Aborting during the wait between polls ends the stream too.
    const ac2 = new AbortController();
    const it = collector.watch(3_600_000, ac2.signal)[Symbol.asyncIterator]();
    assert.equal((await it.next()).done, false);
    const next = it.next();
    ac2.abort();
    assert.equal((await next).done, true);
  });

  test('start() keeps `latest` fresh in the background; stop() ends it', async () => {
    const bg = StatsCollector.forVarnishd(varnishd);
    assert.equal(bg.latest, null);
    bg.start(20);
    const first = await eventually('a first snapshot', async () => bg.latest, (x) => x !== null);
    await get(port, '/bg');
    await eventually('a newer snapshot with the request', async () => bg.latest, (x) => x !== first && x!.backends.get(live())!.get('req')!.value > first!.backends.get(live())!.get('req')!.value);
    await bg.stop();
    const last = bg.latest;
    assert.ok(last);
    // Polls never overlap: a get() queued behind the loop returns a snapshot of its own.
    const a = bg.get();
    const b = bg.get();
    assert.notEqual(await a, await b);
  });

  test('a failed poll is reported, not fatal', async () => {
    const broken = new StatsCollector({ instanceDir: join(workDir, 'not-a-varnishd') });
    const failures: Error[] = [];
    broken.on('poll-failed', (err) => failures.push(err));
    await assert.rejects(broken.get());
    assert.equal(broken.failures, 1);
    assert.equal(failures.length, 1);
    assert.equal(broken.latest, null);
    // The stream carries on over failures: it ends only when told to.
    const ac = new AbortController();
    broken.on('poll-failed', () => {
      if (broken.failures >= 3) ac.abort();
    });
    const yielded: StatsSnapshot[] = [];
    for await (const s of broken.watch(10, ac.signal)) yielded.push(s);
    assert.equal(yielded.length, 0);
    assert.equal(broken.failures, 3);
  });

  test('per-backend counters keep counting across reloads; series stay the same', async () => {
    const s0 = await collector.get();
    const req0 = s0.backends.get(live())!.get('req')!.value;
    const labels0 = [...s0.backends.keys()].sort();
    for (let gen = 1; gen <= 5; gen++) {
      const result = await reloader.submit(vcl(backendPort, deadPort, gen));
      assert.equal(result.status, 'active', result.error);
      // A miss (new URL): one backend request through the new VCL, its backends start at 0.
      assert.equal(await get(port, `/reload-${gen}`), 200);
      const s = await collector.get();
      assert.ok([...s.counters.keys()].some((n) => n.startsWith(`VBE.${result.name}.`)), 'the new VCL is seen');
      assert.equal(s.backends.get(live())!.get('req')!.value, req0 + gen);
      assert.deepEqual([...s.backends.keys()].sort(), labels0);
    }
    // The reloader discarded the previous VCLs. varnishd frees one (and its backend objects
    // and counters) once no worker thread holds it any more, which takes traffic: the sums
    // above hold either way, since the last values of the freed ones are kept.
  });

  test('a child restart starts the counters again', async () => {
    const s0 = await collector.get();
    const started = new Promise<void>((resolve) => {
      const onEvent = (ev: VarnishdEvent) => {
        if (ev.type === 'child-started' && ev.restart) {
          varnishd.off('event', onEvent);
          resolve();
        }
      };
      varnishd.on('event', onEvent);
    });
    process.kill(varnishd.childPid!, 'SIGKILL');
    await started;
    // Right after the start, the new child may not have its VCLs (and backends) yet.
    const s = await eventually(
      'the new child counted',
      () => collector.get().catch(() => null),
      (x) => x !== null && x.counter('MGT.child_start')! > s0.counter('MGT.child_start')! && x.backends.has(live()),
    );
    assert.ok(s!.backends.get(live())!.get('req')!.value < s0.backends.get(live())!.get('req')!.value);
    assert.deepEqual([...s!.backends.keys()].sort(), [live(), dead()].sort());
    // The manager reopens the listen sockets for the new child: connections may be refused until then.
    await eventually('serving again', () => get(port, '/after-restart').catch(() => 0), (status) => status === 200);
    await eventually('counting again', () => collector.get(), (x) => x.counter('MAIN.client_req')! >= 1);
  });

  test('800 backends, IPv4 and IPv6, are all labelled by address', async () => {
    // Addresses nothing listens on: VCC only parses them. The IPv6 ones cover `::` at either
    // end and the longest name there is, as varnishd names their counters.
    const v4 = Array.from({ length: 797 }, (_, i) => ({ address: `127.0.${100 + (i >> 8)}.${i & 255}`, port: 9 }));
    const v6 = [
      { address: 'fd00::1', port: 80 },
      { address: '::1', port: 9 },
      { address: 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', port: 65535 },
    ];
    const all = [...v4, ...v6];
    const decls = all.map(({ address, port }) => `backend ${backendName(address, port)} { .host = "${address}"; .port = "${port}"; }`);
    const big = `vcl 4.1;
import directors;
${decls.join('\n')}
sub vcl_init {
  new all = directors.round_robin();
${all.map(({ address, port }) => `  all.add_backend(${backendName(address, port)});`).join('\n')}
}
sub vcl_recv { return (synth(200)); }
`;
    const result = await reloader.submit(big);
    assert.equal(result.status, 'active', result.error);
    const s = await collector.get();
    assert.ok(s.counters.has(`VBE.${result.name}.vgw_e6_fd00__1_80.req`), 'varnishd keeps the name as written');
    const labels = new Set(s.backends.keys());
    const want = [...v4.map(({ address, port }) => `${address}:${port}`), '[fd00::1]:80', '[::1]:9', '[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535'];
    assert.equal(want.length, 800);
    for (const label of want) assert.ok(labels.has(label), label);
    // Plus the two of the earlier VCLs, still loaded until varnishd frees them.
    assert.ok([...labels].every((l) => want.includes(l) || l === live() || l === dead()), 'every backend by address');
  });
});
