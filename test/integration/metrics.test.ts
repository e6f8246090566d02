// Metrics: the records the VCL writes become counters, /metrics serves them, and reloads never
// add series. Everything runs against real varnishd: `vgw serve` (StandaloneServer) for the
// reload metrics and the reader wiring, and a hand-written VCL that writes the records of
// src/vcl/log-records.ts for the record counters (the generated VCL's records come with the
// VCL compiler's filter support).
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { startEchoServer, type EchoServer } from '../../src/echo/server.ts';
import type { IRRoute, RoutingIR } from '../../src/ir/types.ts';
import { LogConsumers } from '../../src/metrics/log-consumers.ts';
import { createGatewayMetrics, type GatewayMetrics } from '../../src/metrics/registry.ts';
import { startAdminServer } from '../../src/standalone/admin.ts';
import type { CompileHook } from '../../src/pipeline/render.ts';
import { StandaloneServer } from '../../src/standalone/server.ts';
import { silentLogger } from '../../src/util/log.ts';
import { freePort } from '../../src/varnish/ports.ts';
import { VclReloader } from '../../src/varnish/reloader.ts';
import { Varnishd } from '../../src/varnish/varnishd.ts';
import { GATEWAY_CLASS, httpGateway, loopbackService, yamlDocs } from './support/manifests.ts';
import { eventually } from './support/poll.ts';
import { getText as get } from './support/http.ts';
import { sampleStartingWith as sample, samples } from './support/prometheus.ts';

const GW_ADDRESS = '127.0.8.1';
const GW_PORT = 18084;
const NS = 'app';

async function seriesCount(m: GatewayMetrics): Promise<number> {
  return samples(await m.registry.metrics()).length;
}

describe('vgw serve: reload metrics and log readers follow the config', () => {
  let dir = '';
  let server: StandaloneServer;
  let echo: EchoServer;
  let admin: Server;
  const scrape = async () => (await get((admin.address() as AddressInfo).port, '/metrics')).body;

  const routeYaml = (gen: number, filter: boolean) =>
    stringify({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: 'web', namespace: NS },
      spec: {
        parentRefs: [{ name: 'gw' }],
        hostnames: ['web.example.com'],
        rules: [
          {
            ...(filter ? { filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'X-Gen', value: String(gen) }] } }] } : {}),
            matches: [{ path: { type: 'PathPrefix', value: `/g${gen}` } }],
            backendRefs: [{ name: 'web', port: 80 }],
          },
        ],
      },
    });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vgw-metrics-'));
    echo = await startEchoServer({ port: 0, pod: 'web-1', namespace: NS });
    const echoPort = Number(new URL(echo.url).port);
    const docs = [
      GATEWAY_CLASS,
      httpGateway(NS, GW_ADDRESS, GW_PORT),
      ...loopbackService(NS, 'web', echoPort),
    ];
    await writeFile(join(dir, 'gateway.yaml'), yamlDocs(docs));
    await writeFile(join(dir, 'route.yaml'), routeYaml(0, true));
    server = new StandaloneServer({ dir, defaultAddress: '127.0.0.1', logger: silentLogger(), compileHook: poisonHook });
    admin = await startAdminServer('127.0.0.1', 0, () => server.state, server.metrics.registry);
    await server.start();
  });

  after(async () => {
    await server?.stop();
    admin?.close();
    await echo?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('the first config is counted and its filters start the records reader only', async () => {
    assert.equal(server.state.ready, true);
    const text = await scrape();
    assert.equal(sample(text, 'vgw_vcl_reloads_total{result="success"}'), 1);
    assert.equal(sample(text, 'vgw_vcl_reloads_total{result="failure"}'), 0);
    assert.equal(sample(text, 'vgw_routes'), 1);
    assert.ok((sample(text, 'vgw_last_reload_success_timestamp_seconds') ?? 0) > 1e9);
    assert.equal(sample(text, 'vgw_vcl_reload_duration_seconds_count'), 1);
    // The process's own memory, read at scrape time.
    assert.ok((sample(text, 'process_resident_memory_bytes') ?? 0) > 1 << 20);
    assert.ok((sample(text, 'nodejs_heap_size_used_bytes') ?? 0) > 0);
    assert.ok((sample(text, 'nodejs_heap_size_total_bytes') ?? 0) >= (sample(text, 'nodejs_heap_size_used_bytes') ?? 0));
    const { mirror, records } = server.logConsumers!.readers;
    assert.equal(mirror, null, 'no mirrors configured: no mirror reader');
    assert.equal(records?.instanceDir, server.varnish?.instanceDir, 'a filter is configured: the records reader reads this varnishd');
    await records?.attached();
    // The generated VCL's vgw-filters record, counted under the HTTPRoute and rule.
    assert.equal((await get(GW_PORT, '/g0', 'web.example.com', GW_ADDRESS)).status, 200);
    const applied = 'vgw_filter_applications_total{route="app/web",rule="0",filter="RequestHeaderModifier"}';
    await eventually('filter application counted', async () => sample(await scrape(), applied) === 1);
  });

  test('50 reloads add no metric series', async () => {
    const seriesBefore = samples(await scrape()).length;
    for (let gen = 1; gen <= 50; gen++) {
      const generation = server.state.generation;
      await writeFile(join(dir, 'route.yaml'), routeYaml(gen, true));
      await eventually(`config ${gen} live`, () => server.state.generation > generation && server.state.lastError === undefined);
    }
    assert.equal((await get(GW_PORT, '/g50', 'web.example.com', GW_ADDRESS)).status, 200);
    const text = await scrape();
    assert.equal(sample(text, 'vgw_vcl_reloads_total{result="success"}'), 51);
    assert.equal(sample(text, 'vgw_vcl_reload_duration_seconds_count'), 51);
    assert.equal(samples(text).length, seriesBefore);
    assert.ok(server.logConsumers!.readers.records?.running, 'the reader was kept across reloads');
    assert.equal(server.logConsumers!.readers.records?.restarts, 0);
  });

  test('a config without filters stops the records reader', async () => {
    const reader = server.logConsumers!.readers.records;
    await writeFile(join(dir, 'route.yaml'), routeYaml(51, false));
    await eventually('reader stopped', () => server.logConsumers!.readers.records === null && !reader?.running);
  });

  test('a failed reload is counted as failure', async () => {
    // The translator and the PCRE2 check refuse what VCC would, so the failure is forced
    // through the compile seam: any VCL holding route poison gets a line VCC refuses. The
    // culprit is then found and rejected alone, and the rest goes live again.
    const failuresBefore = sample(await scrape(), 'vgw_vcl_reloads_total{result="failure"}') ?? 0;
    await writeFile(join(dir, 'poison.yaml'), stringify(poisonRoute()));
    try {
      await eventually('failure counted', async () => (sample(await scrape(), 'vgw_vcl_reloads_total{result="failure"}') ?? 0) > failuresBefore);
      await eventually('the culprit is rejected alone', () => server.state.problems.some((p) => p.object === `${NS}/poison`));
    } finally {
      await rm(join(dir, 'poison.yaml'), { force: true });
    }
    await eventually('serving again', async () => (await get(GW_PORT, '/g51', 'web.example.com', GW_ADDRESS).catch(() => ({ status: 0 }))).status === 200);
  });
});

