// varnish_* metrics on the /metrics of `vgw serve` (StandaloneServer): counters move with
// traffic, 100 reloads add no series, the collector follows varnishd through a child restart
// and through a new varnishd (listener change). Real varnishd, real HTTP backend.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { startAdminServer } from '../../src/standalone/admin.ts';
import { StandaloneServer } from '../../src/standalone/server.ts';
import { silentLogger } from '../../src/util/log.ts';
import { GATEWAY_CLASS, httpGateway, loopbackService, yamlDocs } from './support/manifests.ts';
import { eventually } from './support/poll.ts';
import { getText as get } from './support/http.ts';
import { sample, samples, seriesKeys } from './support/prometheus.ts';

const GW_ADDRESS = '127.0.10.1';
const GW_PORT = 18090;
const NS = 'app';
const HOST = 'metrics.example.com';

describe('vgw serve: varnish_* metrics', () => {
  let dir = '';
  let server: StandaloneServer;
  let backend: Server;
  let backendPort = 0;
  let admin: Server;
  const scrape = async () => (await get((admin.address() as AddressInfo).port, '/metrics')).body;
  const backendSeries = (field: string) => `varnish_backend_${field}{backend="127.0.0.1:${backendPort}"}`;

  const gatewayYaml = (ports: number[]) => stringify(httpGateway(NS, GW_ADDRESS, ports.map((port, i) => ({ name: `http-${i}`, port }))));

  const routeYaml = (gen: number) =>
    stringify({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: 'web', namespace: NS },
      spec: {
        parentRefs: [{ name: 'gw' }],
        hostnames: [HOST],
        rules: [{ matches: [{ path: { type: 'PathPrefix', value: `/g${gen}` } }], backendRefs: [{ name: 'web', port: 80 }] }],
      },
    });

  /** The collector has polled since `vcl` was loaded. */
  const statsSeeVcl = (vcl: string | undefined) => [...(server.statsCollector?.latest?.counters.keys() ?? [])].some((n) => n.startsWith(`VBE.${vcl}.`));

  before(async () => {
    // Cacheable answers (the generated VCL caches only what the origin gives a lifetime).
    backend = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '3', 'cache-control': 'max-age=300' }).end('ok\n'));
    await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
    backendPort = (backend.address() as AddressInfo).port;
    dir = await mkdtemp(join(tmpdir(), 'vgw-varnish-metrics-'));
    const docs = [
      GATEWAY_CLASS,
      ...loopbackService(NS, 'web', backendPort),
    ];
    await writeFile(join(dir, 'base.yaml'), yamlDocs(docs));
    await writeFile(join(dir, 'gateway.yaml'), gatewayYaml([GW_PORT]));
    await writeFile(join(dir, 'route.yaml'), routeYaml(0));
    server = new StandaloneServer({ dir, defaultAddress: '127.0.0.1', logger: silentLogger(), statsIntervalMs: 50 });
    admin = await startAdminServer('127.0.0.1', 0, () => server.state, server.metrics.registry);
    await server.start();
  });

  after(async () => {
    await server?.stop();
    admin?.close();
    backend?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('client requests, hits, misses and backend requests move with traffic', async () => {
    assert.equal(server.state.ready, true);
    for (let i = 0; i < 3; i++) assert.equal((await get(GW_PORT, '/g0/page', HOST, GW_ADDRESS)).status, 200);
    // The first request missed and went to the backend, the next two were hits. varnishd
    // publishes most MAIN counters when a worker thread goes idle: poll until they arrive.
    await eventually('request counters in /metrics', async () => {
      const text = await scrape();
      return (
        (sample(text, 'varnish_main_client_req') ?? 0) >= 3 &&
        (sample(text, 'varnish_main_cache_hit') ?? 0) >= 2 &&
        (sample(text, 'varnish_main_cache_miss') ?? 0) >= 1 &&
        (sample(text, backendSeries('req')) ?? 0) >= 1
      );
    });
    const text = await scrape();
    assert.match(text, /^# TYPE varnish_main_client_req counter$/m);
    assert.match(text, /^# HELP varnish_main_cache_hit Cache hits$/m);
    assert.match(text, /^# TYPE varnish_backend_conn gauge$/m);
    assert.notEqual(sample(text, 'varnish_main_backend_conn'), undefined);
    assert.notEqual(sample(text, 'varnish_main_backend_fail'), undefined);
    assert.notEqual(sample(text, backendSeries('fail_econnrefused')), undefined);
    assert.notEqual(sample(text, 'varnish_sessions_active'), undefined);
    assert.equal(sample(text, 'vgw_endpoints'), 1);
    assert.equal(sample(text, 'vgw_draining'), 0);
    assert.equal(sample(text, 'vgw_varnish_child_restarts_total'), 0);
    assert.notEqual(sample(text, 'vgw_stats_poll_failures_total'), undefined);
    assert.doesNotMatch(text, /vgw_e\d|VBE|boot/, 'no VCL or backend object names in labels');
    // The label comes from the backend's name alone: the compiler names it after its address.
    const counters = [...server.statsCollector!.latest!.counters.keys()];
    assert.ok(counters.includes(`VBE.${server.state.activeVcl}.vgw_e4_127_0_0_1_${backendPort}.req`), 'backend named after its address');
  });

  test('100 reloads add no series', async () => {
    await eventually('stats of the live VCL', () => statsSeeVcl(server.state.activeVcl));
    const first = await scrape();
    const before = seriesKeys(first);
    const reqBefore = sample(first, backendSeries('req')) ?? 0;
    for (let gen = 1; gen <= 100; gen++) {
      const generation = server.state.generation;
      await writeFile(join(dir, 'route.yaml'), routeYaml(gen));
      await eventually(`config ${gen} live`, () => server.state.generation > generation && server.state.lastError === undefined);
    }
    assert.equal((await get(GW_PORT, '/g100/new', HOST, GW_ADDRESS)).status, 200);
    await eventually('stats of the last VCL', () => statsSeeVcl(server.state.activeVcl));
    await eventually('the last request counted', async () => (sample(await scrape(), backendSeries('req')) ?? 0) >= reqBefore + 1);
    const text = await scrape();
    assert.deepEqual(seriesKeys(text), before);
    assert.equal(sample(text, 'vgw_vcl_reloads_total{result="success"}'), 101);
  });

  test('child restarts are counted; varnish_* follow the new child', async () => {
    const varnishd = server.varnish!;
    const starts = server.statsCollector!.latest!.counter('MGT.child_start')!;
    process.kill(varnishd.childPid!, 'SIGKILL');
    await eventually('restart counted', async () => sample(await scrape(), 'vgw_varnish_child_restarts_total') === 1);
    await eventually('stats of the new child', () => (server.statsCollector?.latest?.counter('MGT.child_start') ?? 0) > starts);
    assert.equal(sample(await scrape(), 'varnish_mgt_child_start'), starts + 1);
    // The manager reopens the listen sockets for the new child: connections may be refused until then.
    await eventually('serving again', async () => (await get(GW_PORT, '/g100/after', HOST, GW_ADDRESS).catch(() => ({ status: 0 }))).status === 200);
  });

  test('a new varnishd (listeners changed) gets a collector of its own', async () => {
    const old = server.statsCollector!;
    await writeFile(join(dir, 'gateway.yaml'), gatewayYaml([GW_PORT, GW_PORT + 1]));
    await eventually('new varnishd polled', () => {
      const c = server.statsCollector;
      return c !== null && c !== old && c.instanceDir === server.varnish?.instanceDir && c.latest !== null;
    });
    // The -n directory is the same for every varnishd of a data plane (so log readers and
    // sidecars keep their path); the collector is new and reads the new varnishd's counters.
    assert.notEqual(server.statsCollector, old);
    assert.equal((await get(GW_PORT + 1, '/g100/x', HOST, GW_ADDRESS)).status, 200);
    await eventually('counted by the new varnishd', async () => (sample(await scrape(), backendSeries('req')) ?? 0) >= 1);
    const text = await scrape();
    // A new varnishd starts its counters (and MGT's) from scratch.
    assert.equal(sample(text, 'varnish_mgt_child_start'), 1);
  });
});
