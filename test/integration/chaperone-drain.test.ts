// `vgw chaperone` as a process: started as a pod would start it, then SIGTERM while slow
// requests are in flight on keep-alive connections. Readiness must drop at once, the requests
// must complete, and the process must exit 0 only after the last client connection closed.
// A second test sends SIGTERM in the middle of a reload (a varnishd restart), which must not
// make the agent ready again.
//
// One connection is kept busy until the agent logs its periodic progress line (every 10 s), so
// that line is covered too; that costs about 11 s and is done once, in the first test. A third
// test keeps one connection busy with requests back to back: the draining agent answers with
// `Connection: close`, varnishd closes the connection after that response, and the agent exits
// without waiting for the client to stop.
//
// Addresses and ports of this file (no other test uses them): gateways 127.0.11.101:18780 and
// 127.0.11.102:18782 (then :18783), backend 127.0.11.111:18781, admin endpoints 127.0.0.1:18790
// and 127.0.0.1:18791; gateway 127.0.94.2:18795 with admin endpoint 127.0.94.1:18794.
import assert from 'node:assert/strict';
import { Agent } from 'node:http';
import { connect } from 'node:net';
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
const GW3 = { namespace: 'edge', name: 'close-gw' };
const LISTEN3 = { address: '127.0.94.2', port: 18795 };
const ADMIN3 = { address: '127.0.94.1', port: 18794 };
const BACKEND = { address: '127.0.11.111', port: 18781 };
const HOST = 'drain.example.com';
const HOST2 = 'restart.example.com';
const HOST3 = 'close.example.com';
const SLOW = 3;
/** Longer than the agent's progress interval (10 s). */
const LONG = 11;

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

interface KeepAliveResponse {
  status: number;
  /** The response's Connection header ('' when absent). */
  connection: string;
  /** performance.now() when the response was complete. */
  at: number;
}

/**
 * A client that sends GET requests one after another on one HTTP/1.1 connection (the next as
 * soon as the previous response is complete, after `pauseMs`) and never closes it itself: it
 * stops only when the server closes the connection. `responses` grows as answers arrive;
 * `closed` resolves with the time the server ended the connection.
 */
