// Route propagation in cluster mode, and the operator's memory. The local cluster (API test
// server, kubelet and load-balancer stand-ins running pods as local processes) runs the operator
// from deploy/install.yaml; one Gateway of class `vgw` fronts an echo Deployment. With 1 000 and
// then 5 000 HTTPRoutes applied and serving, 20 new HTTPRoutes are created one at a time and the
// new host is polled through the Gateway's address every 5 ms until the first 200. Then routes
// are applied in bulk up to 1 000 and 5 000 (as far as the time budget allows) and the RSS of
// the operator processes is read once the Gateway's routing ConfigMap holds them all.
import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoreV1Api, KubernetesObjectApi, type KubernetesObject, type V1Pod } from '@kubernetes/client-node';
import { startLocalCluster, type LocalCluster } from '../test/support/local-cluster/cluster.ts';
import { applyInstallManifest, echoBackend, OPERATOR_NAMESPACE, OPERATOR_POD_SELECTOR } from '../test/support/local-cluster/install.ts';
import { VGW_IN_POD } from '../test/support/local-cluster/vgw-in-pod.ts';
import { decodeRoutingConfig, GATEWAY_LABEL } from '../src/ir/configmap.ts';
import { routeHost, routePath } from './lib/manifests.ts';
import { describe, keepAliveAgent, newTally, pollUntil } from './lib/poll.ts';
import { httpGet, waitFor, waitForQuietMachine } from './lib/procs.ts';
import { fmt, machineInfo, saveSection, stats, table } from './lib/report.ts';

const PROPAGATION_SIZES = [1_000, 5_000];
const MEMORY_SIZES = [1_000, 5_000];
const ADDITIONS = 20;
const POLL_MS = 5;
/** Pause between additions, so that each one starts from an idle control plane. */
const SETTLE_MS = 100;
const PER_ADDITION_TIMEOUT_MS = 30_000;
/** Parallel create calls while applying routes in bulk. */
const BULK_CONCURRENCY = 16;
/** The whole run stops applying routes after this, and measures what it has. */
const BUDGET_MS = 4.5 * 60_000;
const NS = 'bench';
const GATEWAY = 'bench-gw';
const LISTENER_PORT = 8080;
const GW_API = 'gateway.networking.k8s.io/v1';
const CLUSTER_RANGES = { podCidr: '127.0.56.0/22', loadBalancerCidr: '127.0.60.0/24', clusterIPCidr: '127.0.61.0/24' };

interface Addition {
  index: number;
  ms: number;
  polls: number;
}

interface PropagationResult {
  routes: number;
  additions: Addition[];
  byStatus: Record<string, number>;
}

interface OperatorMemory {
  pod: string;
  leader: boolean;
  pid: number;
  rssMiB: number;
}

interface MemoryResult {
  /** Routes asked for. */
  target: number;
  /** Routes applied and held by the routing ConfigMap when measured. */
  routes: number;
  /** Routes that existed before the bulk apply. */
  from: number;
  /** Time to create the routes in bulk, and until the ConfigMap held them all. */
  applyS: number;
  publishS: number;
  operators: OperatorMemory[];
}

const start = performance.now();
const elapsed = () => performance.now() - start;
const log = (msg: string) => console.log(`[${(elapsed() / 1000).toFixed(1).padStart(6)} s] ${msg}`);

let cluster: LocalCluster;
let objects: KubernetesObjectApi;
let core: CoreV1Api;
/** Routes r0 … r<applied-1> exist. */
let applied = 0;

function routeObject(i: number): KubernetesObject {
  return {
    apiVersion: GW_API,
    kind: 'HTTPRoute',
    metadata: { name: `r${i}`, namespace: NS },
    spec: {
      parentRefs: [{ name: GATEWAY }],
      hostnames: [routeHost(i)],
      rules: [{ matches: [{ path: { type: 'PathPrefix', value: routePath(i) } }], backendRefs: [{ name: 'echo', port: 8080 }] }],
    },
  } as KubernetesObject;
}

const backend: KubernetesObject[] = [
  ...echoBackend(NS),
  { apiVersion: GW_API, kind: 'Gateway', metadata: { name: GATEWAY, namespace: NS }, spec: { gatewayClassName: 'vgw', listeners: [{ name: 'http', protocol: 'HTTP', port: LISTENER_PORT }] } } as KubernetesObject,
];

