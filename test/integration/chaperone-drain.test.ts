// `vgw chaperone` as a process: started as a pod would start it, then SIGTERM while slow
// requests are in flight on keep-alive connections. Readiness must drop at once, the requests
// must complete, and the process must exit 0 only after the last client connection closed.
// A second test sends SIGTERM in the middle of a reload (a varnishd restart), which must not
// make the agent ready again.
//
// One connection is kept busy until the agent logs its periodic progress line (every 10 s), so
// that line is covered too; that costs about 11 s and is done once, in the first test.
//
// Addresses and ports of this file (no other test uses them): gateways 127.0.11.101:18780 and
// 127.0.11.102:18782 (then :18783), backend 127.0.11.111:18781, admin endpoints 127.0.0.1:18790
// and 127.0.0.1:18791.
import assert from 'node:assert/strict';
import { Agent } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { EchoServer } from '../../src/echo/server.ts';
import { publishRoutingConfig } from '../../src/operator/publish.ts';
import { startKubeApiServer, type KubeApiServer } from '../support/kube-api-server.ts';
import { portOpen, startChaperoneProcess, type ChaperoneProcess } from './support/chaperone-process.ts';
import {
  endpointSlice,
  eventually,
  gateway,
  gatewayClass,
  get,
  httpRoute,
  kube,
  makeWorkDir,
  namespace,
  gatewayPod,
  removeWorkDir,
  seedWorld,
  servedReport,
  service,
  startBackend,
  translateWorld,
  type Answer,
  type World,
} from './support/chaperone-world.ts';

const GW = { namespace: 'edge', name: 'drain-gw' };
const LISTEN = { address: '127.0.11.101', port: 18780 };
const ADMIN = { address: '127.0.0.1', port: 18790 };
const GW2 = { namespace: 'edge', name: 'restart-gw' };
const LISTEN2 = { address: '127.0.11.102', port: 18782 };
const LISTEN2_MOVED = { address: '127.0.11.102', port: 18783 };
const ADMIN2 = { address: '127.0.0.1', port: 18791 };
const BACKEND = { address: '127.0.11.111', port: 18781 };
const HOST = 'drain.example.com';
const HOST2 = 'restart.example.com';
const SLOW = 3;

/** Polls /healthz every `intervalMs` until the process is gone (or its admin endpoint closed). */
function pollHealth(healthz: () => Promise<Answer>, running: () => boolean, intervalMs = 20): { answers: number[]; done: Promise<void> } {
  const answers: number[] = [];
  const done = (async () => {
    while (running()) {
      try {
        answers.push((await healthz()).status);
      } catch {
        return; // the admin endpoint closed: the process is exiting
      }
      await sleep(intervalMs);
    }
  })();
  return { answers, done };
}

/**
 * Readiness drops at once and never comes back. The first poll, sent in the same instant as the
 * signal, may still be answered 200: the agent's event loop can see that request before the
 * signal (both arrive together when the machine is busy). Every later poll is sent after the
 * agent answered one, that is after it ran and took the signal, so it must be 503.
 */
function assertNotReadyAtOnce(answers: number[], diagnostics: () => string): void {
  const first503 = answers.indexOf(503);
  assert.ok(first503 >= 0 && first503 <= 1, `503 from the first or second poll after SIGTERM: ${answers.join(',')}${diagnostics()}`);
  assert.ok(answers.slice(first503).every((s) => s === 503), `never ready again once draining: ${answers.join(',')}${diagnostics()}`);
}

