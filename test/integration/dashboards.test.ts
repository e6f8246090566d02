// The shipped Grafana dashboards and Prometheus alert rules query only what vgw exposes: every
// PromQL expression (panel targets, template variables, alert rules) is parsed with Prometheus'
// grammar, and each metric it selects, each label it matches on and each label it groups by must
// be in /metrics of a running `vgw serve` (the data plane and its control plane, the same metric
// families the in-pod agent registers) or of a running operator. A renamed metric or label makes
// this test fail with the dashboard panel or alert that uses it.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DiscoveryV1Api } from '@kubernetes/client-node';
import { after, before, describe, test } from 'node:test';
import { startEchoServer, type EchoServer } from '../../src/echo/server.ts';
import type { Operator } from '../../src/operator/operator.ts';
import { checkQueries, dashboardFiles, dashboardQueries, exposedMetrics, readDashboard, ruleQueries, type Exposed, type Query } from '../support/promql.ts';
import { getText } from './support/http.ts';
import { GATEWAY_CLASS, gwRoute, httpGateway, loopbackService, yamlDocs } from './support/manifests.ts';
import { startOperatorApi, testOperator, type OperatorApi } from './support/operator-api.ts';
import { eventually } from './support/poll.ts';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const ADDRESS = '127.0.98.1';
const GW_PORT = 18098;
const ADMIN_PORT = 19098;
const API_ADDRESS = '127.0.98.2';
const NS = 'shop';

/**
 * Labels the scrape adds to every series (Kubernetes service discovery, relabelling: see
 * docs/metrics.md "Dashboards and alerts"); vgw itself does not expose them.
 */
const TARGET_LABELS = new Set([
  'namespace', // the pod's namespace (__meta_kubernetes_namespace; PodMonitor/ServiceMonitor add it)
  'pod', // the pod's name (__meta_kubernetes_pod_name)
  'gateway', // the pod label gateway.networking.k8s.io/gateway-name, relabelled to `gateway`
]);

/** Metrics of other exporters the alert rules may use, with the labels used from each. */
const EXTERNAL_METRICS: Exposed = new Map([
  // kube-state-metrics: ready pods of a Deployment (no ready replicas of a gateway or of the operator).
  ['kube_deployment_status_replicas_ready', new Set(['namespace', 'deployment'])],
  // kube-state-metrics: desired replicas, so a Deployment scaled to 0 on purpose does not alert.
  ['kube_deployment_spec_replicas', new Set(['namespace', 'deployment'])],
]);

function allQueries(): Query[] {
  return [...dashboardFiles().flatMap((f) => dashboardQueries(f, readDashboard(f))), ...ruleQueries()];
}

