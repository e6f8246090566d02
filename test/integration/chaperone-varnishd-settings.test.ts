// The varnishd settings of a GatewayClassParameters object, end to end: rendered into the
// Deployment's `vgw chaperone` flags by the operator, parsed by the agent's flag parser, and
// in effect in the varnishd the agent runs (the Chaperone class in this process, the Kubernetes
// API test server, a real varnishd). Also the shared-memory directory the logging sidecar
// reads: stable across a varnishd restart, so a reader started once keeps following it.
//
// Addresses and ports of this file (no other test uses them): gateway 127.0.34.1 ports 18780
// and 18781, backend 127.0.34.11 port 18782.
import assert from 'node:assert/strict';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import type { KubeConfig } from '@kubernetes/client-node';
import { Chaperone } from '../../src/chaperone/agent.ts';
import { parseChaperoneArgs, varnishdSettings } from '../../src/cli/chaperone.ts';
import type { EchoServer } from '../../src/echo/server.ts';
import { MAX_RETRY_ATTEMPTS } from '../../src/ir/limits.ts';
import { renderInfrastructure, VSM_DIR, WORK_DIR } from '../../src/operator/infrastructure.ts';
import { parseParameters } from '../../src/operator/parameters.ts';
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

const execFileP = promisify(execFile);
const GW = { namespace: 'infra', name: 'gw' };
const ADDRESS = '127.0.34.1';
const PORT = 18780;
const NEW_PORT = 18781;
const BACKEND = { address: '127.0.34.11', port: 18782 };
const STORAGE_BYTES = 48 * 2 ** 20;

/** The agent's flags as the operator renders them for these parameters. */
function renderedFlags(): string[] {
  const parsed = parseParameters({
    apiVersion: 'gateway.vgw.dev/v1alpha1',
    kind: 'GatewayClassParameters',
    metadata: { name: 'tuned' },
    spec: {
      varnish: {
        storageSize: '48Mi',
        // max_retries is the gateway's own: it must stay MAX_RETRY_ATTEMPTS.
        parameters: { thread_pool_min: '12', max_retries: '1' },
        extraArgs: ['-t', '77', '-p', 'thread_pool_max=600'],
      },
    },
  });
  assert.ok(parsed.ok, parsed.ok ? '' : parsed.error);
  const infra = renderInfrastructure({ ...GW, uid: 'u-1' }, { listeners: [], addresses: [], labels: {}, annotations: {} }, parsed.value.spec, { defaultImage: 'vgw:test' });
  // $(POD_IP) as the kubelet expands it.
  return (infra.deployment.spec?.template.spec?.containers[0].args ?? []).map((a) => a.replaceAll('$(POD_IP)', ADDRESS));
}

/** `param.show NAME` value (the first "Value is:" line). */
async function paramValue(chaperone: Chaperone, name: string): Promise<string> {
  const body = await (chaperone.varnish as NonNullable<Chaperone['varnish']>).cli.expectOk(['param.show', name]);
  const m = /Value is:\s*(\S+)/.exec(body);
  assert.ok(m, body);
  return m[1];
}

