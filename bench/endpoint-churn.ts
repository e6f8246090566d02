// Endpoint churn through the in-pod agent. `vgw chaperone` runs as its own process against the
// Kubernetes API test server (test/support/kube-api-server.ts, in this process), with a routing
// config published the way the operator does; echo backends run as `vgw echo` processes.
//
// (a) Endpoint change to traffic: the Service's one endpoint is moved to the other backend by
//     writing its EndpointSlice, and the gateway is polled every 5 ms on one keep-alive
//     connection until the new backend answers. 20 changes, 100 ms apart.
// (b) Sustained churn: one EndpointSlice change every 50 ms for 20 s (each a different set of
//     2-3 of 4 running backends) while 4 keep-alive connections send requests back to back.
//     How many reloads the agent actually did (it coalesces changes that arrive during a
//     reload), failed requests (must be 0) and request latency.
import { Agent } from 'node:http';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { translate } from '../src/gatewayapi/translator.ts';
import { emptySnapshot, type EndpointSlice, type Gateway, type GatewayClass, type HTTPRoute, type Service } from '../src/gatewayapi/types.ts';
import { publishRoutingConfig } from '../src/operator/publish.ts';
import { startKubeApiServer, type KubeApiServer, type KubeObject } from '../test/support/kube-api-server.ts';
import { CONTROLLER_NAME } from './lib/manifests.ts';
import { httpGet, ManagedProcess, startEcho, waitFor, waitForQuietMachine, type EchoBackend } from './lib/procs.ts';
import { fmt, machineInfo, saveSection, stats, table } from './lib/report.ts';

const NS = 'bench';
const GW_NAME = 'churn-gw';
const HOST = 'churn.bench.test';
const GATEWAY = { address: '127.0.13.1', port: 18880 };
const BACKEND_PORT = 18881;
const BACKENDS = 4;
const backendAddress = (i: number) => `127.0.13.${11 + i}`;
const podName = (i: number) => `churn-echo-${i}`;
const ADMIN_PORT = 18890;

const A_CHANGES = 20;
const A_POLL_MS = 5;
const A_SETTLE_MS = 100;
const A_TIMEOUT_MS = 30_000;
const B_INTERVAL_MS = 50;
const B_DURATION_S = 20;
const B_CONCURRENCY = 4;

interface Change {
  ms: number;
  polls: number;
  /** /status lastReload after the change: varnishd's share. */
  compileMs?: number;
  reloadTotalMs?: number;
  /** Configs that went live for this change (1 = no wasted reload). */
  generations: number;
}

interface ChurnResult {
  durationS: number;
  changesWritten: number;
  reloads: number;
  reloadsPerS: number;
  changesPerReload: number;
  requests: number;
  failed: number;
  byStatus: Record<string, number>;
  latencyMs: { p50: number; p99: number; max: number; mean: number };
  backendsServed: Record<string, number>;
}

interface AgentStatus {
  ready: boolean;
  phase: string;
  generation: number;
  endpoints: number;
  lastReload?: { compileMs?: number; totalMs?: number; status: string };
  lastError?: { message: string };
}

function slice(addresses: string[]): KubeObject {
  const s: EndpointSlice = {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: 'echo-churn', namespace: NS, labels: { 'kubernetes.io/service-name': 'echo' } },
    addressType: 'IPv4',
    ports: [{ name: 'http', port: BACKEND_PORT, protocol: 'TCP' }],
    endpoints: addresses.map((a) => ({ addresses: [a], conditions: { ready: true } })),
  };
  return s as unknown as KubeObject;
}

async function setup(server: KubeApiServer): Promise<void> {
  const gc: GatewayClass = { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'GatewayClass', metadata: { name: 'vgw-churn' }, spec: { controllerName: CONTROLLER_NAME } };
  const gw: Gateway = {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'Gateway',
    metadata: { name: GW_NAME, namespace: NS, generation: 1 },
    spec: { gatewayClassName: 'vgw-churn', addresses: [{ type: 'IPAddress', value: GATEWAY.address }], listeners: [{ name: 'http', protocol: 'HTTP', port: GATEWAY.port }] },
  };
  const svc: Service = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'echo', namespace: NS }, spec: { ports: [{ name: 'http', port: 8080, targetPort: BACKEND_PORT }] } };
  const route: HTTPRoute = {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: 'churn', namespace: NS, generation: 1 },
    spec: { parentRefs: [{ name: GW_NAME }], hostnames: [HOST], rules: [{ backendRefs: [{ name: 'echo', port: 8080 }] }] },
  };
  const snapshot = emptySnapshot();
  snapshot.gatewayClasses = [gc];
  snapshot.gateways = [gw];
  snapshot.services = [svc];
  snapshot.httpRoutes = [route];
  const { ir, problems } = translate(snapshot, { defaultAddress: '127.0.0.1', now: new Date().toISOString() });
  if (problems.length) throw new Error(`bench objects not accepted: ${JSON.stringify(problems)}`);
  for (const o of [gc, gw, svc, route]) server.set(o as unknown as KubeObject);
  server.set(slice([backendAddress(0)]));
  await publishRoutingConfig(server.kubeConfig(), NS, GW_NAME, ir);
}