const isReady = (p: V1Pod) => !p.metadata?.deletionTimestamp && (p.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
const operatorPods = async () => (await core.listNamespacedPod({ namespace: OPERATOR_NAMESPACE, labelSelector: OPERATOR_POD_SELECTOR })).items;

/** Creates routes up to `target` (exclusive), BULK_CONCURRENCY at a time; stops early past `deadline`. */
async function applyRoutesUpTo(target: number, deadline: number): Promise<void> {
  let next = applied;
  let done = applied;
  let lastLog = performance.now();
  const worker = async () => {
    while (next < target && elapsed() < deadline) {
      const i = next++;
      await objects.create(routeObject(i));
      done++;
      if (performance.now() - lastLog > 5_000) {
        lastLog = performance.now();
        log(`  ${done} routes created`);
      }
    }
  };
  await Promise.all(Array.from({ length: BULK_CONCURRENCY }, worker));
  // Workers stop in index order, so r0 … r<next-1> all exist.
  applied = next;
}

/** Routes the Gateway's routing ConfigMap holds, or -1 while it is incomplete. */
async function publishedRoutes(): Promise<number> {
  const cms = (await core.listNamespacedConfigMap({ namespace: NS, labelSelector: `${GATEWAY_LABEL}=${GATEWAY}` })).items;
  const r = decodeRoutingConfig(cms, GATEWAY);
  if (r.state !== 'ok') return -1;
  return Object.keys(r.ir.routeGenerations ?? {}).filter((k) => k.startsWith(`${NS}/r`)).length;
}

async function waitPublished(n: number, timeoutMs: number): Promise<void> {
  let last = -1;
  await waitFor(`the routing ConfigMap to hold ${n} routes`, timeoutMs, 250, async () => {
    const got = await publishedRoutes();
    if (got !== last) log(`  routing ConfigMap holds ${got} routes`);
    last = got;
    return got >= n ? true : undefined;
  });
}

async function waitServing(address: string, i: number, timeoutMs: number): Promise<void> {
  await waitFor(`${routeHost(i)} to answer 200`, timeoutMs, 100, async () => {
    const r = await httpGet(`http://${address}:${LISTENER_PORT}${routePath(i)}/x`, { host: routeHost(i), timeoutMs: 5_000 });
    return r.status === 200 ? true : undefined;
  });
}

async function measurePropagation(address: string): Promise<PropagationResult> {
  const n = applied;
  const agent = keepAliveAgent();
  const all = newTally();
  const additions: Addition[] = [];
  try {
    for (let k = 0; k < ADDITIONS; k++) {
      const i = applied;
      const url = `http://${address}:${LISTENER_PORT}${routePath(i)}/new`;
      const pre = await httpGet(url, { host: routeHost(i), agent });
      if (pre.status !== 404) throw new Error(`${routeHost(i)} answered ${pre.status} before its route existed`);
      const tally = newTally();
      const t0 = performance.now();
      await objects.create(routeObject(i));
      applied++;
      const t1 = await pollUntil(url, routeHost(i), 200, POLL_MS, PER_ADDITION_TIMEOUT_MS, tally, agent);
      for (const [s, c] of tally.byStatus) all.byStatus.set(s, (all.byStatus.get(s) ?? 0) + c);
      all.requests += tally.requests;
      additions.push({ index: i, ms: t1 - t0, polls: tally.requests });
      log(`  ${n} routes, +${routeHost(i)}: ${fmt(t1 - t0)} ms, ${tally.requests} polls (${describe(tally)})`);
      await sleep(SETTLE_MS);
    }
  } finally {
    agent.destroy();
  }
  return { routes: n, additions, byStatus: Object.fromEntries(all.byStatus) };
}

/** Processes still running with the cluster's state directory on their command line. */
function processesUnder(dir: string): number {
  let n = 0;
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(dir)) n++;
    } catch {
      // gone meanwhile
    }
  }
  return n;
}

function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? NaN);
  return kb / 1024;
}