describe('chaperone varnishd settings and stable shared memory (test API server, real varnishd)', () => {
  let server: KubeApiServer;
  let kc: KubeConfig;
  let workDir = '';
  let chaperone: Chaperone;
  let backend: EchoServer;
  let world: World;
  let sidecar: ChildProcess | null = null;
  let sidecarOut = '';

  before(async () => {
    server = await startKubeApiServer();
    kc = server.kubeConfig();
    workDir = await makeWorkDir('vgw-chaperone-settings-');
    backend = await startBackend(BACKEND.address, BACKEND.port, 'web-0');
    world = {
      namespaces: ['infra', 'app'].map(namespace),
      classes: [gatewayClass()],
      gateways: [gateway(GW.namespace, GW.name, ADDRESS, PORT)],
      routes: [httpRoute('app', 'web', GW, 'web.example.com', 'web')],
      services: [service('app', 'web', BACKEND.port)],
    };
    const translated = seedWorld(server, world);
    server.set(kube(endpointSlice('app', 'web', 'web-abc12', [BACKEND.address], BACKEND.port)));
    await publishRoutingConfig(kc, GW.namespace, GW.name, translated.ir);

    const args = parseChaperoneArgs(renderedFlags(), {});
    assert.equal(args['work-dir'], WORK_DIR, 'the rendered work dir (replaced by a temporary one here)');
    chaperone = new Chaperone({
      kubeConfig: kc,
      namespace: GW.namespace,
      gateway: GW.name,
      podName: 'gw-0',
      workDir,
      logger: memoryLogger().logger,
      reportRouteStatus: false,
      ...varnishdSettings(args),
    });
    const started = chaperone.start();
    await chaperone.waitReady();
    await started;
  });

  after(async () => {
    if (sidecar && sidecar.exitCode === null) sidecar.kill('SIGTERM');
    await chaperone?.stop();
    await backend?.close();
    await server?.close();
    await removeWorkDir(workDir);
  });

  test('parameters and options from the flags are in effect; the gateway keeps its own parameters', async () => {
    assert.equal(await paramValue(chaperone, 'thread_pool_min'), '12');
    assert.equal(await paramValue(chaperone, 'thread_pool_max'), '600', '-p among the extra options');
    assert.match(await paramValue(chaperone, 'default_ttl'), /^77(\.000)?$/, '-t');
    assert.equal(await paramValue(chaperone, 'max_retries'), String(MAX_RETRY_ATTEMPTS), 'the gateway parameter wins over the class setting');
    assert.equal(await paramValue(chaperone, 'vcc_allow_inline_c'), 'off');
  });

  test('the malloc storage has the size of the flag', async () => {
    const stats = await (chaperone.varnish as NonNullable<Chaperone['varnish']>).stats();
    const space = stats.counters['SMA.s0.g_space']?.value ?? -1;
    const used = stats.counters['SMA.s0.g_bytes']?.value ?? -1;
    assert.equal(space + used, STORAGE_BYTES);
  });

  test('the shared memory is at the stable path the sidecar reads, and a reader there follows a varnishd restart', async () => {
    const vsm = join(workDir, VSM_DIR.slice(WORK_DIR.length + 1));
    assert.equal(chaperone.varnish?.instanceDir, vsm);
    const { stdout } = await execFileP('varnishstat', ['-n', vsm, '-1', '-f', 'MAIN.uptime']);
    assert.match(stdout, /MAIN\.uptime\s+\d+/);

    // The sidecar's command line, started once.
    sidecar = spawn('varnishncsa', ['-n', vsm, '-t', 'off', '-F', '%U'], { stdio: ['ignore', 'pipe', 'pipe'] });
    sidecar.stdout?.on('data', (d: Buffer) => (sidecarOut += d.toString()));
    await eventually('the sidecar logs a request', async () => {
      await get({ address: ADDRESS, port: PORT }, 'web.example.com', '/before-restart');
      return sidecarOut.includes('/before-restart');
    });

    // A listener port change: the only thing that makes the agent start a new varnishd.
    const firstPid = chaperone.varnish?.pid;
    world.gateways = [gateway(GW.namespace, GW.name, ADDRESS, NEW_PORT)];
    await publishRoutingConfig(kc, GW.namespace, GW.name, translateWorld(world).ir);
    await eventually('varnishd restarted on the new port', () => chaperone.state.listeners.some((l) => l.port === NEW_PORT) && chaperone.varnish?.running === true);
    assert.notEqual(chaperone.varnish?.pid, firstPid, 'a new varnishd');
    assert.equal(chaperone.state.varnishdStarts, 2);
    assert.equal(chaperone.varnish?.instanceDir, vsm, 'the same shared-memory directory');
    assert.equal(await paramValue(chaperone, 'thread_pool_min'), '12', 'the settings hold for every varnishd');
    await eventually('the sidecar started before the restart logs a request after it', async () => {
      await get({ address: ADDRESS, port: NEW_PORT }, 'web.example.com', '/after-restart');
      return sidecarOut.includes('/after-restart');
    });
  });
});
