// The agent binds the pod's address, whatever addresses the published routing IR names: the
// IR's sockets are on 10.0.0.x (not an address of this machine), the agent runs with
// --listen-address 127.0.36.1, and traffic there is routed as the IR says (the Chaperone class
// in this process, the Kubernetes API test server, a real varnishd, echo backends).
//
// Addresses and ports of this file (no other test uses them): gateway 127.0.36.1:18796,
// backends 127.0.36.11 (web) and 127.0.36.12 (api), port 18797.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { KubeConfig } from '@kubernetes/client-node';
import { Chaperone } from '../../src/chaperone/agent.ts';
import { parseChaperoneArgs } from '../../src/cli/chaperone.ts';
import type { EchoServer } from '../../src/echo/server.ts';
import type { Gateway } from '../../src/gatewayapi/types.ts';
import type { RoutingIR } from '../../src/ir/types.ts';
import { publishRoutingConfig } from '../../src/operator/publish.ts';
import { startKubeApiServer, type KubeApiServer } from '../support/kube-api-server.ts';
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

const GW = { namespace: 'infra', name: 'gw' };
const POD_IP = '127.0.36.1';
const PORT = 18796;
const BACKEND_PORT = 18797;
const WEB = '127.0.36.11';
const API = '127.0.36.12';
const POD = { address: POD_IP, port: PORT };

/** The Gateway with addresses no pod has. */
function gatewayOn(addresses: string[]): Gateway {
  const g = gateway(GW.namespace, GW.name, addresses[0], PORT);
  return { ...g, spec: { ...g.spec, addresses: addresses.map((value) => ({ type: 'IPAddress', value })) } };
}

describe('chaperone --listen-address (test API server, real varnishd)', () => {
  let server: KubeApiServer;
  let kc: KubeConfig;
  let workDir = '';
  let chaperone: Chaperone;
  let log: ReturnType<typeof memoryLogger>;
  let backends: EchoServer[] = [];
  let world: World;
  const publish = (ir: RoutingIR) => publishRoutingConfig(kc, GW.namespace, GW.name, ir);
  const pod = async (host: string) => (await get(POD, host)).pod;

  before(async () => {
    server = await startKubeApiServer();
    kc = server.kubeConfig();
    workDir = await makeWorkDir('vgw-chaperone-listen-');
    backends = [await startBackend(WEB, BACKEND_PORT, 'web-0'), await startBackend(API, BACKEND_PORT, 'api-0')];
    world = {
      namespaces: ['infra', 'app'].map(namespace),
      classes: [gatewayClass()],
      gateways: [gatewayOn(['10.0.0.1'])],
      routes: [httpRoute('app', 'web', GW, 'web.example.com', 'web'), httpRoute('app', 'api', GW, 'api.example.com', 'api')],
      services: [service('app', 'web', BACKEND_PORT), service('app', 'api', BACKEND_PORT)],
    };
    const translated = seedWorld(server, world);
    server.set(kube(endpointSlice('app', 'web', 'web-abc12', [WEB], BACKEND_PORT)));
    server.set(kube(endpointSlice('app', 'api', 'api-abc12', [API], BACKEND_PORT)));
    assert.deepEqual(translated.ir.sockets.map((s) => `${s.name}=${s.address}:${s.port}`), [`a10_0_0_1_${PORT}=10.0.0.1:${PORT}`]);
    await publish(translated.ir);

    const args = parseChaperoneArgs(['--gateway', `${GW.namespace}/${GW.name}`, `--listen-address=${POD_IP}`], {});
    log = memoryLogger();
    chaperone = new Chaperone({
      kubeConfig: kc,
      namespace: GW.namespace,
      gateway: GW.name,
      podName: 'gw-0',
      workDir,
      logger: log.logger,
      reportRouteStatus: false,
      listenAddress: args['listen-address'],
    });
    const started = chaperone.start();
    await chaperone.waitReady();
    await started;
  });

  after(async () => {
    await chaperone?.stop();
    for (const b of backends) await b.close();
    await server?.close();
    await removeWorkDir(workDir);
  });

  test('a socket the IR puts on 10.0.0.1 is bound on the listen address under its IR name, and routes as the IR says', async () => {
    assert.deepEqual(chaperone.state.listeners.map((l) => `${l.name}=${l.address}:${l.port}`), [`a10_0_0_1_${PORT}=${POD_IP}:${PORT}`]);
    assert.equal(await pod('web.example.com'), 'web-0');
    assert.equal(await pod('api.example.com'), 'api-0');
    assert.equal((await get(POD, 'other.example.com')).status, 404);
  });

  test('two addresses on one port: bound once, both sockets\' vhost tables routed', async () => {
    world.gateways = [gatewayOn(['10.0.0.1', '10.0.0.2'])];
    const ir = translateWorld(world).ir;
    assert.deepEqual(ir.sockets.map((s) => s.name), [`a10_0_0_1_${PORT}`, `a10_0_0_2_${PORT}`]);
    // api.example.com only in the second socket's table: reached only if that table is routed too.
    ir.sockets[0].vhosts = ir.sockets[0].vhosts.filter((v) => v.hostname !== 'api.example.com');
    const { sha256 } = await publish(ir);
    await eventually('the two-address config is live', () => chaperone.state.configHash === sha256);
    assert.deepEqual(chaperone.state.listeners.map((l) => `${l.name}=${l.address}:${l.port}`), [`a10_0_0_1_${PORT}=${POD_IP}:${PORT}`]);
    assert.equal(chaperone.state.varnishdStarts, 1, 'the same listen socket: a VCL reload, no new varnishd');
    assert.equal(await pod('web.example.com'), 'web-0');
    assert.equal(await pod('api.example.com'), 'api-0');
  });

  test('a hostname the two addresses route differently is config-rejected; the last good config keeps serving', async () => {
    const live = chaperone.state.configHash;
    const ir = translateWorld(world).ir;
    // web.example.com to the api backend on the second address only.
    const api = ir.sockets[1].vhosts.find((v) => v.hostname === 'api.example.com');
    const web = ir.sockets[1].vhosts.find((v) => v.hostname === 'web.example.com');
    assert.ok(api && web);
    web.routes = api.routes;
    await publish(ir);
    await eventually('the config is rejected', () => log.lines().some((l) => l.event === 'config-rejected'));
    const rejected = log.lines().find((l) => l.event === 'config-rejected');
    assert.match(String(rejected?.msg), new RegExp(`sockets a10_0_0_1_${PORT} and a10_0_0_2_${PORT} share port ${PORT} but route hostname "web\\.example\\.com" differently`));
    assert.match(chaperone.state.lastError?.message ?? '', /share port/);
    assert.equal(chaperone.state.configHash, live);
    assert.equal(await pod('web.example.com'), 'web-0');
    assert.equal(await pod('api.example.com'), 'api-0');
  });
});
