// The data plane's process tree and listen sockets: a port another process holds is reported
// and retried without disturbing the rest; a control plane killed with SIGKILL takes varnishd
// and varnishlog with it; a varnishd left in a work directory is stopped by the next run there.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import { startEchoServer, type EchoServer } from '../../src/echo/server.ts';
import { startAdminServer } from '../../src/standalone/admin.ts';
import { VARNISHD_DIR } from '../../src/runtime/data-plane.ts';
import { StandaloneServer } from '../../src/standalone/server.ts';
import { silentLogger } from '../../src/util/log.ts';
import { isLiveProcessOf, processesOf, readPidFile } from '../../src/varnish/lifeline.ts';
import { SEMI_SPACE_FLAG } from '../../src/cli/heap-tuning.ts';
import { getText } from './support/http.ts';
import { GATEWAY_CLASS, httpGateway, loopbackService, yamlDocs } from './support/manifests.ts';
import { eventually } from './support/poll.ts';
import { portOpen } from './support/chaperone-process.ts';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const NS = 'app';

function route(name: string, host: string, sectionName: string, extra: object = {}): object {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name, namespace: NS },
    spec: { parentRefs: [{ name: 'gw', sectionName }], hostnames: [host], rules: [{ backendRefs: [{ name: 'svc', port: 80 }], ...extra }] },
  };
}

function listen(address: string, port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const srv = createServer((s) => s.destroy());
    srv.once('error', reject);
    srv.listen(port, address, () => resolve(srv));
  });
}

type Condition = { type: string; status: string; reason: string };
type ListenerStatus = { name: string; conditions: Condition[] };

function listenerCondition(gateways: unknown, listener: string, type: string): Condition | undefined {
  const gw = (gateways as { status: { listeners: ListenerStatus[] } }[] | undefined)?.[0];
  return gw?.status.listeners.find((l) => l.name === listener)?.conditions.find((c) => c.type === type);
}

async function comm(pid: number): Promise<string> {
  return (await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '')).trim();
}

