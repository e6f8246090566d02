// Request throughput against the number of routes loaded. For 1, 1 000 and 10 000 routes, wrk
// hits the host of the last-declared route, (a) with plain GETs, which the generated VCL sends
// to the backend every time (the echo response has no Cache-Control), and (b) with a header
// that makes the echo backend answer Cache-Control: max-age=3600, so that after the first
// request everything is a cache hit and the Node backend is out of the picture: (b) measures
// routing cost. The same two loads also go to a bare varnishd with a minimal hand-written VCL,
// and plain GETs to the backend directly, as references.
import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { render } from '../src/pipeline/render.ts';
import { loadManifestDir } from '../src/providers/file/load.ts';
import { GATEWAY_PARAMS } from '../src/runtime/data-plane.ts';
import { TCC_COMMAND } from '../src/varnish/cc.ts';
import { routeHost, routePath, writeBenchDir, type BenchTopology } from './lib/manifests.ts';
import { VARNISHD_DIR } from '../src/runtime/data-plane.ts';
import { treeCpuSeconds } from './lib/proctree.ts';
import { describeProblems, groupCpuSeconds, machineCpuSeconds, spawnServe, startBareVarnish, startEcho, waitFor, waitFor200, waitForQuietMachine, type EchoBackend } from './lib/procs.ts';
import { fmt, machineInfo, saveSection, table } from './lib/report.ts';
import { runWrk, wrkErrors, type WrkOptions, type WrkResult } from './lib/wrk.ts';

const execFileP = promisify(execFile);

const SIZES = [1, 1_000, 10_000];
const THREADS = 2;
const CONNECTIONS = 50;
const WARMUP_S = 2;
const DURATION_S = 10;
/** Measurements per target and load; the best is reported (see Series). */
const ROUNDS = 3;
const ADMIN_PORT = 18190;
const BASELINE_PORT = 18188;
const TOPOLOGY: BenchTopology = { gatewayAddress: '127.0.5.1', gatewayPort: 18180, backendAddress: '127.0.6.1', backendPort: 18181 };
const CACHE_HEADER = { 'X-Echo-Set-Header': 'Cache-Control:max-age=3600' };

// What a person would write by hand for one backend, with the same caching rule as the
// generated VCL (no freshness information from the origin: do not cache).
const BASELINE_VCL = `vcl 4.1;
backend echo { .host = "${TOPOLOGY.backendAddress}"; .port = "${TOPOLOGY.backendPort}"; }
sub vcl_backend_response {
  if (!beresp.http.Cache-Control && !beresp.http.Expires && !beresp.http.Surrogate-Control) {
    set beresp.ttl = 0s;
  }
}
`;

interface Measured {
  wrk: Omit<WrkResult, 'raw'>;
  errors: number;
  /** CPU use during the measured run, in cores (1.0 = one core busy). */
  /** proxy: varnishd's processes; control: the rest of the tree (`vgw serve` and its helpers). */
  cpu: { machine: number; backend: number; proxy?: number; control?: number };
  counters?: Record<string, number>;
}

interface Proxy {
  /** The proxy's root process: its CPU is that of every process below it (varnishd runs in its own process group). */
  root: number;
  instanceDir: string;
}

interface Target {
  label: string;
  /** Route count for vgw; undefined for the bare varnishd. */
  routes?: number;
  /** Path prefix of the route; (a) and (b) use different paths below it. */
  url: string;
  host?: string;
  proxy: Proxy;
  stop(): Promise<void>;
}

interface Series {
  runs: Measured[];
  /**
   * The run with the most req/s. Other work on a shared machine only ever takes capacity away,
   * so the best run is the closest to what the target can do.
   */
  best: Measured;
}

interface TargetResult {
  label: string;
  routes?: number;
  /** Spawn of `vgw serve` to the first 200 from the last-declared route. */
  firstOkMs?: number;
  pass: Series;
  hit: Series;
}

const COUNTERS = ['MAIN.client_req', 'MAIN.cache_hit', 'MAIN.cache_miss', 'MAIN.cache_hitmiss', 'MAIN.s_pass', 'MAIN.backend_req', 'MAIN.backend_conn', 'MAIN.backend_reuse'];

