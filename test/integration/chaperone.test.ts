// The in-pod agent end to end: the Chaperone class in this process, the Kubernetes API test
// server, a real varnishd and echo backends on loopback. The routing IR is produced by
// translate() and published as ConfigMaps the way the operator does; EndpointSlices and
// HTTPRoutes live in the API server, and the agent finds everything through its watches.
//
// Addresses and ports of this file (no other test uses them): gateway 127.0.11.1:18680, web
// backends 127.0.11.11-.40 port 18681, api backend 127.0.11.41 port 18682.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { KubeConfig } from '@kubernetes/client-node';
import { gzipSync } from 'node:zlib';
import { createHash } from 'node:crypto';
import { Chaperone } from '../../src/chaperone/agent.ts';
import type { EchoServer } from '../../src/echo/server.ts';
import { encodeRoutingConfig, headName, partName, GATEWAY_LABEL, PUBLISHED_AT_ANNOTATION, ROLE_LABEL } from '../../src/ir/configmap.ts';
import { publishRoutingConfig } from '../../src/operator/publish.ts';
import { parseVclList } from '../../src/varnish/vcl-list.ts';
import { startKubeApiServer, type KubeApiServer } from '../support/kube-api-server.ts';
import {
  endpointSlice,
  eventually,
  gateway,
  gatewayClass,
  gatewayPod,
  get,
  httpRoute,
  kube,
  makeWorkDir,
  LoadGenerator,
  memoryLogger,
  namespace,
  parentCondition,
  routeWithStatus,
  removeWorkDir,
  seedWorld,
  servedReport,
  service,
  startBackend,
  translateWorld,
  gatewayRouting,
  type World,
} from './support/chaperone-world.ts';

const GW = { namespace: 'infra', name: 'gw' };
const LISTEN = { address: '127.0.11.1', port: 18680 };
const WEB_PORT = 18681;
const API_PORT = 18682;
const API_ADDRESS = '127.0.11.41';
/** Web backend k listens on 127.0.11.(11+k). */
const webAddress = (k: number) => `127.0.11.${11 + k}`;
const webPod = (k: number) => `web-${k}`;