describe('listen sockets and the process tree', { concurrency: true }, () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  });

  async function tempDir(prefix: string): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), prefix));
    await chmod(dir, 0o755);
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    return dir;
  }

  async function echo(): Promise<EchoServer> {
    const e = await startEchoServer({ port: 0, pod: 'svc-1', namespace: NS });
    cleanups.push(() => e.close());
    return e;
  }

  test('a busy port is reported PortUnavailable, the rest serves and changes without a restart, and it goes live once freed', async () => {
    const address = '127.0.25.1';
    const busyPort = 18251;
    const freePort = 18252;
    const backend = await echo();
    const dir = await tempDir('vgw-busy-');
    const blocker = await listen(address, busyPort);
    let blockerOpen = true;
    cleanups.push(async () => blockerOpen && new Promise((r) => blocker.close(r)));
    const svc = loopbackService(NS, 'svc', Number(new URL(backend.url).port));
    await writeFile(
      join(dir, 'gw.yaml'),
      yamlDocs([GATEWAY_CLASS, httpGateway(NS, address, [{ name: 'busy', port: busyPort }, { name: 'free', port: freePort }]), ...svc]),
    );
    await writeFile(join(dir, 'routes.yaml'), yamlDocs([route('on-busy', 'busy.example.com', 'busy'), route('on-free', 'free.example.com', 'free')]));
    const server = new StandaloneServer({ dir, workDir: join(dir, 'work'), defaultAddress: address, logger: silentLogger(), portRetry: { initialMs: 100, maxMs: 400 } });
    cleanups.push(() => server.stop());
    await server.start();

    await eventually('the free listener serves', async () => (await getText(freePort, '/', 'free.example.com', address)).status === 200);
    const accepted = listenerCondition(server.state.gateways, 'busy', 'Accepted');
    assert.deepEqual([accepted?.status, accepted?.reason], ['False', 'PortUnavailable']);
    const programmed = listenerCondition(server.state.gateways, 'busy', 'Programmed');
    assert.deepEqual([programmed?.status, programmed?.reason], ['False', 'Pending']);
    assert.equal(listenerCondition(server.state.gateways, 'free', 'Programmed')?.status, 'True');
    assert.deepEqual(server.state.unavailableSockets?.map((s) => `${s.address}:${s.port}`), [`${address}:${busyPort}`]);

    const admin = await startAdminServer(address, 0, () => server.state);
    cleanups.push(() => new Promise((r) => admin.close(r)));
    const adminPort = (admin.address() as { port: number }).port;
    const status = JSON.parse((await getText(adminPort, '/status', 'localhost', address)).body) as { gateways: unknown; unavailableSockets: unknown[] };
    assert.equal(listenerCondition(status.gateways, 'busy', 'Accepted')?.reason, 'PortUnavailable');
    assert.equal(status.unavailableSockets.length, 1);

    // An unrelated change is a VCL reload: same varnishd, no new start.
    const pid = server.varnish?.pid;
    const starts = server.state.varnishdStarts;
    assert.ok(pid);
    await writeFile(join(dir, 'more.yaml'), yamlDocs([route('on-free-2', 'free2.example.com', 'free')]));
    await eventually('the new route serves', async () => (await getText(freePort, '/', 'free2.example.com', address)).status === 200);
    assert.equal(server.varnish?.pid, pid, 'varnishd was restarted');
    assert.equal(server.state.varnishdStarts, starts);

    await new Promise((r) => blocker.close(r));
    blockerOpen = false;
    await eventually('the freed port serves', async () => (await getText(busyPort, '/', 'busy.example.com', address)).status === 200);
    await eventually('the listener is programmed', () => listenerCondition(server.state.gateways, 'busy', 'Programmed')?.status === 'True');
    assert.deepEqual(server.state.unavailableSockets, []);
    assert.equal((await getText(freePort, '/', 'free.example.com', address)).status, 200);
  });

  test('SIGKILL of vgw serve (restarted with its heap settings, same PID) takes varnishd and varnishlog with it', async () => {
    const address = '127.0.25.2';
    const port = 18253;
    const backend = await echo();
    const dir = await tempDir('vgw-orphan-');
    const work = join(dir, 'work');
    const svc = loopbackService(NS, 'svc', Number(new URL(backend.url).port));
    // A header filter makes the records reader (varnishlog) run.
    const filter = { filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier: { add: [{ name: 'x-a', value: 'b' }] } }] };
    await mkdir(join(dir, 'm'));
    await writeFile(join(dir, 'm', 'gw.yaml'), yamlDocs([GATEWAY_CLASS, httpGateway(NS, address, port), ...svc, route('r', 'a.example.com', 'http', filter)]));
    const child = spawn(process.execPath, [MAIN, 'serve', join(dir, 'm'), '--work-dir', work, '--admin-port', '0', '--admin-address', address], {
      stdio: ['ignore', 'ignore', 'pipe'],
      detached: true,
    });
    let stderr = '';
    child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise((r) => child.once('exit', r));
    cleanups.push(async () => {
      try {
        process.kill(-(child.pid as number), 'SIGKILL');
      } catch {
        /* gone */
      }
    });
    const instanceDir = join(work, VARNISHD_DIR, 'varnish');
    let tree: number[] = [];
    await eventually(`varnishd and varnishlog running${stderr}`, async () => {
      tree = await processesOf(instanceDir);
      const names = await Promise.all(tree.map(comm));
      return (await portOpen({ address, port })) && names.includes('varnishd') && names.includes('varnishlog');
    }, 30_000);
    // serve started itself again, under the same PID, with its young-generation limit (heap-tuning.ts).
    const cmdline = (await readFile(`/proc/${child.pid}/cmdline`, 'utf8')).split('\0');
    assert.ok(cmdline.includes(SEMI_SPACE_FLAG), `serve runs as ${cmdline.join(' ')}`);
    process.kill(child.pid as number, 'SIGKILL');
    await exited;
    let left: string[] = [];
    await eventually(`no process of the tree left (${left.join('; ')})`, async () => {
      const pids = await processesOf(instanceDir);
      left = await Promise.all(pids.map(async (p) => `${p} ${await comm(p)}`));
      return pids.length === 0;
    }, 20_000).catch((err: Error) => assert.fail(`${err.message}: ${left.join('; ')}`));
    assert.equal(await portOpen({ address, port }), false);
  });

  test('a varnishd left in the work directory is stopped by the next run, which binds its port', async () => {
    const address = '127.0.25.3';
    const port = 18254;
    const backend = await echo();
    const dir = await tempDir('vgw-leftover-');
    const work = join(dir, 'work');
    const leftoverDir = join(work, VARNISHD_DIR);
    await mkdir(leftoverDir, { recursive: true });
    await chmod(work, 0o755);
    await chmod(leftoverDir, 0o755);
    const vclPath = join(leftoverDir, 'boot.vcl');
    await writeFile(vclPath, 'vcl 4.1;\nbackend default none;\nsub vcl_recv { return (synth(299)); }\n', { mode: 0o644 });
    const instanceDir = join(leftoverDir, 'varnish');
    const pidFile = join(leftoverDir, 'varnishd.pid');
    // Started through a shell that exits at once: the varnishd is nobody's child of ours.
    const args = ['-F', '-n', instanceDir, '-P', pidFile, '-f', vclPath, '-a', `${address}:${port}`, '-T', '127.0.0.1:0', '-s', 'malloc,16m', '-p', 'cc_command=exec tcc -shared -o %o %s'];
    spawn('sh', ['-c', 'varnishd "$@" </dev/null >/dev/null 2>&1 &', 'sh', ...args], { stdio: 'ignore' });
    let leftover = 0;
    await eventually('the leftover varnishd serves', async () => {
      leftover = (await readPidFile(pidFile)) ?? 0;
      return leftover > 0 && (await getText(port, '/', 'a.example.com', address)).status === 299;
    }, 30_000);
    cleanups.push(async () => (await isLiveProcessOf(leftover, instanceDir)) && process.kill(leftover, 'SIGKILL'));

    await mkdir(join(dir, 'm'));
    const svc = loopbackService(NS, 'svc', Number(new URL(backend.url).port));
    await writeFile(join(dir, 'm', 'gw.yaml'), yamlDocs([GATEWAY_CLASS, httpGateway(NS, address, port), ...svc, route('r', 'a.example.com', 'http')]));
    const server = new StandaloneServer({ dir: join(dir, 'm'), workDir: work, defaultAddress: address, logger: silentLogger() });
    cleanups.push(() => server.stop());
    await server.start();
    assert.equal(await isLiveProcessOf(leftover, instanceDir), false, 'the leftover varnishd still runs');
    await eventually('our varnishd serves the port', async () => (await getText(port, '/', 'a.example.com', address)).status === 200);
    assert.deepEqual(server.state.unavailableSockets ?? [], []);
  });
});