async function varnishCounters(instanceDir: string): Promise<Record<string, number>> {
  // Worker threads publish their counters in batches and when a session ends; the pause lets
  // the sessions wrk just closed report, so that deltas cover exactly one run.
  await sleep(500);
  const { stdout } = await execFileP('varnishstat', ['-n', instanceDir, '-j', '-1'], { maxBuffer: 64 << 20 });
  const parsed = JSON.parse(stdout) as { counters?: Record<string, { value: number }> };
  const c = parsed.counters ?? (parsed as Record<string, { value: number }>);
  return Object.fromEntries(COUNTERS.map((k) => [k, c[k]?.value ?? NaN]));
}

function diff(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.keys(b).map((k) => [k, b[k] - (a[k] ?? 0)]));
}

/** varnishd's CPU seconds (the manager, the child and the compilers it ran) and the rest of the proxy's tree. */
async function proxyCpu(proxy: Proxy | undefined): Promise<{ proxy: number; control: number }> {
  if (!proxy) return { proxy: 0, control: 0 };
  const cpu = await treeCpuSeconds(proxy.root, (comm) => (comm.startsWith('varnishd') || comm === 'cache-main' ? 'varnishd' : 'control'));
  return { proxy: cpu.varnishd ?? 0, control: cpu.control ?? 0 };
}

async function measure(o: WrkOptions, backend: EchoBackend, proxy?: Proxy): Promise<Measured> {
  await runWrk({ ...o, durationS: WARMUP_S });
  const before = proxy ? await varnishCounters(proxy.instanceDir) : undefined;
  const sample = async () => ({
    machine: await machineCpuSeconds(),
    backend: await groupCpuSeconds(backend.proc.proc.pid!),
    ...(await proxyCpu(proxy)),
  });
  const s0 = await sample();
  const t0 = performance.now();
  const r = await runWrk(o);
  const wall = (performance.now() - t0) / 1000;
  const s1 = await sample();
  const after = proxy ? await varnishCounters(proxy.instanceDir) : undefined;
  const { raw: _raw, ...wrk } = r;
  return {
    wrk,
    errors: wrkErrors(r),
    cpu: {
      machine: (s1.machine.busy - s0.machine.busy) / wall,
      backend: (s1.backend - s0.backend) / wall,
      ...(proxy ? { proxy: (s1.proxy - s0.proxy) / wall, control: (s1.control - s0.control) / wall } : {}),
    },
    ...(before && after ? { counters: diff(before, after) } : {}),
  };
}

function series(runs: Measured[]): Series {
  return { runs, best: runs.reduce((a, b) => (b.wrk.rps > a.wrk.rps ? b : a)) };
}

function line(label: string, m: Measured): void {
  console.log(`${label}: ${fmt(m.wrk.rps, 0)} req/s, p50 ${fmt(m.wrk.latency.p50, 2)} ms, p99 ${fmt(m.wrk.latency.p99, 2)} ms, errors ${m.errors}`);
}

/** Starts `vgw serve` with n routes on its own port and waits for the last-declared route. */
async function startVgw(n: number, slot: number, tmp: string): Promise<{ target: Target; firstOkMs: number }> {
  const topology = { ...TOPOLOGY, gatewayPort: TOPOLOGY.gatewayPort + slot };
  const dir = join(tmp, `routes-${n}`);
  const workDir = join(tmp, `work-${n}`);
  await writeBenchDir(dir, topology, n);
  await mkdir(workDir, { recursive: true });
  const last = n - 1;
  const host = routeHost(last);
  const gatewayUrl = `http://${topology.gatewayAddress}:${topology.gatewayPort}`;
  const path = `${routePath(last)}/bench`;
  const gw = spawnServe(dir, ADMIN_PORT + slot, workDir, join(tmp, `serve-${n}.log`));
  try {
    const ok = await waitFor200(gatewayUrl, host, path, 120_000, gw);
    const firstOkMs = ok - gw.spawnedAt;
    const status = await waitFor('/status', 10_000, 50, () => gw.status(), gw.proc);
    if (status.stats?.routes !== n) throw new Error(`${n} routes written but ${status.stats?.routes} loaded: ${describeProblems(status.problems)}`);
    // Only to label the row: the same render `vgw serve` did, in-process.
    const shards = render((await loadManifestDir(dir)).snapshot, { defaultAddress: '127.0.0.1' }).deploy.shards.length;
    console.log(`vgw with ${n} routes (${shards} shard VCLs): first 200 from ${host} ${fmt(firstOkMs / 1000, 2)} s after spawn`);
    return {
      firstOkMs,
      target: {
        label: `vgw, ${n.toLocaleString('en-US')} route${n === 1 ? '' : 's'}${shards ? ` (${shards} shard VCLs)` : ''}`,
        routes: n,
        url: `${gatewayUrl}${routePath(last)}`,
        host,
        // The -n directory layout is that of the data plane (VARNISHD_DIR).
        proxy: { root: gw.proc.proc.pid!, instanceDir: join(workDir, VARNISHD_DIR, 'varnish') },
        stop: () => gw.stop(),
      },
    };
  } catch (err) {
    await gw.stop();
    throw err;
  }
}