async function agentStatus(): Promise<AgentStatus> {
  const r = await httpGet(`http://127.0.0.1:${ADMIN_PORT}/status`);
  if (r.status !== 200) throw new Error(`/status answered ${r.status}`);
  return JSON.parse(r.body) as AgentStatus;
}

/** One GET through the gateway: status, serving pod, milliseconds. */
async function hit(agent: Agent, path = '/'): Promise<{ status: string; pod: string; ms: number }> {
  const t0 = performance.now();
  try {
    const r = await httpGet(`http://${GATEWAY.address}:${GATEWAY.port}${path}`, { host: HOST, agent, timeoutMs: 10_000 });
    let pod = '';
    if (r.status === 200) pod = String((JSON.parse(r.body) as { pod?: string }).pod ?? '');
    return { status: String(r.status), pod, ms: performance.now() - t0 };
  } catch (err) {
    return { status: `error (${(err as Error).message})`, pod: '', ms: performance.now() - t0 };
  }
}

async function changeToTraffic(server: KubeApiServer): Promise<{ changes: Change[]; byStatus: Record<string, number> }> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const byStatus = new Map<string, number>();
  const changes: Change[] = [];
  let current = 0;
  try {
    for (let k = 0; k < A_CHANGES; k++) {
      const next = current === 0 ? 1 : 0;
      const before = await agentStatus();
      const t0 = performance.now();
      server.set(slice([backendAddress(next)]));
      let polls = 0;
      for (let due = t0; ; ) {
        const r = await hit(agent, '/a');
        polls++;
        byStatus.set(r.status, (byStatus.get(r.status) ?? 0) + 1);
        if (r.pod === podName(next)) break;
        const now = performance.now();
        if (now - t0 > A_TIMEOUT_MS) throw new Error(`${podName(next)} did not answer within ${A_TIMEOUT_MS} ms`);
        due += A_POLL_MS;
        if (due > now) await sleep(due - now);
        else due = now;
      }
      const ms = performance.now() - t0;
      await sleep(A_SETTLE_MS);
      const after = await agentStatus();
      const c: Change = { ms, polls, compileMs: after.lastReload?.compileMs, reloadTotalMs: after.lastReload?.totalMs, generations: after.generation - before.generation };
      changes.push(c);
      console.log(`  change ${k + 1}: ${podName(current)} -> ${podName(next)}: ${fmt(ms)} ms, ${polls} polls, reload ${fmt(c.reloadTotalMs)} ms (vcl.inline ${fmt(c.compileMs)} ms)`);
      current = next;
    }
  } finally {
    agent.destroy();
  }
  server.set(slice([backendAddress(0)]));
  return { changes, byStatus: Object.fromEntries(byStatus) };
}

/** The endpoint sets cycled through in (b): every set of 2 or 3 of the 4 backends. */
function churnSets(): string[][] {
  const sets: string[][] = [];
  for (let mask = 1; mask < 1 << BACKENDS; mask++) {
    const members = [...Array(BACKENDS).keys()].filter((i) => mask & (1 << i));
    if (members.length === 2 || members.length === 3) sets.push(members.map(backendAddress));
  }
  return sets;
}