function poisonRoute() {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: 'poison', namespace: NS },
    spec: { parentRefs: [{ name: 'gw' }], hostnames: ['poison.example.com'], rules: [{ backendRefs: [{ name: 'web', port: 80 }] }] },
  };
}

/** Poisons every VCL that holds route poison (see 'a failed reload is counted as failure'). */
const poisonHook: CompileHook = (deploy, ir) => {
  const poisoned = ir.sockets.some((s) => s.vhosts.some((v) => v.routes.some((r) => r.id.startsWith(`${NS}/poison/`))));
  return poisoned ? { ...deploy, main: `${deploy.main}\nsub vgw_poisoned { set req.http.x-poison = ; }\n` } : deploy;
};

/** VCL writing one of each record kind per request, tagged with `gen` so each reload differs. */
function recordsVcl(backendPort: number, gen: number): string {
  return `vcl 4.1;
# generation ${gen}
import std;
backend be { .host = "127.0.0.1"; .port = "${backendPort}"; }
sub vcl_recv {
  std.log("vgw-filters app/web/0/0 RequestHeaderModifier,URLRewrite");
  if (req.url ~ "^/other") { std.log("vgw-filters app/other/1/0 RequestHeaderModifier"); }
  if (req.url ~ "^/fail") { std.log("vgw-filter-failure app/web/0/0 URLRewrite invalid_path"); }
  std.log("vgw-filters app/gone/0/0 RequestHeaderModifier");
  std.log("vgw-filters app/web/0/0 NotAFilter");
  std.log("vgw-something else");
  return (pass);
}
sub vcl_backend_response {
  std.log("vgw-retry app/web/0/0 503");
  std.log("vgw-timeout app/web/0/0");
}
`;
}

function recordsIr(withOther: boolean): RoutingIR {
  const route = (id: string, filters: string[]): IRRoute => ({
    id,
    match: { path: { type: 'PathPrefix', value: '/' }, headers: [], queryParams: [] },
    action: { filters, timeouts: { request: 1000 }, retry: { attempts: 1, codes: [503] }, backends: [{ weight: 1, service: 0 }] },
  });
  const routes = [route('app/web/0/0', ['RequestHeaderModifier', 'URLRewrite'])];
  if (withOther) routes.push(route('app/other/1/0', ['RequestHeaderModifier']));
  return {
    version: 4,
    sockets: [{ name: 'a0', address: '127.0.0.1', port: 0, vhosts: [{ hostname: '*', listener: 'app/gw/http', routes }] }],
    services: [{ namespace: 'app', name: 'web', port: 80, portName: '' }],
  };
}