describe('vgw chaperone: SIGTERM drains connections, then exits 0', () => {
  let server: KubeApiServer;
  let dir = '';
  let backend: EchoServer;
  const procs: ChaperoneProcess[] = [];
  const world2: World = {
    namespaces: [namespace('edge'), namespace('app')],
    classes: [gatewayClass('vgw-drain')],
    gateways: [gateway(GW2.namespace, GW2.name, LISTEN2.address, LISTEN2.port, 'vgw-drain')],
    routes: [httpRoute('app', 'restart', GW2, HOST2, 'backend')],
    services: [service('app', 'backend', BACKEND.port)],
  };

  before(async () => {
    // A leftover or concurrent run would answer in our place: make that obvious.
    for (const p of [ADMIN, ADMIN2, LISTEN, LISTEN2, LISTEN2_MOVED]) assert.equal(await portOpen(p), false, `${p.address}:${p.port} is already in use (another run of this test?)`);
    server = await startKubeApiServer();
    dir = await makeWorkDir('vgw-chaperone-drain-');
    backend = await startBackend(BACKEND.address, BACKEND.port, 'drain-backend-0');
    const world: World = {
      namespaces: [namespace('edge'), namespace('app')],
      classes: [gatewayClass('vgw-drain')],
      gateways: [gateway(GW.namespace, GW.name, LISTEN.address, LISTEN.port, 'vgw-drain')],
      routes: [httpRoute('app', 'drain', GW, HOST, 'backend')],
      services: [service('app', 'backend', BACKEND.port)],
    };
    for (const w of [world, world2]) {
      const translated = seedWorld(server, w);
      await publishRoutingConfig(server.kubeConfig(), w.gateways[0].metadata.namespace as string, w.gateways[0].metadata.name, translated.ir);
      // The agent annotates its own Pod with the config it serves.
      server.set(gatewayPod(w.gateways[0].metadata.namespace as string, 'test-pod'));
    }
    server.set(kube(endpointSlice('app', 'backend', 'backend-1', [BACKEND.address], BACKEND.port)));
  });

  after(async () => {
    for (const p of procs) await p.kill();
    await backend?.close();
    await server?.close();
    await removeWorkDir(dir);
  });

  /** Starts the agent for `gw` and waits until it is ready and serving `host`. */
  const startReady = async (gw: { namespace: string; name: string }, admin: typeof ADMIN, listen: typeof LISTEN, host: string): Promise<ChaperoneProcess> => {
    const p = await startChaperoneProcess({ server, dir, gateway: gw, admin, pod: 'test-pod' });
    procs.push(p);
    // Starting: not ready until a config is live.
    await eventually('healthz 200', async () => !p.running() || (await get(admin, 'admin', '/healthz')).status === 200, 60_000, 50).catch((err: Error) =>
      assert.fail(`${err.message}${p.diagnostics()}`),
    );
    assert.ok(p.running(), `vgw chaperone exited during start-up${p.diagnostics()}`);
    const first = await get(listen, host, '/hello');
    assert.deepEqual([first.status, first.pod], [200, 'drain-backend-0'], `first answer through the gateway${p.diagnostics()}`);
    return p;
  };

  test('ready, then SIGTERM: 503 at once, in-flight requests complete, exit 0 after the last connection closes', async (t) => {
    const p = await startReady(GW, ADMIN, LISTEN, HOST);
    const { child, diagnostics, running, exited } = p;
    const stdout = p.lines;
    const healthz = () => get(ADMIN, 'admin', '/healthz');
    const local = p.metricsEndpoint();
    assert.ok(local, `the agent logs where /status and /metrics listen${diagnostics()}`);
    const status = JSON.parse(await fetch(`http://${local.address}:${local.port}/status`).then((r) => r.text())) as { phase: string; ready: boolean; configHash?: string };
    assert.deepEqual([status.phase, status.ready], ['serving', true]);
    await eventually('test-pod reports the config it serves', () => servedReport(server.get({ apiVersion: 'v1', kind: 'Pod', namespace: GW.namespace, name: 'test-pod' }))?.sha256 === status.configHash);

    // Slow requests, each on its own keep-alive connection, in flight at the backend.
    const slowAgents = [0, 1, 2].map(() => new Agent({ keepAlive: true, maxSockets: 1 }));
    const slowBefore = backend.requests.length;
    const slow: Promise<Answer>[] = slowAgents.map((agent, i) => get(LISTEN, HOST, `/slow/${i}?delay=${SLOW}s`, agent, 30_000));
    await eventually('slow requests reached the backend', () => backend.requests.slice(slowBefore).filter((r) => r.path.startsWith('/slow/')).length === 3);
    // One more connection that stays busy (a quick request every 500 ms, well under varnishd's
    // 5 s idle timeout) until the agent has logged a progress line.
    const busyAgent = new Agent({ keepAlive: true, maxSockets: 1 });
    const busyAnswers: number[] = [];
    let busy = true;
    const busyLoop = (async () => {
      while (busy) {
        busyAnswers.push((await get(LISTEN, HOST, '/busy', busyAgent)).status);
        await sleep(500);
      }
    })();
    await eventually('busy connection used', () => busyAnswers.length > 0);

    let slowDone = false;
    void Promise.allSettled(slow).then(() => (slowDone = true));
    child.kill('SIGTERM');
    const sigtermAt = performance.now();
    // Readiness, polled from the moment SIGTERM is sent until the process is gone.
    const health = pollHealth(healthz, running);
    await eventually('healthz 503 after SIGTERM', () => health.answers.includes(503), 10_000, 2);
    assert.equal(slowDone, false, 'not ready while the in-flight requests still run: at once, not at the end of the drain');
    assertNotReadyAtOnce(health.answers, diagnostics);
    const metrics = await fetch(`http://${local.address}:${local.port}/metrics`).then((r) => r.text());
    assert.match(metrics, /^vgw_draining 1$/m);

    const answers = await Promise.all(slow).catch((err: Error) => assert.fail(`slow requests: ${err.message}${diagnostics()}`));
    assert.deepEqual(answers.map((a) => a.status), [200, 200, 200], 'in-flight requests complete');
    assert.deepEqual(answers.map((a) => a.pod), ['drain-backend-0', 'drain-backend-0', 'drain-backend-0']);
    assert.ok(running(), 'still running: a client connection is open');
    for (const a of slowAgents) a.destroy();

    // Waits for the open connection (the busy one) and says so every 10 s.
    await eventually('progress line', () => stdout.some((l) => l.json.event === 'drain-progress'), 30_000, 100).catch((err: Error) => assert.fail(`${err.message}${diagnostics()}`));
    const progress = stdout.find((l) => l.json.event === 'drain-progress');
    assert.ok(Number(progress?.json.remaining) >= 1, `remaining count in ${JSON.stringify(progress?.json)}`);
    assert.match(String(progress?.json.msg), /draining: \d+ client connections open/);
    assert.ok(running(), 'still running while a connection is open');

    busy = false;
    await busyLoop;
    assert.ok(busyAnswers.every((s) => s === 200), `the open connection kept being served while draining: ${busyAnswers.join(',')}`);
    assert.ok(running(), 'still running just before the last connection closes');
    const lastClosedAt = performance.now();
    busyAgent.destroy();

    const exit = await exited;
    assert.deepEqual([exit.code, exit.signal], [0, null], `exit status${diagnostics()}`);
    assert.ok(exit.at > lastClosedAt);
    await health.done;
    assertNotReadyAtOnce(health.answers, diagnostics);
    assert.ok(health.answers.length > 10, 'readiness polled throughout the drain');

    const rel = (at: number) => `${((at - sigtermAt) / 1000).toFixed(2)} s`;
    t.diagnostic(
      `after SIGTERM: ${stdout.filter((l) => l.at >= sigtermAt).map((l) => `${rel(l.at)} ${JSON.stringify(l.json.event ?? l.json.msg)}`).join(', ')}; last connection closed ${rel(lastClosedAt)}, exit ${rel(exit.at)}`,
    );
    const byMsg = (msg: string) => stdout.find((l) => l.json.msg === msg);
    const start = byMsg('starting connection draining');
    const complete = byMsg('drain complete');
    assert.ok(start, `"starting connection draining" logged${diagnostics()}`);
    assert.ok(complete, `"drain complete" logged${diagnostics()}`);
    assert.equal(start.json.event, 'drain-start');
    assert.equal(complete.json.event, 'drain-complete');
    assert.ok(start.at >= sigtermAt && complete.at > lastClosedAt, 'drain complete only after the last connection closed');
    assert.ok(stdout.some((l) => l.json.event === 'exit'), 'exit logged');

    // varnishd went with it: nothing listens on the gateway address, no process is left in the group.
    assert.equal(await portOpen(LISTEN), false, 'nothing listens on the gateway address any more');
    assert.equal(await portOpen(ADMIN), false, 'nor on the admin address');
    await eventually('no process left in the chaperone’s group', p.groupGone, 10_000, 50);
  });

  test('SIGTERM while a reload is in progress: /healthz stays 503 until the process is gone', async () => {
    const p = await startReady(GW2, ADMIN2, LISTEN2, HOST2);
    // A listener change makes the next config a varnishd restart: slow enough to send SIGTERM
    // in the middle of it (the agent logs "varnishd-restart" when it begins).
    world2.gateways[0].spec.listeners[0].port = LISTEN2_MOVED.port;
    const { ir } = translateWorld(world2);
    await publishRoutingConfig(server.kubeConfig(), GW2.namespace, GW2.name, ir);
    await eventually('restart begun', () => p.event('varnishd-restart') !== undefined, 20_000, 2).catch((err: Error) => assert.fail(`${err.message}${p.diagnostics()}`));
    p.child.kill('SIGTERM');
    const sigtermAt = performance.now();
    const health = pollHealth(() => get(ADMIN2, 'admin', '/healthz', false, 2_000), p.running, 10);
    await health.done;
    const answers = health.answers;
    const exit = await p.exited;
    assert.deepEqual([exit.code, exit.signal], [0, null], `exit status${p.diagnostics()}`);
    const restarted = p.lines.filter((l) => l.json.event === 'varnishd-started').at(-1);
    assert.ok(restarted && restarted.at > sigtermAt, `the restart was still in progress at SIGTERM${p.diagnostics()}`);
    assert.ok(answers.includes(503), `healthz answers after SIGTERM: ${answers.join(',')}${p.diagnostics()}`);
    assertNotReadyAtOnce(answers, p.diagnostics);
    assert.ok(p.event('drain-complete'));
  });
});