async function sustainedChurn(server: KubeApiServer): Promise<ChurnResult> {
  const byStatus = new Map<string, number>();
  const byPod = new Map<string, number>();
  const latencies: number[] = [];
  let stopped = false;
  const agents = Array.from({ length: B_CONCURRENCY }, () => new Agent({ keepAlive: true, maxSockets: 1 }));
  const loops = agents.map(async (agent) => {
    while (!stopped) {
      const r = await hit(agent, '/b');
      latencies.push(r.ms);
      byStatus.set(r.status, (byStatus.get(r.status) ?? 0) + 1);
      if (r.pod) byPod.set(r.pod, (byPod.get(r.pod) ?? 0) + 1);
    }
  });
  // Load on the starting set before the churn starts; measured from here.
  await sleep(500);
  byStatus.clear();
  byPod.clear();
  latencies.length = 0;
  const sets = churnSets();
  const before = await agentStatus();
  const t0 = performance.now();
  let written = 0;
  for (let due = t0; performance.now() - t0 < B_DURATION_S * 1000; ) {
    server.set(slice(sets[written % sets.length]));
    written++;
    due += B_INTERVAL_MS;
    const now = performance.now();
    if (due > now) await sleep(due - now);
  }
  const durationS = (performance.now() - t0) / 1000;
  const after = await agentStatus();
  stopped = true;
  await Promise.all(loops);
  for (const a of agents) a.destroy();
  const st = stats(latencies);
  const sorted = [...latencies].sort((a, b) => a - b);
  const p99 = sorted[Math.min(sorted.length - 1, Math.ceil(0.99 * sorted.length) - 1)];
  const reloads = after.generation - before.generation;
  const requests = latencies.length;
  return {
    durationS,
    changesWritten: written,
    reloads,
    reloadsPerS: reloads / durationS,
    changesPerReload: written / Math.max(1, reloads),
    requests,
    failed: requests - (byStatus.get('200') ?? 0),
    byStatus: Object.fromEntries(byStatus),
    latencyMs: { p50: st.p50, p99, max: st.max, mean: st.mean },
    backendsServed: Object.fromEntries([...byPod].sort()),
  };
}

async function main(): Promise<void> {
  const quiet = await waitForQuietMachine(60);
  const t0 = performance.now();
  const machine = machineInfo();
  const tmp = await mkdtemp(join(tmpdir(), 'vgw-bench-churn-'));
  // varnishd's jail user must reach the work directory below it.
  await chmod(tmp, 0o755);
  const server = await startKubeApiServer();
  const backends: EchoBackend[] = [];
  let agentProc: ManagedProcess | null = null;
  let failed = false;
  let a: Awaited<ReturnType<typeof changeToTraffic>>;
  let b: ChurnResult;
  try {
    for (let i = 0; i < BACKENDS; i++) backends.push(await startEcho(backendAddress(i), BACKEND_PORT, podName(i)));
    await setup(server);
    const kubeconfig = join(tmp, 'kubeconfig.json');
    await writeFile(kubeconfig, server.kubeConfig().exportConfig());
    await mkdir(join(tmp, 'work'), { recursive: true });
    agentProc = new ManagedProcess(
      'vgw chaperone',
      null,
      ['chaperone', '--gateway', `${NS}/${GW_NAME}`, '--kubeconfig', kubeconfig, '--admin-port', String(ADMIN_PORT), '--admin-address', '127.0.0.1', '--work-dir', join(tmp, 'work'), '--pod', 'bench-pod'],
      join(tmp, 'chaperone.log'),
    );
    await waitFor('chaperone ready', 60_000, 20, async () => ((await httpGet(`http://127.0.0.1:${ADMIN_PORT}/healthz`)).status === 200 ? true : undefined), agentProc);
    await waitFor('first answer', 10_000, 20, async () => ((await hit(new Agent(), '/')).pod === podName(0) ? true : undefined), agentProc);

    console.log(`(a) endpoint change to traffic, ${A_CHANGES} changes`);
    a = await changeToTraffic(server);
    await sleep(500);
    console.log(`(b) one EndpointSlice change every ${B_INTERVAL_MS} ms for ${B_DURATION_S} s, ${B_CONCURRENCY} keep-alive connections of load`);
    b = await sustainedChurn(server);
    console.log(
      `  ${b.changesWritten} changes written, ${b.reloads} reloads (${fmt(b.reloadsPerS)}/s), ${b.requests} requests, ${b.failed} failed, p50 ${fmt(b.latencyMs.p50, 2)} ms, p99 ${fmt(b.latencyMs.p99, 2)} ms, max ${fmt(b.latencyMs.max, 2)} ms`,
    );
    const st = await agentStatus();
    if (st.lastError) throw new Error(`the agent reports an error: ${st.lastError.message}`);
  } catch (err) {
    failed = true;
    console.error(`failed; logs kept in ${tmp}`);
    throw err;
  } finally {
    await agentProc?.stop();
    for (const be of backends) await be.stop();
    await server.close();
    if (!failed) await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
  }
  const durationS = (performance.now() - t0) / 1000;
  saveSection('churn', {
    title: 'Endpoint churn',
    command: 'bench:churn',
    machine,
    durationS,
    backgroundCores: quiet.backgroundCores,
    markdown: churnMarkdown(a.changes, a.byStatus, b, machine.nproc),
    data: {
      a: { changes: A_CHANGES, pollMs: A_POLL_MS, settleMs: A_SETTLE_MS, results: a.changes, byStatus: a.byStatus },
      b: { intervalMs: B_INTERVAL_MS, plannedDurationS: B_DURATION_S, concurrency: B_CONCURRENCY, ...b },
    },
  });
  console.log(`done in ${fmt(durationS)} s; bench/README.md updated`);
  if (b.failed > 0) {
    console.error(`${b.failed} failed requests under churn`);
    process.exitCode = 1;
  }
}