/** RSS of each operator replica's process: the pid is the container's (local://<pid>). */
async function operatorMemory(): Promise<OperatorMemory[]> {
  const leases = (await objects.list('coordination.k8s.io/v1', 'Lease', OPERATOR_NAMESPACE)).items as (KubernetesObject & { spec?: { holderIdentity?: string } })[];
  const holders = new Set(leases.map((l) => l.spec?.holderIdentity));
  const out: OperatorMemory[] = [];
  for (const p of await operatorPods()) {
    const id = p.status?.containerStatuses?.[0]?.containerID ?? '';
    const pid = Number(/^local:\/\/(\d+)$/.exec(id)?.[1] ?? NaN);
    if (!Number.isInteger(pid)) throw new Error(`operator pod ${p.metadata?.name} has no local pid (${id})`);
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
    if (!cmdline.includes('operator')) throw new Error(`pid ${pid} of pod ${p.metadata?.name} is not the operator: ${cmdline}`);
    out.push({ pod: p.metadata!.name!, leader: holders.has(p.metadata!.name!), pid, rssMiB: rssMiB(pid) });
  }
  return out.sort((a, b) => Number(b.leader) - Number(a.leader));
}

async function measureMemory(target: number): Promise<MemoryResult> {
  const from = applied;
  const t0 = performance.now();
  await applyRoutesUpTo(target, BUDGET_MS);
  const t1 = performance.now();
  if (applied < target) log(`  time budget reached: ${applied} of ${target} routes applied`);
  await waitPublished(applied, Math.max(30_000, BUDGET_MS + 30_000 - elapsed()));
  const t2 = performance.now();
  // Let the publish that just landed finish its follow-up work before reading memory.
  await sleep(1_000);
  const operators = await operatorMemory();
  log(`  operator RSS at ${applied} routes: ${operators.map((o) => `${o.pod}${o.leader ? ' (leader)' : ''} ${fmt(o.rssMiB)} MiB`).join(', ')}`);
  return { target, from, routes: applied, applyS: (t1 - t0) / 1000, publishS: (t2 - t1) / 1000, operators };
}

async function main(): Promise<void> {
  const quiet = await waitForQuietMachine(30);
  const machine = machineInfo();
  const propagation: PropagationResult[] = [];
  const memory: MemoryResult[] = [];
  log('starting the local cluster');
  cluster = await startLocalCluster({ images: { 'vgw:*': { executables: { vgw: VGW_IN_POD } } }, ...CLUSTER_RANGES });
  try {
    const kc = cluster.kubeConfig();
    objects = KubernetesObjectApi.makeApiClient(kc);
    core = kc.makeApiClient(CoreV1Api);
    await applyInstallManifest(cluster, objects);
    await waitFor('both operator replicas Ready', 120_000, 200, async () => {
      const pods = await operatorPods();
      return pods.length === 2 && pods.every(isReady) ? true : undefined;
    });
    log('operator Ready; creating the backend and the Gateway');
    for (const obj of backend) await objects.create(obj);
    let address = '';
    await waitFor('Gateway Programmed with an address', 120_000, 200, async () => {
      const gw = (await objects.read({ apiVersion: GW_API, kind: 'Gateway', metadata: { name: GATEWAY, namespace: NS } })) as KubernetesObject & {
        status?: { conditions?: { type: string; status: string }[]; addresses?: { value: string }[] };
      };
      address = gw.status?.addresses?.[0]?.value ?? '';
      return gw.status?.conditions?.some((c) => c.type === 'Programmed' && c.status === 'True') && address ? true : undefined;
    });
    log(`Gateway address ${address}`);

    for (const size of PROPAGATION_SIZES) {
      const before = applied;
      const t0 = performance.now();
      await applyRoutesUpTo(size, Infinity);
      const t1 = performance.now();
      await waitPublished(size, 120_000);
      const t2 = performance.now();
      await waitServing(address, size - 1, 120_000);
      if (MEMORY_SIZES.includes(size)) {
        const operators = await operatorMemory();
        memory.push({ target: size, from: before, routes: size, applyS: (t1 - t0) / 1000, publishS: (t2 - t1) / 1000, operators });
        log(`  operator RSS at ${size} routes: ${operators.map((o) => `${o.pod}${o.leader ? ' (leader)' : ''} ${fmt(o.rssMiB)} MiB`).join(', ')}`);
      }
      log(`${size} routes serving; ${ADDITIONS} additions`);
      propagation.push(await measurePropagation(address));
    }
    for (const size of MEMORY_SIZES.filter((s) => s > applied)) {
      log(`applying routes in bulk up to ${size}`);
      memory.push(await measureMemory(size));
    }
  } catch (err) {
    console.error(cluster.errors.join('\n'));
    throw err;
  } finally {
    log('stopping the local cluster');
    const stateDir = cluster.stateDir;
    await cluster.stop();
    // varnishd outlives a SIGKILLed agent only until its watchdog stops it.
    await waitFor('no process of the cluster left', 30_000, 200, async () => (processesUnder(stateDir) === 0 ? true : undefined));
  }
  const durationS = elapsed() / 1000;
  saveSection('cluster-propagation', {
    title: 'Route propagation in cluster mode',
    command: 'bench:cluster',
    machine,
    durationS,
    backgroundCores: quiet.backgroundCores,
    markdown: markdown(propagation, memory),
    data: { additions: ADDITIONS, pollMs: POLL_MS, settleMs: SETTLE_MS, budgetS: BUDGET_MS / 1000, propagation, memory },
  });
  log(`done in ${fmt(durationS)} s; bench/README.md updated`);
}

