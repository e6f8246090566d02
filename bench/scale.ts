// The scale table in one run: for each route count (1 000, 5 000 and 10 000 by default), with
// one HTTPRoute per file (own host, a path prefix and a header match per rule):
//   - cold start: spawn of `vgw serve` to the first 200 of the last route;
//   - control-plane memory (VmRSS of the `vgw serve` Node process) after the load;
//   - new route file to first 200, over a series of additions;
//   - under load: an existing route hammered while another route's file flips every 200 ms,
//     counting every answer that is not a 200, with the memory sampled throughout;
//   - throughput: wrk against this gateway and a 1-route gateway running side by side, in
//     interleaved rounds, (a) pass and (b) cache hit.
// Flags: --sizes 1000,5000 --additions 10 --flips 100 --wrk-seconds 5 --rounds 2
//        --no-throughput --cpu-prof (profiles of `vgw serve` kept in the printed directory)
//        --gateway-address --reference-address --backend-address --admin-address (loopback
//        addresses, so that runs of other benchmarks on the same machine do not collide)
//        --from-results (only rebuild the README section from bench/results.json).
import { chmod, mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { scaleRouteHost, scaleRouteManifest, scaleRoutePrefix, writeScaleDir } from './lib/manifests.ts';
import { countOther, describe, keepAliveAgent, newTally, pollUntil, type PollTally } from './lib/poll.ts';
import { httpGet, spawnServe, startEcho, waitFor, waitFor200, waitForQuietMachine, type EchoBackend, type Gateway } from './lib/procs.ts';
import { fmt, machineInfo, saveSection, stats, table, type Section } from './lib/report.ts';
import { runWrk, wrkErrors, type WrkResult } from './lib/wrk.ts';

const { values: flags } = parseArgs({
  options: {
    sizes: { type: 'string', default: '1000,5000,10000' },
    additions: { type: 'string', default: '10' },
    flips: { type: 'string', default: '100' },
    'flip-ms': { type: 'string', default: '200' },
    'wrk-seconds': { type: 'string', default: '5' },
    rounds: { type: 'string', default: '2' },
    'no-throughput': { type: 'boolean', default: false },
    'cpu-prof': { type: 'boolean', default: false },
    'no-save': { type: 'boolean', default: false },
    'gateway-address': { type: 'string', default: '127.0.114.1' },
    'reference-address': { type: 'string', default: '127.0.114.2' },
    'backend-address': { type: 'string', default: '127.0.115.1' },
    'admin-address': { type: 'string', default: '127.0.0.1' },
    /** Rebuilds the README section from bench/results.json (after editing scale-analysis.md). */
    'from-results': { type: 'boolean', default: false },
  },
});
const SIZES = flags.sizes.split(',').map(Number);
const ADDITIONS = Number(flags.additions);
const FLIPS = Number(flags.flips);
const FLIP_MS = Number(flags['flip-ms']);
const WRK_S = Number(flags['wrk-seconds']);
const ROUNDS = Number(flags.rounds);
const THROUGHPUT = !flags['no-throughput'];
const POLL_MS = 5;
/** Keep-alive connections hammering the existing route during the flips, each back to back. */
const HAMMER_CONNECTIONS = 4;
const MEMORY_SAMPLE_MS = 1_000;
const GATEWAY = { address: flags['gateway-address'], port: 18580 };
const REFERENCE = { address: flags['reference-address'], port: 18580 };
const BACKEND = { address: flags['backend-address'], port: 18581 };
const ADMIN_ADDRESS = flags['admin-address'];
const ADMIN_PORT = 18590;
const REFERENCE_ADMIN_PORT = 18591;
const MATCH_HEADER = { 'x-bench': 'on' };
const CACHE_HEADER = { 'X-Echo-Set-Header': 'Cache-Control:max-age=3600' };


/** Written under a hidden name and renamed into place, as an editor or `kubectl cp` would. */
async function writeRoute(dir: string, i: number, flipped = false): Promise<void> {
  const tmp = join(dir, `.r${i}.yaml.tmp`);
  await writeFile(tmp, scaleRouteManifest(i, flipped));
  await rename(tmp, join(dir, `r${i}.yaml`));
}

interface Memory {
  rssMiB: number;
  hwmMiB: number;
}

async function memory(pid: number): Promise<Memory> {
  const s = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN);
  return { rssMiB: kb('VmRSS') / 1024, hwmMiB: kb('VmHWM') / 1024 };
}