function churnMarkdown(changes: Change[], aStatus: Record<string, number>, b: ChurnResult, nproc: number): string {
  const st = stats(changes.map((c) => c.ms));
  const total = stats(changes.map((c) => c.reloadTotalMs ?? NaN).filter(Number.isFinite));
  const inline = stats(changes.map((c) => c.compileMs ?? NaN).filter(Number.isFinite));
  const extra = changes.reduce((s, c) => s + Math.max(0, c.generations - 1), 0);
  const statuses = (o: Record<string, number>) => Object.entries(o).map(([k, v]) => `${k} ×${v.toLocaleString('en-US')}`).join(', ');
  return `The in-pod agent (\`vgw chaperone\`, its own process) against the Kubernetes API test server
(\`test/support/kube-api-server.ts\`, in the benchmark process), with a routing config of one
Gateway, one HTTPRoute and one Service published as ConfigMaps the way the operator does, and
${BACKENDS} \`vgw echo\` backends on loopback. This workload differs from the other sections: the
routes do not change, the Service's EndpointSlice does.

**(a) Endpoint change to traffic.** Each change rewrites the EndpointSlice so that the Service's
one endpoint moves to the other backend, then polls the gateway every ${A_POLL_MS} ms over one
keep-alive connection (one request in flight at a time) until the new backend answers. Time is
from just before the write to the API server to that answer: watch delivery, the agent's
compile, varnishd's vcl.inline and vcl.use, and up to one poll interval of slack.
${changes.length} changes, ${A_SETTLE_MS} ms apart.

${table(
    ['changes', 'mean ms', 'p50 ms', 'max ms', 'reload total p50 ms', 'vcl.inline p50 ms', 'p50 minus reload total ms', 'extra reloads', 'poll answers'],
    [[st.n, fmt(st.mean), fmt(st.p50), fmt(st.max), fmt(total.p50), fmt(inline.p50), fmt(st.p50 - total.p50), extra, statuses(aStatus)]],
  )}

"reload total" and "vcl.inline" are the agent's \`/status\` \`lastReload\` for the reload that made
the change live; "p50 minus reload total" is the rest: the watch event, rendering the VCL in the
agent, and poll slack.

**(b) Sustained churn.** One EndpointSlice write every ${B_INTERVAL_MS} ms for ${B_DURATION_S} s, each a different set of 2
or 3 of the ${BACKENDS} backends (all of them keep running), while ${B_CONCURRENCY} keep-alive connections send GETs
back to back. The agent compiles one config at a time and, when changes arrive during a reload,
next compiles only the newest.

${table(
    ['changes written', 'reloads done', 'reloads/s', 'changes per reload', 'requests', 'failed', 'p50 ms', 'p99 ms', 'max ms'],
    [[b.changesWritten, b.reloads, fmt(b.reloadsPerS), fmt(b.changesPerReload, 2), b.requests.toLocaleString('en-US'), b.failed, fmt(b.latencyMs.p50, 2), fmt(b.latencyMs.p99, 2), fmt(b.latencyMs.max, 2)]],
  )}

Answers: ${statuses(b.byStatus)}. Requests per backend: ${Object.entries(b.backendsServed).map(([k, v]) => `${k} ${v.toLocaleString('en-US')}`).join(', ')}.
Latency is per request as the load generator (Node, in the benchmark process, which also serves
the API) sees it, so it includes that process's own scheduling on this ${nproc}-CPU machine.
`;
}

await main();