async function main(): Promise<void> {
  const quiet = await waitForQuietMachine(60);
  const t0 = performance.now();
  const machine = machineInfo();
  const tmp = await mkdtemp(join(tmpdir(), 'vgw-bench-throughput-'));
  // varnishd's jail user must reach the work directories below it.
  await chmod(tmp, 0o755);
  const backend = await startEcho(TOPOLOGY.backendAddress, TOPOLOGY.backendPort);
  const targets: Target[] = [];
  const firstOk = new Map<Target, number>();
  let direct: Measured;
  const results: TargetResult[] = [];
  try {
    direct = await measure({ url: `${backend.url}/p0/bench`, threads: THREADS, connections: CONNECTIONS, durationS: DURATION_S }, backend);
    line('backend direct', direct);
    const bare = await startBareVarnish(join(tmp, 'baseline'), BASELINE_VCL, TOPOLOGY.gatewayAddress, BASELINE_PORT, { ...GATEWAY_PARAMS, cc_command: TCC_COMMAND });
    targets.push({
      label: 'bare varnishd, hand-written VCL',
      url: `http://${TOPOLOGY.gatewayAddress}:${BASELINE_PORT}/p0`,
      proxy: { root: bare.proc.proc.pid!, instanceDir: bare.instanceDir },
      stop: () => bare.stop(),
    });
    for (const [slot, n] of SIZES.entries()) {
      const { target, firstOkMs } = await startVgw(n, slot, tmp);
      targets.push(target);
      firstOk.set(target, firstOkMs);
    }
    // Rounds interleave the targets, so that drift in background load hits all of them alike.
    const runs = new Map<Target, { pass: Measured[]; hit: Measured[] }>(targets.map((t) => [t, { pass: [], hit: [] }]));
    for (let round = 1; round <= ROUNDS; round++) {
      for (const t of targets) {
        const o = { threads: THREADS, connections: CONNECTIONS, durationS: DURATION_S };
        const hostHeader: Record<string, string> = t.host ? { Host: t.host } : {};
        // Separate URLs: the object cached by (b) must not answer (a) in the next round.
        const pass = await measure({ ...o, url: `${t.url}/pass`, headers: hostHeader }, backend, t.proxy);
        line(`round ${round}, ${t.label}, (a) pass`, pass);
        const hit = await measure({ ...o, url: `${t.url}/hit`, headers: { ...hostHeader, ...CACHE_HEADER } }, backend, t.proxy);
        line(`round ${round}, ${t.label}, (b) hit `, hit);
        runs.get(t)!.pass.push(pass);
        runs.get(t)!.hit.push(hit);
      }
    }
    for (const t of targets) {
      const r = runs.get(t)!;
      results.push({ label: t.label, routes: t.routes, firstOkMs: firstOk.get(t), pass: series(r.pass), hit: series(r.hit) });
    }
  } catch (err) {
    console.error(`failed; logs kept in ${tmp}`);
    for (const t of targets) await t.stop();
    await backend.stop();
    throw err;
  }
  for (const t of targets) await t.stop();
  await backend.stop();
  await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
  const durationS = (performance.now() - t0) / 1000;
  saveSection('throughput', {
    title: 'Request throughput against route count',
    command: 'bench:throughput',
    machine,
    durationS,
    backgroundCores: quiet.backgroundCores,
    markdown: throughputMarkdown(direct, results, machine.nproc),
    data: { threads: THREADS, connections: CONNECTIONS, warmupS: WARMUP_S, durationS: DURATION_S, rounds: ROUNDS, baselineVcl: BASELINE_VCL, direct, results },
  });
  console.log(`done in ${fmt(durationS)} s; bench/README.md updated`);
}