const HTTPROUTE = { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute' };
const SLICE = { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice' };
const CONFIGMAP = { apiVersion: 'v1', kind: 'ConfigMap' };
const POD = 'gw-7f9c-abcde';
const POD_REF = { apiVersion: 'v1', kind: 'Pod', namespace: GW.namespace, name: POD };
/** Scale-up/scale-down rounds under load (4 endpoint changes each). */
const ROUNDS = 5;

describe('chaperone (in-process, test API server, real varnishd)', () => {
  let server: KubeApiServer;
  let kc: KubeConfig;
  let workDir = '';
  let chaperone: Chaperone;
  let log: ReturnType<typeof memoryLogger>;
  const web = new Map<number, EchoServer>();
  let api: EchoServer;
  let world: World;
  /** The first request answered once the agent said it was ready, and its endpoints then. */
  let firstAnswer: Awaited<ReturnType<typeof get>>;
  let endpointsWhenReady = -1;
  /** Web backends in the web EndpointSlice right now. */
  let webLive: number[] = [];

  const setWebSlice = (ks: number[]) => {
    webLive = ks;
    server.set(kube(endpointSlice('app', 'web', 'web-abc12', ks.map(webAddress), WEB_PORT)));
  };
  const setApiSlice = () => server.set(kube(endpointSlice('shop', 'api', 'api-x7k2p', [API_ADDRESS], API_PORT)));
  const startWeb = async (k: number) => {
    web.set(k, await startBackend(webAddress(k), WEB_PORT, webPod(k)));
  };
  const stopWeb = async (k: number) => {
    await web.get(k)?.close();
    web.delete(k);
  };
  /** Ready endpoints the live config has (web + api), once it equals `n`. */
  const endpointsLive = (n: number, what: string) => eventually(`${what}: ${n} endpoints live`, () => chaperone.state.endpoints === n);
  const publish = async (w: World, partBytes?: number) => {
    const ir = gatewayRouting(translateWorld(w), GW);
    return { ir, ...(await publishRoutingConfig(kc, GW.namespace, GW.name, ir, partBytes)) };
  };
  const rejections = () => log.lines().filter((l) => l.event === 'config-rejected');

  before(async () => {
    server = await startKubeApiServer();
    kc = server.kubeConfig();
    workDir = await makeWorkDir('vgw-chaperone-');
    await startWeb(0);
    api = await startBackend(API_ADDRESS, API_PORT, 'api-0', 'shop');

    world = {
      namespaces: ['infra', 'app', 'shop'].map(namespace),
      classes: [gatewayClass()],
      gateways: [gateway(GW.namespace, GW.name, LISTEN.address, LISTEN.port)],
      // Generation 3: Programmed must carry the route's generation, not 1.
      routes: [httpRoute('app', 'web', GW, 'web.example.com', 'web', 3), httpRoute('shop', 'api', GW, 'api.example.com', 'api')],
      services: [service('app', 'web', WEB_PORT), service('shop', 'api', API_PORT)],
    };
    // The HTTPRoutes as the operator left them: with its Accepted/ResolvedRefs conditions.
    const translated = seedWorld(server, world);
    // The agent's own Pod, which it annotates with the config it serves.
    server.set(gatewayPod(GW.namespace, POD));
    setWebSlice([0]);
    setApiSlice();
    await publishRoutingConfig(kc, GW.namespace, GW.name, gatewayRouting(translated, GW));

    // The first list of EndpointSlices fails (the agent retries it after a backoff): the agent
    // must not go live on the ConfigMaps alone, with no endpoints (every route a 500).
    server.failNext({ verb: 'list', resource: 'endpointslices', code: 503, reason: 'ServiceUnavailable' });
    log = memoryLogger();
    chaperone = new Chaperone({ kubeConfig: kc, namespace: GW.namespace, gateway: GW.name, podName: POD, workDir, logger: log.logger });
    // As the admin endpoint does: readiness is polled while start() is still running.
    const started = chaperone.start();
    await chaperone.waitReady();
    firstAnswer = await get(LISTEN, 'web.example.com', '/first');
    endpointsWhenReady = chaperone.state.endpoints;
    await started;
  });

  after(async () => {
    await chaperone?.stop();
    for (const k of [...web.keys()]) await stopWeb(k);
    await api?.close();
    await server?.close();
    await removeWorkDir(workDir);
  });

  test('traffic flows once waitReady() resolves; each route reaches its own backend', async () => {
    assert.equal(chaperone.ready, true);
    assert.equal(server.countRequests({ verb: 'list', resource: 'endpointslices' }), 2, 'the failed first list was retried');
    assert.equal(endpointsWhenReady, 2, 'ready only once the EndpointSlices are in');
    assert.deepEqual([firstAnswer.status, firstAnswer.pod], [200, webPod(0)], 'the first request after ready is served');
    assert.equal(chaperone.state.phase, 'serving');
    assert.equal(chaperone.state.endpoints, 2);
    assert.match(chaperone.state.configHash ?? '', /^[0-9a-f]{64}$/);
    assert.deepEqual(chaperone.state.listeners.map((l) => `${l.address}:${l.port}`), [`${LISTEN.address}:${LISTEN.port}`]);
    const w = await get(LISTEN, 'web.example.com', '/x');
    assert.deepEqual([w.status, w.pod], [200, webPod(0)]);
    const a = await get(LISTEN, 'API.example.com:18680', '/y');
    assert.deepEqual([a.status, a.pod], [200, 'api-0']);
    assert.equal((await get(LISTEN, 'nope.example.com')).status, 404);
    assert.ok(log.lines().some((l) => l.event === 'ready'), 'the agent logs when it becomes ready');
  });

  test('the agent reports the live config on its own Pod, once per config; it writes no route status', async () => {
    const reported = () => servedReport(server.get(POD_REF))?.sha256;
    await eventually('the Pod carries the live config', () => reported() !== undefined && reported() === chaperone.state.configHash);
    const pod = server.get(POD_REF);
    assert.equal(pod?.metadata.labels?.['app.kubernetes.io/component'], 'gateway', 'a merge patch: the rest of the Pod is kept');
    assert.equal((pod?.status as { phase?: string } | undefined)?.phase, 'Running');
    // Route status is the operator's alone: the agent neither writes nor reads routes.
    assert.equal(server.countRequests({ resource: 'httproutes' }), 0, 'no HTTPRoute request from the agent');
    for (const r of world.routes) {
      const obj = server.get({ ...HTTPROUTE, namespace: r.metadata.namespace, name: r.metadata.name });
      assert.equal(parentCondition(obj, GW, 'Programmed'), undefined);
      assert.equal(parentCondition(obj, GW, 'Accepted')?.status, 'True', 'the operator’s Accepted is kept');
    }
    const patches = () => server.countRequests({ verb: 'patch', resource: 'pods' });
    assert.equal(patches(), 1, 'one report for one config');

    // An endpoint change reloads the same config: nothing new to report.
    const reloads = chaperone.state.generation;
    server.set(kube(endpointSlice('app', 'web', 'web-abc12', [webAddress(0), webAddress(29)], WEB_PORT)));
    await eventually('reloaded with the extra endpoint', () => chaperone.state.generation > reloads && chaperone.state.endpoints === 3);
    setWebSlice([0]);
    await endpointsLive(2, 'endpoint removed again');
    await chaperone.settled();
    assert.equal(patches(), 1, 'endpoint changes write no report');

    // A new generation of a route: a new config, reported once it is live (the first attempt
    // fails and is retried).
    const before = reported();
    server.failNext({ verb: 'patch', resource: 'pods', code: 503, reason: 'ServiceUnavailable' });
    const webRoute = world.routes[0];
    webRoute.metadata.generation = 4;
    webRoute.spec.rules = [{ matches: [{ path: { type: 'PathPrefix', value: '/' } }], backendRefs: [{ name: 'web', port: 80 }] }];
    const translated = translateWorld(world);
    server.set(kube(routeWithStatus(webRoute, translated)));
    const published = await publishRoutingConfig(kc, GW.namespace, GW.name, gatewayRouting(translated, GW));
    await eventually('the new config reported', () => reported() === published.sha256);
    assert.notEqual(published.sha256, before);
    assert.equal(chaperone.state.configHash, published.sha256);
    assert.equal(patches(), 3, 'the failed report and its retry');
    assert.ok(log.lines().some((l) => l.event === 'served-report-failed' && l.object === `${GW.namespace}/${POD}`), 'the failure is logged with the Pod');
    assert.equal((await get(LISTEN, 'web.example.com')).status, 200);
  });

  test('a changed config is measured from its publication to live; the first config (the pod starting) is not', async () => {
    const propagation = async () => (await chaperone.metrics.registry.getSingleMetric('vgw_config_propagation_seconds')?.get())?.values.find((v) => (v as { metricName?: string }).metricName === 'vgw_config_propagation_seconds_count')?.value ?? 0;
    // The test before published one change; the config the pod started with is not counted.
    assert.equal(await propagation(), 1, 'one observation so far');
    const head = server.get({ ...CONFIGMAP, namespace: GW.namespace, name: headName(GW.name) }) as unknown as { metadata: { annotations?: Record<string, string> } };
    assert.match(head.metadata.annotations?.[PUBLISHED_AT_ANNOTATION] ?? '', /^\d{4}-\d{2}-\d{2}T[\d:.]+Z$/, 'the publisher stamps the head');
    const before = chaperone.state.configHash;
    world.routes.push(httpRoute('app', 'measured', GW, 'measured.example.com', 'web'));
    await publish(world);
    await eventually('the changed config is live', () => chaperone.state.configHash !== before);
    assert.equal(await propagation(), 2, 'one change, one observation');
    world.routes.pop();
    await publish(world);
    await eventually('the route removed again', () => chaperone.state.configHash === before);
  });

  test('endpoints scale up and down under load without a failed request', async (t) => {
    const load = new LoadGenerator(LISTEN, 'web.example.com', 4);
    const closing: Promise<void>[] = [];
    let next = 1;
    try {
      await eventually('load flowing', () => load.served(webPod(0)) > 10);
      // Each round: add two backends, then remove the two oldest. A removed backend keeps
      // running until the config without it is live (as a terminating pod keeps serving), and
      // a little longer for requests that picked it just before the switch.
      // Every config is also given some traffic before the next change.
      const underLoad = async (what: string) => {
        const seen = load.requests;
        await eventually(`${what}: traffic`, () => load.requests >= seen + 40);
      };
      for (let round = 0; round < ROUNDS; round++) {
        for (let add = 0; add < 2; add++) {
          const k = next++;
          await startWeb(k);
          setWebSlice([...webLive, k]);
          await endpointsLive(webLive.length + 1, `add ${webPod(k)}`);
          await eventually(`${webPod(k)} gets traffic`, () => load.served(webPod(k)) > 0);
          await underLoad(`add ${webPod(k)}`);
        }
        for (let remove = 0; remove < 2; remove++) {
          const [gone, ...rest] = webLive;
          setWebSlice(rest);
          await endpointsLive(rest.length + 1, `remove ${webPod(gone)}`);
          closing.push(sleep(300).then(() => stopWeb(gone)));
          await underLoad(`remove ${webPod(gone)}`);
        }
      }
      await Promise.all(closing);
      // Traffic after the last change, on what is left.
      const seen = load.requests;
      await eventually('traffic after the last change', () => load.requests > seen + 50);
    } finally {
      await load.stop();
      await Promise.all(closing);
    }
    t.diagnostic(`${load.requests} requests: ${load.describe()}; by backend: ${[...load.byPod].map(([p, n]) => `${p} ${n}`).join(', ')}`);
    assert.deepEqual([...load.byStatus.keys()], ['200'], `every answer a 200: ${load.describe()}; first failures: ${load.failures.join('; ')}`);
    for (let k = 0; k < next; k++) assert.ok(load.served(webPod(k)) > 0, `${webPod(k)} served traffic`);
    assert.deepEqual(webLive, [2 * ROUNDS]);
    assert.ok(load.requests > 100, `${load.requests} requests`);
  });

  test('a Service without EndpointSlices answers 500; recreating them brings 200 back', async () => {
    assert.equal(server.remove({ ...SLICE, namespace: 'shop', name: 'api-x7k2p' }), true);
    await eventually('api answers 500', async () => (await get(LISTEN, 'api.example.com')).status === 500);
    assert.equal(chaperone.state.endpoints, webLive.length);
    assert.equal((await get(LISTEN, 'web.example.com')).status, 200, 'other routes unaffected');
    setApiSlice();
    await eventually('api answers 200', async () => (await get(LISTEN, 'api.example.com')).pod === 'api-0');
    assert.equal(chaperone.state.lastError, undefined);
  });

  test('a rejected config is reported (state, log, metrics) while the last good one keeps serving', async () => {
    const goodHash = chaperone.state.configHash;
    const head = server.get({ ...CONFIGMAP, namespace: GW.namespace, name: headName(GW.name) }) as unknown as {
      data: Record<string, string>;
      binaryData: Record<string, string>;
    };
    assert.ok(head);
    // prom-client hands out its live value objects: read the numbers now.
    const total = async (name: string) => (await chaperone.metrics.registry.getSingleMetric(name)?.get())?.values.reduce((sum, v) => sum + v.value, 0) ?? 0;
    const errorsBefore = await total('vgw_config_errors_total');
    const reloadsBefore = await total('vgw_vcl_reloads_total');

    // 1. A head of an IR version this agent does not read (a newer operator).
    server.set(kube({ ...(head as object), data: { ...head.data, irVersion: '99' } }));
    await eventually('version rejection reported', () => /version 99/.test(chaperone.state.lastError?.message ?? ''));
    assert.match(chaperone.state.lastError?.message ?? '', /last good config keeps serving/);
    assert.ok(rejections().some((l) => /version 99/.test(String(l.msg)) && l.level === 50), 'a JSON log line with event "config-rejected"');
    assert.equal(chaperone.state.configHash, goodHash);
    assert.equal(chaperone.ready, true, 'still ready: it serves the last good config');
    assert.equal((await get(LISTEN, 'web.example.com')).status, 200);
    assert.equal((await get(LISTEN, 'api.example.com')).status, 200);

    // 2. A payload that is not gzip, though consistent with its announced hash.
    const garbage = Buffer.from('this is not a gzip stream');
    server.set(kube({
      ...(head as object),
      data: { ...head.data, sha256: createHash('sha256').update(garbage).digest('hex'), parts: '1', bytes: String(garbage.length) },
      binaryData: { 'routing.json.gz': garbage.toString('base64') },
    }));
    await eventually('decode failure reported', () => /cannot decode/.test(chaperone.state.lastError?.message ?? ''));
    // 3. Valid gzip of something that is not a routing IR.
    const notIr = gzipSync(JSON.stringify({ version: 4, hello: 'world' }));
    server.set(kube({
      ...(head as object),
      data: { ...head.data, sha256: createHash('sha256').update(notIr).digest('hex'), parts: '1', bytes: String(notIr.length) },
      binaryData: { 'routing.json.gz': notIr.toString('base64') },
    }));
    await eventually('non-IR payload reported', () => /not a routing IR/.test(chaperone.state.lastError?.message ?? ''));
    assert.equal(rejections().length >= 3, true, 'each distinct rejection logged');
    assert.equal(chaperone.state.configHash, goodHash);
    assert.equal((await get(LISTEN, 'web.example.com')).status, 200);

    // An endpoint change meanwhile does not repeat the report (it is the same problem).
    const logged = rejections().length;
    const gen = chaperone.state.generation;
    server.set(kube(endpointSlice('shop', 'api', 'api-x7k2p', [API_ADDRESS, '127.0.11.42'], API_PORT)));
    await sleep(300);
    assert.equal(rejections().length, logged);
    assert.equal(chaperone.state.generation, gen, 'nothing reloaded while the head is unusable');
    setApiSlice();

    // Metrics: each rejection is counted (it is not a reload: nothing was compiled).
    assert.equal(await total('vgw_config_errors_total'), errorsBefore + 3, 'vgw_config_errors_total counts the 3 rejections');
    assert.equal(await total('vgw_vcl_reloads_total'), reloadsBefore, 'no reload attempted');

    // A good config again: it goes live and the error clears.
    world.routes.push(httpRoute('app', 'fixed', GW, 'fixed.example.com', 'web'));
    const { sha256 } = await publish(world);
    await eventually('good config live', () => chaperone.state.configHash === sha256);
    await eventually('error cleared', () => chaperone.state.lastError === undefined);
    assert.equal((await get(LISTEN, 'fixed.example.com')).status, 200);
  });

  test('re-publishing the last good config after a rejection clears the error', async () => {
    const head = server.get({ ...CONFIGMAP, namespace: GW.namespace, name: headName(GW.name) }) as unknown as { data: Record<string, string> };
    const good = chaperone.state.configHash;
    server.set(kube({ ...(head as object), data: { ...head.data, irVersion: '99' } }));
    await eventually('rejection reported', () => chaperone.state.lastError !== undefined);
    const { sha256 } = await publish(world);
    assert.equal(sha256, good, 'the same config as the live one');
    await eventually('error cleared', () => chaperone.state.lastError === undefined);
  });

  test('a config split over several ConfigMaps goes live; parts written out of order are waited for', async (t) => {
    world.routes.push(httpRoute('app', 'split', GW, 'split.example.com', 'web'));
    const first = await publish(world, 100);
    assert.ok(first.written.length >= 3, `split into ${first.written.length} ConfigMaps`);
    t.diagnostic(`published as ${first.written.length} ConfigMaps`);
    await eventually('split config live', () => chaperone.state.configHash === first.sha256);
    assert.equal((await get(LISTEN, 'split.example.com')).status, 200);

    // The next config, written by hand in the wrong order: head first, then the parts from the
    // last. Until the last part is in, the agent waits quietly and the previous config serves.
    world.routes.push(httpRoute('app', 'late', GW, 'late.example.com', 'web'));
    const { ir } = translateWorld(world);
    const objects = encodeRoutingConfig(ir, GW.namespace, GW.name, 100);
    const head = objects.at(-1)!;
    const parts = objects.slice(0, -1);
    assert.ok(parts.length >= 2);
    const incompleteSeen = () => log.lines().filter((l) => l.event === 'config-incomplete').length;
    const errorBefore = chaperone.state.lastError;
    let seen = incompleteSeen();
    server.set(kube(head));
    for (const part of [...parts].reverse().slice(0, -1)) {
      await eventually('the agent looked at the incomplete set', () => incompleteSeen() > seen);
      seen = incompleteSeen();
      assert.equal(chaperone.state.lastError, errorBefore, 'incomplete is not an error');
      assert.equal(chaperone.state.configHash, first.sha256, 'the previous config keeps serving');
      assert.equal((await get(LISTEN, 'late.example.com')).status, 404);
      assert.equal((await get(LISTEN, 'split.example.com')).status, 200);
      server.set(kube(part));
    }
    await eventually('the agent looked at the incomplete set', () => incompleteSeen() > seen);
    assert.equal(chaperone.state.configHash, first.sha256);
    server.set(kube(parts[0]));
    await eventually('complete config live', async () => (await get(LISTEN, 'late.example.com')).status === 200);
    assert.equal(chaperone.state.lastError, undefined);

    // Back to one ConfigMap: the operator removes the stale parts.
    const single = await publish(world);
    assert.ok(single.deleted.includes(partName(GW.name, 1)));
    assert.equal(server.list(CONFIGMAP.apiVersion, CONFIGMAP.kind, GW.namespace).filter((c) => c.metadata.labels?.[ROLE_LABEL] === 'part').length, 0);
    assert.equal(server.list(CONFIGMAP.apiVersion, CONFIGMAP.kind, GW.namespace).filter((c) => c.metadata.labels?.[GATEWAY_LABEL] === GW.name).length, 1);
    // Same IR as the split one that is live: nothing to reload, still serving.
    assert.equal((await get(LISTEN, 'late.example.com')).status, 200);
  });

  test('the watches survive dropped watches, a 410 and broken connections', async () => {
    const k = 20;
    await startWeb(k);
    const relists = () => server.countRequests({ verb: 'list', resource: 'endpointslices' });
    const configRelists = () => server.countRequests({ verb: 'list', resource: 'configmaps', namespace: GW.namespace });
    const onto = async (ks: number[], what: string) => {
      setWebSlice(ks);
      await endpointsLive(ks.length + 1, what);
    };
    const base = webLive;

    // The apiserver ends every watch (as its timeout does): re-watch from the last resourceVersion.
    await server.waitForWatches(2);
    const listsBefore = relists();
    const configListsBefore = configRelists();
    assert.ok(server.dropWatches() >= 2);
    await onto([...base, k], 'change after dropped watches');
    assert.equal(relists(), listsBefore, 'resumed without a relist');
    assert.equal(configRelists(), configListsBefore);

    // History compacted, then the watches end: re-watching gets 410 Expired, the informer relists.
    // (An unrelated write first, so that both watches are behind the compacted history.)
    await server.waitForWatches(2);
    server.set(kube({ ...service('app', 'unrelated', 1), metadata: { name: 'unrelated', namespace: 'app', labels: { touched: 'yes' } } }));
    server.compact();
    assert.ok(server.dropWatches() >= 2);
    await onto(base, 'change after a 410');
    await eventually('relisted after 410', () => relists() > listsBefore && configRelists() > configListsBefore);

    // Connections broken mid-stream: the informer stops; the agent restarts it.
    await server.waitForWatches(2);
    assert.ok(server.dropWatches({ abrupt: true }) >= 2);
    await onto([...base, k], 'change after broken connections');
    assert.ok(log.lines().some((l) => l.event === 'watch-error'), 'the broken watch is logged');

    // And the ConfigMap watch still works after all of it.
    world.routes.push(httpRoute('app', 'after-drops', GW, 'after-drops.example.com', 'web'));
    await publish(world);
    await eventually('config change after the drops', async () => (await get(LISTEN, 'after-drops.example.com')).status === 200);
    await onto(base, 'back to the base endpoints');
    await stopWeb(k);
  });

  test('100 reloads add no metric series and leave no VCLs behind', async () => {
    const extra = 21;
    await startWeb(extra);
    const base = webLive;
    const extraLabel = `${webAddress(extra)}:${WEB_PORT}`;
    const series = async () => {
      const out = new Set<string>();
      for (const m of await chaperone.metrics.registry.getMetricsAsJSON()) {
        for (const v of m.values) {
          const labels = Object.entries(v.labels).sort(([a], [b]) => a.localeCompare(b));
          out.add(`${(v as { metricName?: string }).metricName ?? m.name}${JSON.stringify(labels)}`);
        }
      }
      return out;
    };
    const reloadOnto = async (ks: number[]) => {
      const gen = chaperone.state.generation;
      setWebSlice(ks);
      await eventually('reload', () => chaperone.state.generation > gen, 20_000, 5);
    };
    // Per-backend series (varnish_backend_*{backend="address:port"}) follow the endpoints that
    // some loaded VCL uses, as varnishstat last saw them: the baseline is every series seen
    // with either endpoint set live, once the stats poll has seen the extra backend.
    await reloadOnto([...base, extra]);
    assert.equal((await get(LISTEN, 'web.example.com')).status, 200);
    let withExtra = new Set<string>();
    await eventually('per-backend series of the extra endpoint', async () => [...(withExtra = await series())].some((s) => s.includes(`"${extraLabel}"`)), 20_000, 50);
    await reloadOnto(base);
    const baseline = new Set([...withExtra, ...(await series())]);
    const generation = chaperone.state.generation;
    for (let i = 0; i < 100; i++) await reloadOnto(i % 2 === 0 ? [...base, extra] : base);
    assert.ok(chaperone.state.generation - generation >= 100);
    const after = await series();
    assert.deepEqual([...after].filter((s) => !baseline.has(s)), [], 'no new series');
    assert.ok(after.size <= baseline.size);

    const varnishd = chaperone.varnish;
    assert.ok(varnishd);
    // Every VCL but the active one is discarded. varnishd frees a discarded VCL once nothing
    // references it any more (idle worker threads may keep one for a while), so a few can
    // still be listed, but not one per reload.
    let vcls: ReturnType<typeof parseVclList> = [];
    const listing = () => vcls.map((v) => `${v.name} ${v.status} ${v.state}/${v.temperature} busy ${v.busy}`).join('; ');
    await eventually('old VCLs discarded', async () => {
      vcls = parseVclList(await varnishd.cli.expectOk('vcl.list -j'));
      return vcls.filter((v) => v.status === 'active').length === 1 && vcls.every((v) => v.status === 'active' || v.status === 'discarded');
    }).catch((err: Error) => assert.fail(`${err.message}: ${listing()}`));
    assert.ok(vcls.length < 20, `VCLs still listed: ${listing()}`);
    assert.equal((await get(LISTEN, 'web.example.com')).status, 200);
    await stopWeb(extra);
  });
});
