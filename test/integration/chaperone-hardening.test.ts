// The in-pod agent against a hostile routing ConfigMap, and its split admin endpoints: a config
// whose IR carries VCL in a number is refused (the last good config keeps serving), decoding
// happens once per ConfigMap change rather than once per event, probes answer on the probe
// address only with a status line, and /status and /metrics answer on loopback without VCL text.
//
// Addresses of this file (no other test uses them): gateways 127.0.23.1:18930 (in-process
// agent) and 127.0.23.2:18932 (`vgw chaperone` process, probes on 127.0.23.2:18939), backend
// 127.0.23.11:18931.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { KubeConfig } from '@kubernetes/client-node';
import { Chaperone } from '../../src/chaperone/agent.ts';
import type { EchoServer } from '../../src/echo/server.ts';
import { encodeRoutingConfig } from '../../src/ir/configmap.ts';
import { publishRoutingConfig } from '../../src/operator/publish.ts';
import { startKubeApiServer, type KubeApiServer } from '../support/kube-api-server.ts';
import { startChaperoneProcess, type ChaperoneProcess } from './support/chaperone-process.ts';
import {
  endpointSlice,
  eventually,
  gateway,
  gatewayClass,
  get,
  httpRoute,
  kube,
  makeWorkDir,
  memoryLogger,
  namespace,
  removeWorkDir,
  seedWorld,
  service,
  startBackend,
  translateWorld,
  type World,
} from './support/chaperone-world.ts';

const GW = { namespace: 'infra', name: 'hard-gw' };
const LISTEN = { address: '127.0.23.1', port: 18930 };
const GW2 = { namespace: 'infra', name: 'split-gw' };
const LISTEN2 = { address: '127.0.23.2', port: 18932 };
const PROBES = { address: '127.0.23.2', port: 18939 };
const BACKEND = { address: '127.0.23.11', port: 18931 };
const INJECTION = '301)); } sub vcl_recv { return (synth(200)); } sub vgw_x { return (synth(301';