describe('records from the VCL become bounded counters', () => {
  let workDir = '';
  let varnishd: Varnishd;
  let reloader: VclReloader;
  let backend: Server;
  let backendPort = 0;
  let port = 0;
  let metrics: GatewayMetrics;
  let consumers: LogConsumers;
  const value = async (metric: 'filterApplications' | 'filterFailures' | 'routeTimeouts' | 'routeRetries', labels: Record<string, string>) => {
    const { values } = await metrics[metric].get();
    return values.find((v) => Object.entries(labels).every(([k, x]) => String((v.labels as Record<string, unknown>)[k]) === x))?.value ?? 0;
  };

  before(async () => {
    backend = createServer((_req, res) => res.end('ok'));
    await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
    backendPort = (backend.address() as AddressInfo).port;
    workDir = await mkdtemp(join(tmpdir(), 'vgw-records-'));
    port = await freePort();
    varnishd = new Varnishd({ listeners: [{ name: 'a0', address: '127.0.0.1', port }], workDir, vcl: recordsVcl(backendPort, 0), logger: silentLogger() });
    await varnishd.start();
    reloader = new VclReloader(varnishd, { logger: silentLogger() });
    metrics = createGatewayMetrics();
    consumers = new LogConsumers({ metrics, logger: silentLogger() });
    consumers.update({ instanceDir: varnishd.instanceDir, ir: recordsIr(true), endpoints: new Map() });
    assert.equal(consumers.readers.mirror, null);
    await consumers.readers.records?.attached();
  });

  after(async () => {
    await consumers?.stop();
    await varnishd?.stop();
    backend?.close();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  test('each record kind is counted under its route and rule', async () => {
    await get(port, '/a');
    await get(port, '/other');
    await get(port, '/fail');
    await eventually('3 applications counted', async () => (await value('filterApplications', { route: 'app/web', rule: '0', filter: 'URLRewrite' })) === 3);
    assert.equal(await value('filterApplications', { route: 'app/web', rule: '0', filter: 'RequestHeaderModifier' }), 3);
    assert.equal(await value('filterApplications', { route: 'app/other', rule: '1', filter: 'RequestHeaderModifier' }), 1);
    assert.equal(await value('filterFailures', { route: 'app/web', rule: '0', filter: 'URLRewrite', reason: 'invalid_path' }), 1);
    await eventually('retries and timeouts counted', async () => (await value('routeRetries', { route: 'app/web', rule: '0' })) === 3 && (await value('routeTimeouts', { route: 'app/web', rule: '0' })) === 3);
    // Unknown route, a filter the rule does not have, an unknown record: not label values.
    const text = await metrics.registry.metrics();
    assert.doesNotMatch(text, /app\/gone|NotAFilter|something/);
    assert.ok(consumers.records.ignored >= 9);
  });

  test('50 reloads with traffic add no series; a route that goes away takes its series along', async () => {
    const before = await seriesCount(metrics);
    const apps = await value('filterApplications', { route: 'app/web', rule: '0', filter: 'URLRewrite' });
    for (let gen = 1; gen <= 50; gen++) {
      const result = await reloader.submit(recordsVcl(backendPort, gen));
      assert.equal(result.status, 'active', result.error);
      consumers.update({ instanceDir: varnishd.instanceDir, ir: recordsIr(true), endpoints: new Map() });
      await get(port, gen % 2 ? '/a' : '/other');
    }
    await eventually('all 50 requests counted', async () => (await value('filterApplications', { route: 'app/web', rule: '0', filter: 'URLRewrite' })) === apps + 50);
    assert.equal(await seriesCount(metrics), before);
    assert.equal(consumers.readers.records?.restarts, 0);

    consumers.update({ instanceDir: varnishd.instanceDir, ir: recordsIr(false), endpoints: new Map() });
    await eventually('app/other series removed', async () => !/route="app\/other"/.test(await metrics.registry.metrics()));
    assert.ok((await seriesCount(metrics)) < before);
    assert.equal(await value('filterApplications', { route: 'app/web', rule: '0', filter: 'URLRewrite' }), apps + 50, 'series of live routes are kept');
  });

  test('a varnishlog that dies is started again and counting goes on', async () => {
    const reader = consumers.readers.records!;
    const apps = await value('filterApplications', { route: 'app/web', rule: '0', filter: 'URLRewrite' });
    process.kill(reader.pid!, 'SIGKILL');
    await eventually('reader restarted', () => reader.restarts === 1 && reader.running);
    await reader.attached();
    await get(port, '/a');
    await eventually('counted after the restart', async () => (await value('filterApplications', { route: 'app/web', rule: '0', filter: 'URLRewrite' })) === apps + 1);
    assert.match(await metrics.registry.metrics(), /vgw_vsl_reader_restarts_total\{reader="records"\} 1/);
  });
});