/** The V8 heap in use, as `vgw serve` reports it on /metrics (nodejs_heap_size_used_bytes). */
async function heapUsedMiB(gw: Gateway): Promise<number> {
  const r = await httpGet(`${gw.adminUrl}/metrics`);
  const m = /^nodejs_heap_size_used_bytes (\S+)$/m.exec(r.body);
  return m ? Number(m[1]) / 2 ** 20 : NaN;
}

/** Samples memory every MEMORY_SAMPLE_MS until stopped. */
function memorySampler(pid: number): { stop(): Promise<{ t: number; rssMiB: number }[]> } {
  const samples: { t: number; rssMiB: number }[] = [];
  let stopped = false;
  const t0 = performance.now();
  const loop = (async () => {
    while (!stopped) {
      const m = await memory(pid).catch(() => undefined);
      if (m) samples.push({ t: Math.round(performance.now() - t0), rssMiB: Math.round(m.rssMiB * 10) / 10 });
      await sleep(MEMORY_SAMPLE_MS);
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return samples;
    },
  };
}

/** Back-to-back GETs on `connections` keep-alive connections until stopped. */
function hammer(url: string, hostName: string, connections: number, tally: PollTally): { stop(): Promise<void> } {
  let stopped = false;
  const loops = Array.from({ length: connections }, async () => {
    const agent = keepAliveAgent();
    while (!stopped) {
      let status = 'error';
      try {
        status = String((await httpGet(url, { host: hostName, agent, headers: MATCH_HEADER, timeoutMs: 10_000 })).status);
      } catch {
        /* counted as "error" */
      }
      tally.requests++;
      tally.byStatus.set(status, (tally.byStatus.get(status) ?? 0) + 1);
    }
    agent.destroy();
  });
  return {
    async stop() {
      stopped = true;
      await Promise.all(loops);
    },
  };
}

interface Throughput {
  pass: { rps: number[]; errors: number; ref: number[]; refErrors: number };
  hit: { rps: number[]; errors: number; ref: number[]; refErrors: number };
}

interface SizeResult {
  routes: number;
  uptime: string;
  coldMs: number;
  shards?: number;
  rssAfterLoadMiB: number;
  /** V8 heap in use (not collected first: what the process holds, garbage included). */
  heapAfterLoadMiB?: number;
  additions: number[];
  additionReloads: { compileMs?: number; totalMs?: number; compiled?: number }[];
  flips: {
    changes: number;
    generations: number;
    requests: number;
    non200: number;
    byStatus: Record<string, number>;
    rssBeforeMiB: number;
    rssAfterMiB: number;
    heapBeforeMiB?: number;
    heapAfterMiB?: number;
    rssMaxMiB: number;
    samples: { t: number; rssMiB: number }[];
  };
  throughput?: Throughput;
}

async function statusOf(gw: Gateway): Promise<{ generation: number; startSplitPending?: boolean; stats?: { routes: number; vhosts: number }; lastReload?: { compileMs?: number; totalMs?: number; compiled?: number } }> {
  return gw.status();
}

async function runSize(n: number, tmp: string, reference: Gateway | null): Promise<SizeResult> {
  const uptime = execFileSync('uptime', { encoding: 'utf8' }).trim();
  console.log(`${n} routes (${uptime})`);
  const dir = join(tmp, `routes-${n}`);
  const workDir = join(tmp, `work-${n}`);
  await writeScaleDir(dir, GATEWAY, BACKEND, n);
  await mkdir(workDir, { recursive: true });
  const nodeArgs = flags['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${join(tmp, `profile-${n}`)}`] : [];
  const gw = spawnServe(dir, ADMIN_PORT, workDir, join(tmp, `serve-${n}.log`), { nodeArgs, adminAddress: ADMIN_ADDRESS });
  const gatewayUrl = `http://${GATEWAY.address}:${GATEWAY.port}`;
  try {
    const pid = gw.proc.proc.pid as number;
    const last = n - 1;
    const ok = await waitFor200WithHeader(gatewayUrl, last, gw);
    const coldMs = ok - gw.spawnedAt;
    const st = await waitFor('/status', 10_000, 50, () => statusOf(gw), gw.proc);
    if (st.stats?.routes !== n) throw new Error(`${n} routes written, ${st.stats?.routes} loaded`);
    // A large gateway starts with a few coarse shards and splits them right after; the
    // measurements below are of the gateway as it runs, so they wait for the split.
    await waitFor('the start-up shard split', 300_000, 100, async () => ((await statusOf(gw)).startSplitPending ? undefined : true), gw.proc);
    // Let the first apply's garbage go before reading the resident size.
    await sleep(2_000);
    const rssAfterLoadMiB = (await memory(pid)).rssMiB;
    const heapAfterLoadMiB = await heapUsedMiB(gw);
    console.log(`  cold start ${fmt(coldMs / 1000, 2)} s; RSS after load ${fmt(rssAfterLoadMiB)} MiB, heap used ${fmt(heapAfterLoadMiB)} MiB`);

    // New route files, one at a time.
    const additions: number[] = [];
    const additionReloads: SizeResult['additionReloads'] = [];
    const agent = keepAliveAgent();
    try {
      for (let k = 0; k < ADDITIONS; k++) {
        const i = n + k;
        const url = `${gatewayUrl}${scaleRoutePrefix(i)}/new`;
        const t0 = performance.now();
        await writeRoute(dir, i);
        const t1 = await pollUntilHeader(url, scaleRouteHost(i), agent);
        additions.push(t1 - t0);
        await sleep(100);
        const after = await statusOf(gw);
        additionReloads.push({ compileMs: after.lastReload?.compileMs, totalMs: after.lastReload?.totalMs, compiled: after.lastReload?.compiled });
        console.log(`  +${scaleRouteHost(i)}: ${fmt(t1 - t0)} ms (reload ${fmt(after.lastReload?.totalMs)} ms, vcl.inline ${fmt(after.lastReload?.compileMs)} ms)`);
      }
    } finally {
      agent.destroy();
    }

    // Route 1 flips between two prefixes every FLIP_MS while route 0 is hammered.
    const tally = newTally();
    const before = await statusOf(gw);
    const rssBeforeMiB = (await memory(pid)).rssMiB;
    const heapBeforeMiB = await heapUsedMiB(gw);
    const sampler = memorySampler(pid);
    const load = hammer(`${gatewayUrl}${scaleRoutePrefix(0)}/existing`, scaleRouteHost(0), HAMMER_CONNECTIONS, tally);
    let next = performance.now();
    for (let k = 1; k <= FLIPS; k++) {
      next += FLIP_MS;
      await writeRoute(dir, 1, k % 2 === 1);
      const wait = next - performance.now();
      if (wait > 0) await sleep(wait);
      if (k % 20 === 0) console.log(`  ${k} flips, RSS ${fmt((await memory(pid)).rssMiB)} MiB, ${describe(tally)}`);
    }
    // The last flip must go live before counting.
    await waitFor200WithHeader(gatewayUrl, 1, gw, FLIPS % 2 === 1);
    await load.stop();
    await sleep(1_000);
    const samples = await sampler.stop();
    const afterFlips = await statusOf(gw);
    const rssAfterMiB = (await memory(pid)).rssMiB;
    const heapAfterMiB = await heapUsedMiB(gw);
    const flips: SizeResult['flips'] = {
      changes: FLIPS,
      generations: afterFlips.generation - before.generation,
      requests: tally.requests,
      non200: countOther(tally, ['200']),
      byStatus: Object.fromEntries(tally.byStatus),
      rssBeforeMiB,
      rssAfterMiB,
      heapBeforeMiB,
      heapAfterMiB,
      rssMaxMiB: Math.max(...samples.map((s) => s.rssMiB)),
      samples,
    };
    console.log(`  flips: ${flips.generations} configs live for ${FLIPS} changes; ${describe(tally)}; RSS ${fmt(rssBeforeMiB)} -> ${fmt(rssAfterMiB)} MiB (max ${fmt(flips.rssMaxMiB)})`);

    let throughput: Throughput | undefined;
    if (reference) throughput = await measureThroughput(gatewayUrl, n - 1);
    const shards = await shardCount(join(tmp, `serve-${n}.log`));
    return { routes: n, uptime, coldMs, shards, rssAfterLoadMiB, heapAfterLoadMiB, additions, additionReloads, flips, throughput };
  } finally {
    await gw.stop();
  }
}

async function shardCount(logFile: string): Promise<number | undefined> {
  let shards: number | undefined;
  for (const line of (await readFile(logFile, 'utf8')).split('\n')) {
    if (!line.includes('"vcl-active"')) continue;
    try {
      shards = (JSON.parse(line) as { shards?: number }).shards;
    } catch {
      /* not a log line */
    }
  }
  return shards;
}

async function waitFor200WithHeader(gatewayUrl: string, i: number, gw: Gateway, flipped = false): Promise<number> {
  return waitFor(`200 from ${scaleRouteHost(i)}`, 300_000, 10, async () => {
    const r = await httpGet(`${gatewayUrl}${scaleRoutePrefix(i, flipped)}/x`, { host: scaleRouteHost(i), headers: MATCH_HEADER, timeoutMs: 2_000 });
    return r.status === 200 ? performance.now() : undefined;
  }, gw.proc);
}

async function pollUntilHeader(url: string, hostName: string, agent: ReturnType<typeof keepAliveAgent>): Promise<number> {
  const start = performance.now();
  for (;;) {
    const r = await httpGet(url, { host: hostName, agent, headers: MATCH_HEADER, timeoutMs: 10_000 }).catch(() => undefined);
    if (r?.status === 200) return performance.now();
    if (performance.now() - start > 60_000) throw new Error(`no 200 from ${hostName} within 60 s`);
    await sleep(POLL_MS);
  }
}

async function wrk(url: string, hostName: string, extra: Record<string, string>): Promise<WrkResult> {
  return runWrk({ url, threads: 2, connections: 50, durationS: WRK_S, headers: { Host: hostName, ...MATCH_HEADER, ...extra } });
}

/** This gateway's last route against the reference gateway's one route, rounds interleaved. */
async function measureThroughput(gatewayUrl: string, last: number): Promise<Throughput> {
  const refUrl = `http://${REFERENCE.address}:${REFERENCE.port}`;
  const out: Throughput = { pass: { rps: [], errors: 0, ref: [], refErrors: 0 }, hit: { rps: [], errors: 0, ref: [], refErrors: 0 } };
  for (let round = 0; round < ROUNDS; round++) {
    for (const kind of ['pass', 'hit'] as const) {
      const extra = kind === 'hit' ? CACHE_HEADER : {};
      // Warm-up (fills the cache for the hit runs), then the two measured side by side, in
      // alternating order so that neither always runs second.
      await wrk(`${gatewayUrl}${scaleRoutePrefix(last)}/${kind}`, scaleRouteHost(last), extra);
      await wrk(`${refUrl}${scaleRoutePrefix(0)}/${kind}`, scaleRouteHost(0), extra);
      const pair = round % 2 === 0 ? ['big', 'ref'] : ['ref', 'big'];
      for (const which of pair) {
        const r = which === 'big' ? await wrk(`${gatewayUrl}${scaleRoutePrefix(last)}/${kind}`, scaleRouteHost(last), extra) : await wrk(`${refUrl}${scaleRoutePrefix(0)}/${kind}`, scaleRouteHost(0), extra);
        if (which === 'big') {
          out[kind].rps.push(r.rps);
          out[kind].errors += wrkErrors(r);
        } else {
          out[kind].ref.push(r.rps);
          out[kind].refErrors += wrkErrors(r);
        }
      }
      console.log(`  round ${round + 1} ${kind}: ${fmt(out[kind].rps.at(-1), 0)} req/s against ${fmt(out[kind].ref.at(-1), 0)} req/s with 1 route`);
    }
  }
  return out;
}

async function rerender(): Promise<void> {
  const all = JSON.parse(await readFile(new URL('./results.json', import.meta.url), 'utf8')) as Record<string, Section>;
  const previous = all.scale;
  if (!previous) throw new Error('bench/results.json has no scale section yet');
  const analysis = await readFile(new URL('./scale-analysis.md', import.meta.url), 'utf8');
  const results = (previous.data as { results: SizeResult[] }).results;
  saveSection('scale', { ...previous, markdown: `${scaleMarkdown(results)}\n${analysis}` });
}

async function main(): Promise<void> {
  if (flags['from-results']) return rerender();
  const quiet = await waitForQuietMachine(30);
  const t0 = performance.now();
  const machine = machineInfo();
  const tmp = await mkdtemp(join(tmpdir(), 'vgw-bench-scale-'));
  // varnishd's jail user must reach the work directories below it.
  await chmod(tmp, 0o755);
  let backend: EchoBackend | null = null;
  let reference: Gateway | null = null;
  const results: SizeResult[] = [];
  let failed = false;
  try {
    backend = await startEcho(BACKEND.address, BACKEND.port);
    if (THROUGHPUT) {
      const refDir = join(tmp, 'reference');
      await writeScaleDir(refDir, REFERENCE, BACKEND, 1);
      await mkdir(join(tmp, 'work-reference'));
      reference = spawnServe(refDir, REFERENCE_ADMIN_PORT, join(tmp, 'work-reference'), join(tmp, 'serve-reference.log'), { adminAddress: ADMIN_ADDRESS });
      await waitFor200WithHeader(`http://${REFERENCE.address}:${REFERENCE.port}`, 0, reference);
    }
    for (const n of SIZES) results.push(await runSize(n, tmp, reference));
  } catch (err) {
    failed = true;
    console.error(`failed; logs kept in ${tmp}`);
    throw err;
  } finally {
    await reference?.stop();
    await backend?.stop();
  }
  if (flags['cpu-prof']) console.log(`profiles kept in ${tmp}/profile-*`);
  else if (!failed) await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
  const durationS = (performance.now() - t0) / 1000;
  const analysis = await readFile(new URL('./scale-analysis.md', import.meta.url), 'utf8');
  const markdown = `${scaleMarkdown(results)}\n${analysis}`;
  console.log(scaleMarkdown(results));
  if (flags['no-save']) return;
  saveSection('scale', {
    title: 'Scale',
    command: 'bench:scale',
    machine,
    durationS,
    backgroundCores: quiet.backgroundCores,
    markdown,
    data: { additions: ADDITIONS, flips: FLIPS, flipMs: FLIP_MS, wrkSeconds: WRK_S, rounds: ROUNDS, results },
  });
  console.log(`done in ${fmt(durationS)} s; bench/README.md updated`);
}

function ratio(t: Throughput['pass']): string {
  const best = (v: number[]) => Math.max(...v);
  const r = best(t.rps) / best(t.ref);
  return `${fmt(r, 2)} (${fmt(best(t.rps), 0)} / ${fmt(best(t.ref), 0)})`;
}

function scaleMarkdown(results: SizeResult[]): string {
  const rows = results.map((r) => {
    const a = stats(r.additions);
    const growth = (100 * (r.flips.rssAfterMiB - r.flips.rssBeforeMiB)) / r.flips.rssBeforeMiB;
    return [
      r.routes.toLocaleString('en-US'),
      r.shards ?? 'n/a',
      `${fmt(a.mean, 0)} / ${fmt(a.max, 0)}`,
      fmt(r.rssAfterLoadMiB, 0),
      `${fmt(r.flips.rssBeforeMiB, 0)} → ${fmt(r.flips.rssAfterMiB, 0)} (${growth >= 0 ? '+' : ''}${fmt(growth, 1)} %, max ${fmt(r.flips.rssMaxMiB, 0)})`,
      r.heapAfterLoadMiB === undefined ? 'n/a' : `${fmt(r.heapAfterLoadMiB, 0)}; ${fmt(r.flips.heapBeforeMiB, 0)} → ${fmt(r.flips.heapAfterMiB, 0)}`,
      fmt(r.coldMs / 1000, 2),
      r.throughput ? ratio(r.throughput.pass) : 'n/a',
      r.throughput ? ratio(r.throughput.hit) : 'n/a',
      `${r.flips.non200} of ${r.flips.requests.toLocaleString('en-US')}`,
      `${r.flips.generations} / ${r.flips.changes}`,
      r.uptime.replace(/^.*load average: /, ''),
    ];
  });
  return `Workload: one HTTPRoute per file (route i: host \`r<i>.scale.test\`, one rule matching path prefix
\`/p<i>\` and header \`x-bench: on\`), one Gateway, one Service; \`npm run bench:scale\` (flags:
\`--sizes\`, \`--additions\`, \`--flips\`, \`--wrk-seconds\`, \`--rounds\`, \`--no-throughput\`, \`--cpu-prof\`).
"new route" is the time from writing a new route file (hidden name, renamed into place) to its
first 200, polled every ${POLL_MS} ms, over ${ADDITIONS} additions. RSS is VmRSS of the \`vgw serve\` Node process
(varnishd not included): after the load (2 s after the last route's first 200), and before and after
${FLIPS} changes of one route file (its prefix flips every ${FLIP_MS} ms) while ${HAMMER_CONNECTIONS} keep-alive connections send
GETs to another route back to back ("non-200" counts their answers that were not 200; changes that
arrive while a config is being applied are coalesced, so fewer configs go live than changes are
made, the more so the slower the machine). Cold start
is from spawning \`vgw serve\` to the first 200 of the last route. Throughput compares the last
route of this gateway with a 1-route gateway running alongside (wrk 2 threads, 50 connections,
${WRK_S} s, ${ROUNDS} interleaved rounds, best of each): (a) pass (no Cache-Control, every request goes
to the backend), (b) cache hit. The machine is shared: the last column is \`uptime\`'s load averages
at the start of each size. Heap is the V8 heap in use as the process reports it on /metrics
(\`nodejs_heap_size_used_bytes\`, garbage not yet collected included), after the load and
before → after the route changes.

${table(
    ['routes', 'shard VCLs', 'new route → 200 mean / max ms', 'RSS after load MiB', 'RSS over the route changes MiB', 'heap used MiB: after load; over the changes', 'cold start s', 'throughput vs 1 route: (a) pass', '(b) cache hit', 'non-200 under flips', 'configs live / route changes', 'load average'],
    rows,
  )}
`;
}

await main();