/** `vgw serve DIR` as its own process group, so varnishd goes with it. */
function startServe(dir: string, workDir: string): { child: ChildProcess; output: () => string; exited: Promise<void> } {
  const child = spawn(process.execPath, [MAIN, 'serve', dir, '--address', ADDRESS, '--admin-address', ADDRESS, '--admin-port', String(ADMIN_PORT), '--work-dir', workDir], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  child.stdout?.on('data', (b: Buffer) => { out = (out + b.toString()).slice(-20_000); });
  child.stderr?.on('data', (b: Buffer) => { out = (out + b.toString()).slice(-20_000); });
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  return { child, output: () => out, exited };
}

const scrapeGateway = async () => (await getText(ADMIN_PORT, '/metrics', 'localhost', ADDRESS)).body;
const request = (path: string) => getText(GW_PORT, path, 'shop.example.com', ADDRESS);

describe('dashboards and alert rules query what vgw exposes', () => {
  let dir = '';
  let echo: EchoServer;
  let serve: ReturnType<typeof startServe> | undefined;
  let api: OperatorApi | undefined;
  let operator: Operator | undefined;
  const exposed: Exposed = new Map(EXTERNAL_METRICS);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vgw-dashboards-'));
    // varnishd's unprivileged user reads the work directory inside it.
    await chmod(dir, 0o755);
    const manifests = join(dir, 'manifests');
    await mkdir(manifests);
    echo = await startEchoServer({ port: 0, pod: 'web-1', namespace: NS });
    const echoPort = Number(new URL(echo.url).port);
    await writeFile(join(manifests, 'gateway.yaml'), yamlDocs([
      GATEWAY_CLASS,
      httpGateway(NS, ADDRESS, GW_PORT),
      ...loopbackService(NS, 'web', echoPort),
      // A mirror Service without endpoints: every mirror ends `no_endpoints`, a filter failure.
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'shadow', namespace: NS }, spec: { ports: [{ name: 'http', port: 80, targetPort: 8080 }] } },
      // Filters, a timeout and a retry policy, so the log-record counters (and their readers) exist.
      gwRoute(NS, 'web', ['shop.example.com'], [
        {
          matches: [{ path: { type: 'PathPrefix', value: '/mirror' } }],
          filters: [
            { type: 'RequestMirror', requestMirror: { backendRef: { name: 'shadow', port: 80 } } },
            { type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'X-Dashboards', value: '1' }] } },
          ],
          backendRefs: [{ name: 'web', port: 80 }],
        },
        {
          matches: [{ path: { type: 'PathPrefix', value: '/slow' } }],
          timeouts: { request: '2s', backendRequest: '200ms' },
          retry: { attempts: 1, codes: [504] },
          backendRefs: [{ name: 'web', port: 80 }],
        },
      ]),
    ]));
    serve = startServe(manifests, join(dir, 'work'));
    let missing: string[] = [];
    const withOutput = (err: Error) => assert.fail(`${err.message}; missing: ${missing.join(' ')}\nvgw serve printed:\n${serve?.output()}`);
    await eventually('vgw serve serves the route', async () => (await request('/mirror/a')).status === 200, 60_000).catch(withOutput);
    await eventually(
      'the record counters have series',
      async () => {
        // Again on every poll: the log reader starts with the config, maybe after the first request.
        await request('/mirror/b');
        // The slow request (a timeout, then a retry) only while its counters are missing: it takes seconds.
        if (missing.length === 0 || missing.some((m) => m.startsWith('vgw_route_'))) await request('/slow/a?delay=5s');
        const text = await scrapeGateway();
        missing = ['vgw_filter_applications_total{', 'vgw_filter_failures_total{', 'vgw_route_timeouts_total{', 'vgw_route_retries_total{', 'varnish_backend_req{'].filter((s) => !text.includes(s));
        return missing.length === 0;
      },
      30_000,
      200,
    ).catch(withOutput);
    exposedMetrics(await scrapeGateway(), exposed);

    api = await startOperatorApi({ address: API_ADDRESS });
    const gw = (plural: string, body: object, namespace?: string) =>
      namespace
        ? api!.custom.createNamespacedCustomObject({ group: 'gateway.networking.k8s.io', version: 'v1', plural, namespace, body })
        : api!.custom.createClusterCustomObject({ group: 'gateway.networking.k8s.io', version: 'v1', plural, body });
    await gw('gatewayclasses', GATEWAY_CLASS);
    await gw('gateways', httpGateway(NS, ADDRESS, GW_PORT), NS);
    await api.core.createNamespacedService({ namespace: NS, body: { metadata: { name: 'web', namespace: NS }, spec: { ports: [{ name: 'http', port: 80, targetPort: 8080 }] } } });
    await api.server.kubeConfig().makeApiClient(DiscoveryV1Api).createNamespacedEndpointSlice({
      namespace: NS,
      body: { metadata: { name: 'web-1', namespace: NS, labels: { 'kubernetes.io/service-name': 'web' } }, addressType: 'IPv4', endpoints: [{ addresses: ['10.0.0.5'], conditions: { ready: true } }], ports: [{ name: 'http', port: 8080, protocol: 'TCP' }] },
    });
    await gw('httproutes', gwRoute(NS, 'web', ['shop.example.com'], [{ backendRefs: [{ name: 'web', port: 80 }] }]), NS);
    const op = testOperator(api.server);
    operator = op;
    await op.start();
    await eventually('the operator leads', () => op.leading);
    await op.settle();
    await eventually('the operator published, applied and wrote statuses', async () => {
      const text = await op.metrics.registry.metrics();
      return ['vgw_operator_infrastructure_applies_total{', 'vgw_operator_status_writes_total{', 'vgw_operator_reconcile_duration_seconds_count{'].every((s) => text.includes(s));
    });
    exposedMetrics(await op.metrics.registry.metrics(), exposed);
  });

  after(async () => {
    await operator?.stop();
    await api?.server.close();
    if (serve?.child.pid !== undefined && serve.child.exitCode === null) {
      serve.child.kill('SIGTERM');
      await serve.exited;
    }
    await echo?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('every metric and label of every panel, variable and alert rule is exposed', () => {
    const queries = allQueries();
    assert.ok(queries.length > 50, `${queries.length} queries found`);
    assert.deepEqual(checkQueries(queries, exposed, TARGET_LABELS), []);
  });

  test('the check reports a metric or label that is not exposed, naming where it is used', () => {
    const doctored: Query[] = [
      { where: 'panel "renamed metric"', expr: 'sum(rate(vgw_vcl_reload_total[5m]))' },
      { where: 'panel "unknown matcher"', expr: 'varnish_backend_req{backend_name="x"}' },
      { where: 'panel "unknown grouping"', expr: 'sum by (route) (rate(varnish_main_client_req[5m]))' },
      { where: 'alert "syntax"', expr: 'sum(rate(vgw_routes[5m])' },
    ];
    const problems = checkQueries(doctored, exposed, TARGET_LABELS);
    assert.equal(problems.length, 4, problems.join('\n'));
    assert.match(problems[0], /^panel "renamed metric": metric vgw_vcl_reload_total is not exposed/);
    assert.match(problems[1], /^panel "unknown matcher": metric varnish_backend_req has no label backend_name/);
    assert.match(problems[2], /^panel "unknown grouping": grouping by route/);
    assert.match(problems[3], /^alert "syntax": syntax error/);
  });
});