function markdown(propagation: PropagationResult[], memory: MemoryResult[]): string {
  const rows = propagation.map((p) => {
    const st = stats(p.additions.map((a) => a.ms));
    const statuses = Object.entries(p.byStatus).map(([k, v]) => `${k} ×${v}`).join(', ');
    return [p.routes.toLocaleString('en-US'), st.n, fmt(st.mean), fmt(st.p50), fmt(st.max), statuses];
  });
  const memRows = memory.map((m) => {
    const leader = m.operators.find((o) => o.leader);
    const standby = m.operators.filter((o) => !o.leader);
    return [
      m.routes.toLocaleString('en-US') + (m.routes < m.target ? ` (of ${m.target.toLocaleString('en-US')} asked)` : ''),
      leader ? fmt(leader.rssMiB) : 'n/a',
      standby.map((o) => fmt(o.rssMiB)).join(', ') || 'n/a',
      `${fmt(m.applyS)} (${(m.routes - m.from).toLocaleString('en-US')} routes)`,
      fmt(m.publishS),
    ];
  });
  const short = memory.filter((m) => m.routes < m.target);
  return `The local cluster (\`test/support/local-cluster/\`: the API test server, and kubelet and
load-balancer stand-ins running pods as local processes on loopback addresses) runs the operator
from \`deploy/install.yaml\` (two replicas, one leader). One Gateway of class \`vgw\` with one HTTP
listener fronts an echo Deployment; route i is the HTTPRoute \`r<i>\` for host \`r<i>.bench.test\`
and path prefix \`/p<i>\`. The path of a change: API server → operator (informers, translation,
routing ConfigMaps) → the gateway pod's \`vgw chaperone\` (ConfigMap watch, VCL render) → varnishd.

With the given number of routes applied and serving, ${ADDITIONS} new HTTPRoutes are created one at a
time, ${SETTLE_MS} ms apart. Each is timed from just before the create call to the first 200 for its
host through the Gateway's \`status.addresses[0]\`, polled every ${POLL_MS} ms over one keep-alive
connection (one request in flight at a time), on the monotonic clock.

${table(['routes loaded', 'additions', 'mean ms', 'p50 ms', 'max ms', 'statuses seen by the poller'], rows)}

Operator memory: RSS (\`VmRSS\` of \`/proc/<pid>/status\`) of each replica's process, found by
the pid the local kubelet reports as the container ID, read once the Gateway's routing ConfigMap
(decoded with \`decodeRoutingConfig\`) holds every route applied. Between measurements routes are
created in bulk, ${BULK_CONCURRENCY} create calls in flight; each figure is taken before that size's
additions.

${table(['routes', 'leader RSS MiB', 'standby RSS MiB', 'bulk create s', 'create → ConfigMap holds all s'], memRows)}
${
    short.length
      ? `
The run has a ${BUDGET_MS / 60_000}-minute budget for applying routes; ${short.map((m) => `of ${m.target.toLocaleString('en-US')} routes only ${m.routes.toLocaleString('en-US')} were applied within it`).join('; ')},
and memory was measured there.
`
      : ''
  }`;
}

await main();