function throughputMarkdown(direct: Measured, results: TargetResult[], nproc: number): string {
  const rps = (m: Measured) => fmt(m.wrk.rps, 0);
  const range = (sr: Series) => {
    const v = sr.runs.map((m) => m.wrk.rps);
    return `${fmt(Math.min(...v), 0)}–${fmt(Math.max(...v), 0)}`;
  };
  const lat = (m: Measured) => `${fmt(m.wrk.latency.p50, 2)} / ${fmt(m.wrk.latency.p99, 2)}`;
  const cores = (v: number | undefined) => (v === undefined ? '—' : fmt(v, 2));
  const mix = (m: Measured) => {
    const c = m.counters;
    if (!c) return '—';
    return `hit ${fmtInt(c['MAIN.cache_hit'])}, hit-for-miss ${fmtInt(c['MAIN.cache_hitmiss'])}, backend ${fmtInt(c['MAIN.backend_req'])}`;
  };
  const perReq = (m: Measured) => (m.cpu.proxy ? fmt((1e6 * m.cpu.proxy) / m.wrk.rps, 1) : '—');
  const errors = (sr: Series) => sr.runs.reduce((n, m) => n + m.errors, 0);
  const row = (label: string, sr: Series) => {
    const m = sr.best;
    return [label, rps(m), range(sr), lat(m), errors(sr), cores(m.cpu.proxy), perReq(m), cores(m.cpu.control), cores(m.cpu.backend), cores(m.cpu.machine), mix(m)];
  };
  const rows: (string | number)[][] = [['backend direct', rps(direct), '—', lat(direct), direct.errors, '—', '—', '—', cores(direct.cpu.backend), cores(direct.cpu.machine), '—']];
  for (const r of results) rows.push(row(`${r.label}: (a) pass`, r.pass));
  for (const r of results) rows.push(row(`${r.label}: (b) cache hit`, r.hit));
  const bare = results.find((r) => r.routes === undefined);
  const one = results.find((r) => r.routes === 1);
  const big = results.find((r) => r.routes === 10_000);
  const pct = (a: Series | undefined, b: Series | undefined) => (a && b ? `${fmt((100 * a.best.wrk.rps) / b.best.wrk.rps, 1)} %` : 'n/a');
  const vgw = results.filter((r) => r.routes !== undefined);
  const passes = vgw.map((r) => r.pass.best);
  const maxBackend = Math.max(...passes.map((m) => m.cpu.backend));
  const minMachine = Math.min(...passes.map((m) => m.cpu.machine));
  const bareNoFaster = bare !== undefined && one !== undefined && bare.pass.best.wrk.rps <= one.pass.best.wrk.rps * 1.05;
  const passNote =
    maxBackend > 0.85
      ? `- (a) is bound by the Node echo backend: during (a) the single-threaded echo process used up to
  ${cores(maxBackend)} cores (it saturates at 1.0). Differences between route counts in (a) are
  backend noise; (b) is the number that measures routing.`
      : minMachine > nproc * 0.9
        ? `- (a) is not bound by the echo backend alone: the echo process used at most ${cores(maxBackend)} of a
  core during (a) (it saturates at 1.0, and serves ${rps(direct)} req/s when hit directly), while
  all ${nproc} CPUs were busy (at least ${cores(minMachine)} cores) with wrk, varnishd and the backend
  together. A backend fetch costs varnishd far more CPU than a hit (compare the proxy CPU per
  request of (a) and (b))${bareNoFaster ? ', and the bare varnishd is no faster, so (a) measures this box, not the\n  router' : ''}. (b) is the number that measures routing.`
        : `- During (a) the echo process used at most ${cores(maxBackend)} of a core and the machine
  ${cores(minMachine)} of ${nproc} cores: the limit is latency (backend round trips), not CPU.`;
  const perHit = (r: TargetResult | undefined) => (r ? perReq(r.hit.best) : 'n/a');
  const sharded = vgw.filter((r) => r.label.includes('shard'));
  const unsharded = vgw.filter((r) => !r.label.includes('shard'));
  const perHitList = (rs: TargetResult[]) => rs.map((r) => `${perHit(r)} µs (${r.label.replace(/^vgw, /, '')})`).join(', ');
  const shardNote =
    sharded.length && unsharded.length
      ? `- varnishd CPU per cache hit, unsharded: ${perHitList(unsharded)}; sharded: ${perHitList(sharded)};
  bare varnishd ${bare ? perHit(bare) : 'n/a'} µs. A sharded request takes an extra hop: the dispatcher VCL hashes the
  host and \`return (vcl(...))\` restarts the request in the shard VCL, which runs vcl_recv again.
`
      : '';
  const loadRows = vgw.map((r) => [r.routes!.toLocaleString('en-US'), fmt((r.firstOkMs ?? NaN) / 1000, 2)]);
  return `wrk ${THREADS} threads, ${CONNECTIONS} connections, ${DURATION_S} s per measurement after a ${WARMUP_S} s warm-up,
keep-alive; (a) requests \`<prefix>/pass\` and (b) \`<prefix>/hit\`, so that objects cached by (b)
never answer (a). All targets run side by side and are measured in ${ROUNDS} interleaved rounds
(every target once per round), so that background noise spreads evenly; the table shows the run
with the most req/s (other work on the machine only takes capacity away) and the range over the
rounds. Against vgw: \`Host: r<N-1>.bench.test\`
(the last-declared route), prefix \`/p<N-1>\`. Backend: one \`vgw echo\` process (Node,
single-threaded). From a few hundred hosts on, vgw splits the routes over shard VCLs behind a
small dispatcher VCL that hashes the host and switches with \`return (vcl(label))\`; the row
labels give the shard count. The bare varnishd runs a 7-line hand-written VCL (one backend, no routing,
same no-freshness-no-caching rule; stored in results.json) with the same parameters and
cc_command as vgw. CPU columns are cores busy during the measured run, from /proc: "proxy" =
varnishd's processes, "control" = the rest of the proxy's process tree (\`vgw serve\`, which
polls varnishstat once a second, and any log reader), "backend" = the echo process, "machine" =
all processes including wrk. Counters are the varnishstat delta over the measured run.

${table(['run', 'req/s (best)', 'range', 'p50 / p99 ms', 'errors', 'proxy CPU', 'proxy µs CPU / req', 'control CPU', 'backend CPU', 'machine CPU', 'varnish counters'], rows)}

**10 000 routes vs 1 route:** (a) pass ${pct(big?.pass, one?.pass)}, (b) cache hit ${pct(big?.hit, one?.hit)} of the 1-route req/s
(target: within 5 %).
**vgw vs the bare varnishd:** 1 route (a) ${pct(one?.pass, bare?.pass)}, (b) ${pct(one?.hit, bare?.hit)}; 10 000 routes (a) ${pct(big?.pass, bare?.pass)}, (b) ${pct(big?.hit, bare?.hit)}.
varnishd CPU per cache hit: bare ${perHit(bare)} µs, vgw 1 route ${perHit(one)} µs, vgw 10 000 routes ${perHit(big)} µs.

Time from spawning \`vgw serve\` to the first 200 from the last-declared route (Node start,
manifest load, render, varnishd start, every VCL compiled and in use):

${table(['routes', 'seconds to first 200'], loadRows)}

Notes:
- (a) is the generated VCL's normal path for a GET whose response has no Cache-Control: varnish
  stores a hit-for-miss marker and every request goes to the backend (\`hit-for-miss\` =
  \`backend\` in the counters). It is not \`return (pass)\`, but costs the same per request.
${passNote}
${shardNote}- (b) saturates the machine too: wrk uses most of the CPU varnishd does not. varnishd's CPU per
  request is the fairer comparison of VCL cost between targets; absolute req/s only compare
  within this run. Rounds of ${DURATION_S} s on this shared VM vary a lot (see the range column),
  which is more than the 5 % the target allows: read the ratios with the ranges.
`;
}

function fmtInt(v: number | undefined): string {
  return v === undefined || !Number.isFinite(v) ? 'n/a' : v.toLocaleString('en-US');
}

await main();