describe('chaperone: hostile routing config and split admin endpoints (test API server, real varnishd)', () => {
  let server: KubeApiServer;
  let kc: KubeConfig;
  let dir = '';
  let backend: EchoServer;
  let chaperone: Chaperone;
  let log: ReturnType<typeof memoryLogger>;
  let proc: ChaperoneProcess | undefined;
  let world: World;

  before(async () => {
    server = await startKubeApiServer();
    kc = server.kubeConfig();
    dir = await makeWorkDir('vgw-hardening-');
    backend = await startBackend(BACKEND.address, BACKEND.port, 'hard-0');
    world = {
      namespaces: ['infra', 'app'].map(namespace),
      classes: [gatewayClass()],
      gateways: [gateway(GW.namespace, GW.name, LISTEN.address, LISTEN.port), gateway(GW2.namespace, GW2.name, LISTEN2.address, LISTEN2.port)],
      routes: [httpRoute('app', 'web', GW, 'web.example.com', 'web'), httpRoute('app', 'split', GW2, 'split.example.com', 'web')],
      services: [service('app', 'web', BACKEND.port)],
    };
    seedWorld(server, world);
    server.set(kube(endpointSlice('app', 'web', 'web-1', [BACKEND.address], BACKEND.port)));
    // translate() serves every Gateway in one IR; each agent gets the IR of its own Gateway.
    await publishRoutingConfig(kc, GW.namespace, GW.name, irFor(LISTEN));
    await publishRoutingConfig(kc, GW2.namespace, GW2.name, irFor(LISTEN2));
    log = memoryLogger();
    chaperone = new Chaperone({ kubeConfig: kc, namespace: GW.namespace, gateway: GW.name, podName: 'hard-pod', workDir: dir, logger: log.logger, reportRouteStatus: false });
    await chaperone.start();
    await chaperone.waitReady();
  });

  after(async () => {
    await proc?.kill();
    await chaperone?.stop();
    await backend?.close();
    await server?.close();
    await removeWorkDir(dir);
  });

  /** The translated IR with only the socket of `listen`. */
  function irFor(listen: { address: string; port: number }) {
    const { ir } = translateWorld(world);
    return { ...ir, sockets: ir.sockets.filter((s) => s.address === listen.address && s.port === listen.port) };
  }

  test('an EndpointSlice event does not decode the routing config again', async () => {
    assert.equal((await get(LISTEN, 'web.example.com')).status, 200);
    const decodes = chaperone.configDecodes;
    const generation = chaperone.state.generation;
    const endpoints = chaperone.state.endpoints;
    // A second address for the same backend process: a real change that reloads.
    server.set(kube(endpointSlice('app', 'web', 'web-2', ['127.0.23.12'], BACKEND.port)));
    await eventually('endpoint change live', () => chaperone.state.endpoints === endpoints + 1 && chaperone.state.generation > generation);
    server.set(kube(endpointSlice('app', 'web', 'web-2', [], BACKEND.port)));
    await eventually('endpoint removed', () => chaperone.state.endpoints === endpoints);
    assert.equal(chaperone.configDecodes, decodes, 'the IR was not inflated or parsed for endpoint events');
  });

  test('a ConfigMap whose IR carries VCL in redirect.statusCode is rejected; the last good config keeps serving', async () => {
    const good = chaperone.state.configHash;
    const ir = irFor(LISTEN) as unknown as { sockets: { vhosts: { routes: { action: Record<string, unknown> }[] }[] }[] };
    const route = ir.sockets[0].vhosts.find((v) => v.routes.length)!.routes[0];
    route.action.redirect = { statusCode: INJECTION, listenerPort: LISTEN.port };
    for (const cm of encodeRoutingConfig(ir as never, GW.namespace, GW.name)) server.set(kube(cm));
    await eventually('rejection reported', () => /redirect\.statusCode/.test(chaperone.state.lastError?.message ?? ''));
    const message = chaperone.state.lastError?.message ?? '';
    assert.match(message, /last good config keeps serving/);
    assert.match(message, /sockets\[0\]\.vhosts\[\d+\]\.routes\[0\]\.action\.redirect\.statusCode: /);
    assert.ok(log.lines().some((l) => l.event === 'config-rejected' && /redirect\.statusCode/.test(String(l.msg))), 'logged as config-rejected');
    assert.equal(chaperone.state.configHash, good);
    assert.equal(chaperone.ready, true);
    const answer = await get(LISTEN, 'web.example.com', '/after');
    assert.deepEqual([answer.status, answer.pod], [200, 'hard-0'], 'served by the last good config, not the injected synth');
    // The good config again clears the error.
    await publishRoutingConfig(kc, GW.namespace, GW.name, irFor(LISTEN));
    await eventually('error cleared', () => chaperone.state.lastError === undefined);
  });

  test('`vgw chaperone`: probes on the probe address, /status and /metrics only on loopback', async () => {
    proc = await startChaperoneProcess({ server, dir, gateway: GW2, admin: PROBES, pod: 'split-pod', listenAddress: LISTEN2.address });
    const p = proc;
    await eventually('probe ready', async () => !p.running() || (await get(PROBES, 'probe', '/readyz').catch(() => ({ status: 0 }))).status === 200, 60_000, 50).catch((err: Error) =>
      assert.fail(`${err.message}${p.diagnostics()}`),
    );
    assert.ok(p.running(), p.diagnostics());
    assert.equal((await get(PROBES, 'probe', '/healthz')).status, 200);
    assert.equal((await get(PROBES, 'probe', '/status')).status, 404, 'no config state on the probe port');
    assert.equal((await get(PROBES, 'probe', '/metrics')).status, 404, 'no metrics on the probe port');
    assert.equal((await get(LISTEN2, 'split.example.com')).status, 200);

    const local = p.metricsEndpoint();
    assert.deepEqual(local?.address, '127.0.0.1', `status endpoint on loopback${p.diagnostics()}`);
    const statusText = async () => (await fetch(`http://127.0.0.1:${local!.port}/status`)).text();
    assert.equal((JSON.parse(await statusText()) as { phase: string }).phase, 'serving');
    assert.match(await (await fetch(`http://127.0.0.1:${local!.port}/metrics`)).text(), /^vgw_config_errors_total /m);

    // A hostile config: /status names the field, carries no VCL, and the gateway keeps serving.
    const ir = irFor(LISTEN2) as unknown as { sockets: { vhosts: { routes: { action: Record<string, unknown> }[] }[] }[] };
    ir.sockets[0].vhosts.find((v) => v.routes.length)!.routes[0].action.cors = {
      allowOrigins: ['*'], allowMethods: [], allowHeaders: [], exposeHeaders: [], allowCredentials: false, maxAge: '5"; } sub vcl_deliver { set resp.http.x = "1',
    };
    for (const cm of encodeRoutingConfig(ir as never, GW2.namespace, GW2.name)) server.set(kube(cm));
    await eventually('rejection on /status', async () => /cors\.maxAge/.test(await statusText()));
    const body = await statusText();
    assert.doesNotMatch(body, /sub vcl_|resp\.http\.x/, 'no VCL text in /status');
    assert.equal((await get(LISTEN2, 'split.example.com')).status, 200);
  });
});