function backToBackClient(listen: { address: string; port: number }, host: string, pauseMs = 20): { responses: KeepAliveResponse[]; closed: Promise<{ at: number; unanswered: number }>; stop: () => void } {
  const responses: KeepAliveResponse[] = [];
  const socket = connect(listen.port, listen.address);
  let buffer = Buffer.alloc(0);
  let sent = 0;
  const send = () => {
    sent++;
    socket.write(`GET /keep/${sent} HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
  };
  socket.on('connect', send);
  socket.on('data', (chunk: Buffer) => {
    buffer = Buffer.concat([buffer, chunk]);
    for (;;) {
      const end = buffer.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buffer.subarray(0, end).toString('latin1').split('\r\n');
      const header = (name: string) => head.find((l) => l.toLowerCase().startsWith(`${name}:`))?.slice(name.length + 1).trim() ?? '';
      const length = Number(header('content-length') || '0');
      if (buffer.length < end + 4 + length) return;
      buffer = buffer.subarray(end + 4 + length);
      const r = { status: Number(head[0].split(' ')[1]), connection: header('connection').toLowerCase(), at: performance.now() };
      responses.push(r);
      // A client that honours `Connection: close` sends nothing more on this connection.
      if (r.connection !== 'close') setTimeout(send, pauseMs);
    }
  });
  const closed = new Promise<{ at: number; unanswered: number }>((resolve, reject) => {
    socket.on('end', () => {
      resolve({ at: performance.now(), unanswered: sent - responses.length });
      socket.end();
    });
    socket.on('error', reject);
  });
  return { responses, closed, stop: () => socket.destroy() };
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
    for (const p of [ADMIN, ADMIN2, ADMIN3, LISTEN, LISTEN2, LISTEN2_MOVED, LISTEN3]) assert.equal(await portOpen(p), false, `${p.address}:${p.port} is already in use (another run of this test?)`);
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
    const world3: World = {
      namespaces: [namespace('edge'), namespace('app')],
      classes: [gatewayClass('vgw-drain')],
      gateways: [gateway(GW3.namespace, GW3.name, LISTEN3.address, LISTEN3.port, 'vgw-drain')],
      routes: [httpRoute('app', 'close', GW3, HOST3, 'backend')],
      services: [service('app', 'backend', BACKEND.port)],
    };
    for (const w of [world, world2, world3]) {
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
    const p = await startChaperoneProcess({ server, dir, gateway: gw, admin, pod: 'test-pod', listenAddress: listen.address });
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
    // One more connection that stays open, on a request longer than the agent's 10 s progress
    // interval, until the agent has logged a progress line. (A client sending requests one after
    // another is told to close instead: see the next test.)
    const longAgent = new Agent({ keepAlive: true, maxSockets: 1 });
    const long = get(LISTEN, HOST, `/long?delay=${LONG}s`, longAgent, 60_000);
    await eventually('long request reached the backend', () => backend.requests.slice(slowBefore).some((r) => r.path.startsWith('/long')));

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

    // Waits for the open connection (the long request's) and says so every 10 s.
    await eventually('progress line', () => stdout.some((l) => l.json.event === 'drain-progress'), 30_000, 100).catch((err: Error) => assert.fail(`${err.message}${diagnostics()}`));
    const progress = stdout.find((l) => l.json.event === 'drain-progress');
    assert.ok(Number(progress?.json.remaining) >= 1, `remaining count in ${JSON.stringify(progress?.json)}`);
    assert.match(String(progress?.json.msg), /draining: \d+ client connections open/);
    assert.ok(running(), 'still running while a connection is open');

    const longAnswer = await long.catch((err: Error) => assert.fail(`long request: ${err.message}${diagnostics()}`));
    const lastClosedAt = performance.now();
    assert.equal(longAnswer.status, 200, 'the long request completes during the drain');
    longAgent.destroy();

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

  test('SIGTERM with a client sending requests back to back on one connection: it is told to close, and the agent exits', async (t) => {
    const p = await startReady(GW3, ADMIN3, LISTEN3, HOST3);
    const client = backToBackClient(LISTEN3, HOST3);
    t.after(() => client.stop());
    await eventually('the client is served on its connection', () => client.responses.length >= 3);
    assert.ok(client.responses.every((r) => r.status === 200 && r.connection !== 'close'), 'kept alive while serving');
    p.child.kill('SIGTERM');
    const sigtermAt = performance.now();

    // Without the close the client would hold the pod until its grace period: the agent has no
    // timeout of its own, so exiting at all shows the connection was ended.
    let ended: { at: number; unanswered: number } | Error | undefined;
    client.closed.then((c) => (ended = c), (err: Error) => (ended = err));
    await eventually('the server closed the busy connection', () => ended !== undefined, 60_000, 20).catch((err: Error) => assert.fail(`${err.message}${p.diagnostics()}`));
    const closed = ended as { at: number; unanswered: number } | Error;
    if (closed instanceof Error) assert.fail(`client connection: ${closed.message}${p.diagnostics()}`);
    const exit = await p.exited;
    assert.deepEqual([exit.code, exit.signal], [0, null], `exit status${p.diagnostics()}`);

    const last = client.responses.at(-1);
    assert.ok(last, 'answered');
    assert.deepEqual([last.status, last.connection], [200, 'close'], `the last response says Connection: close${p.diagnostics()}`);
    assert.equal(closed.unanswered, 0, 'the server closed the connection after a complete response, with no request of the client left unanswered');
    assert.ok(client.responses.slice(0, -1).every((r) => r.status === 200 && r.connection !== 'close'), 'only the last response says close: every other one kept the connection');
    assert.ok(closed.at >= last.at, 'closed after that response');

    const at = (event: string) => {
      const line = p.event(event);
      assert.ok(line, `${event} logged${p.diagnostics()}`);
      return line.at;
    };
    const order = ['drain-start', 'drain-vcl-active', 'drain-complete', 'exit'].map(at);
    assert.deepEqual([...order].sort((a, b) => a - b), order, 'drain-start, then the draining VCL, then drain complete, then exit');
    assert.ok(order[0] >= sigtermAt && order[0] <= last.at, 'the close comes after the drain began');
    assert.ok(order[2] >= closed.at, 'drain complete only after the server closed the connection');
    assert.equal(p.lines.filter((l) => l.json.event === 'varnishd-restart').length, 0, 'the draining VCL is a reload, never a restart');
    t.diagnostic(`after SIGTERM: connection closed by the server after ${client.responses.length} responses at ${((closed.at - sigtermAt) / 1000).toFixed(2)} s, exit at ${((exit.at - sigtermAt) / 1000).toFixed(2)} s`);
  });
});
