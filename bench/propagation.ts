// How long a new route takes to serve. With 100, 1 000 and 5 000 routes loaded, HTTPRoutes are
// added one at a time, each as its own file with a new hostname, and the new host is polled
// every 5 ms until the first 200. Meanwhile an existing route is polled every 5 ms as well:
// neither poller may see anything but 404 (new host, before) and 200.
import { chmod, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { render } from '../src/pipeline/render.ts';
import { loadManifestDir } from '../src/providers/file/load.ts';
import { addRouteFile, routeHost, routePath, writeBenchDir, type BenchTopology } from './lib/manifests.ts';
import { backgroundPoller, countOther, describe, keepAliveAgent, newTally, pollUntil, type PollTally } from './lib/poll.ts';
import { httpGet, spawnServe, startEcho, waitFor, waitFor200, waitForQuietMachine, type EchoBackend, type ServeStatus } from './lib/procs.ts';
import { fmt, machineInfo, saveSection, stats, table } from './lib/report.ts';

const SIZES = [100, 1_000, 5_000];
const ADDITIONS = 20;
const POLL_MS = 5;
/** Pause between additions, so that each one starts from an idle control plane. */
const SETTLE_MS = 100;
const PER_ADDITION_TIMEOUT_MS = 60_000;
const ADMIN_PORT = 18290;
const TOPOLOGY: BenchTopology = { gatewayAddress: '127.0.5.2', gatewayPort: 18280, backendAddress: '127.0.6.2', backendPort: 18281 };

interface Addition {
  index: number;
  ms: number;
  polls: number;
  /** Configs that went live for this one addition (1 = no wasted reloads). */
  generations: number;
  /** VCLs compiled by the reload that made the route live. */
  compiled?: number;
  reload?: ServeStatus['lastReload'];
}

interface SizeResult {
  routes: number;
  /** Shard VCLs of the loaded config (0 = one unsharded VCL), from an in-process render. */
  shards: number;
  additions: Addition[];
  newHost: { requests: number; other: number; byStatus: Record<string, number> };
  existing: { requests: number; non200: number; byStatus: Record<string, number> };
}

function tallyJson(t: PollTally): Record<string, number> {
  return Object.fromEntries(t.byStatus);
}

async function runSize(n: number, tmp: string): Promise<SizeResult> {
  const dir = join(tmp, `routes-${n}`);
  const workDir = join(tmp, `work-${n}`);
  await writeBenchDir(dir, TOPOLOGY, n);
  await mkdir(workDir, { recursive: true });
  const gatewayUrl = `http://${TOPOLOGY.gatewayAddress}:${TOPOLOGY.gatewayPort}`;
  const gw = spawnServe(dir, ADMIN_PORT, workDir, join(tmp, `serve-${n}.log`));
  let failed = false;
  const newTallyAll = newTally();
  const existingTally = newTally();
  const additions: Addition[] = [];
  try {
    await waitFor200(gatewayUrl, routeHost(n - 1), `${routePath(n - 1)}/x`, 120_000, gw);
    await waitFor('/status', 10_000, 50, () => gw.status(), gw.proc);
    const existing = backgroundPoller(`${gatewayUrl}${routePath(0)}/existing`, routeHost(0), POLL_MS, existingTally);
    const agent = keepAliveAgent();
    try {
      for (let k = 0; k < ADDITIONS; k++) {
        const i = n + k;
        const host = routeHost(i);
        const url = `${gatewayUrl}${routePath(i)}/new`;
        const before = await gw.status();
        const pre = await httpGet(url, { host, agent });
        if (pre.status !== 404) throw new Error(`${host} answered ${pre.status} before its route existed`);
        const tally = newTally();
        const t0 = performance.now();
        await addRouteFile(dir, i);
        const t1 = await pollUntil(url, host, 200, POLL_MS, PER_ADDITION_TIMEOUT_MS, tally, agent);
        for (const [s, c] of tally.byStatus) newTallyAll.byStatus.set(s, (newTallyAll.byStatus.get(s) ?? 0) + c);
        newTallyAll.requests += tally.requests;
        // Let a reload that the same write may still have queued finish before counting.
        await sleep(SETTLE_MS);
        const after = await gw.status();
        const a: Addition = {
          index: i,
          ms: t1 - t0,
          polls: tally.requests,
          generations: after.generation - before.generation,
          compiled: after.lastReload?.compiled,
          reload: after.lastReload,
        };
        additions.push(a);
        console.log(`  ${n} routes, +${host}: ${fmt(a.ms)} ms, ${a.polls} polls (${describe(tally)}), ${a.generations} reload(s), last vcl.inline ${fmt(a.reload?.compileMs)} ms (${a.compiled ?? '?'} VCLs)`);
      }
    } finally {
      agent.destroy();
      await existing.stop();
    }
    return {
      routes: n,
      shards: render((await loadManifestDir(dir)).snapshot, { defaultAddress: '127.0.0.1' }).deploy.shards.length,
      additions,
      newHost: { requests: newTallyAll.requests, other: countOther(newTallyAll, ['200', '404']), byStatus: tallyJson(newTallyAll) },
      existing: { requests: existingTally.requests, non200: countOther(existingTally, ['200']), byStatus: tallyJson(existingTally) },
    };
  } catch (err) {
    failed = true;
    throw err;
  } finally {
    await gw.stop();
    if (!failed) {
      await rm(dir, { recursive: true, force: true });
      await rm(workDir, { recursive: true, force: true }).catch(() => undefined);
    }
  }
}

async function main(): Promise<void> {
  const quiet = await waitForQuietMachine(60);
  const t0 = performance.now();
  const machine = machineInfo();
  const tmp = await mkdtemp(join(tmpdir(), 'vgw-bench-propagation-'));
  // varnishd's jail user must reach the work directories below it.
  await chmod(tmp, 0o755);
  let backend: EchoBackend | null = null;
  const sizes: SizeResult[] = [];
  try {
    backend = await startEcho(TOPOLOGY.backendAddress, TOPOLOGY.backendPort);
    for (const n of SIZES) {
      console.log(`${n} routes`);
      sizes.push(await runSize(n, tmp));
    }
  } catch (err) {
    console.error(`failed; logs kept in ${tmp}`);
    throw err;
  } finally {
    await backend?.stop();
  }
  await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
  const durationS = (performance.now() - t0) / 1000;
  saveSection('propagation', {
    title: 'Route propagation',
    command: 'bench:propagation',
    machine,
    durationS,
    backgroundCores: quiet.backgroundCores,
    markdown: propagationMarkdown(sizes),
    data: { additions: ADDITIONS, pollMs: POLL_MS, settleMs: SETTLE_MS, sizes },
  });
  console.log(`done in ${fmt(durationS)} s; bench/README.md updated`);
}

function propagationMarkdown(sizes: SizeResult[]): string {
  const rows = sizes.map((s) => {
    const st = stats(s.additions.map((a) => a.ms));
    const inline = stats(s.additions.map((a) => a.reload?.compileMs ?? NaN).filter(Number.isFinite));
    const reloadTotal = stats(s.additions.map((a) => a.reload?.totalMs ?? NaN).filter(Number.isFinite));
    const extra = s.additions.reduce((sum, a) => sum + Math.max(0, a.generations - 1), 0);
    const compiled = stats(s.additions.map((a) => a.compiled ?? NaN).filter(Number.isFinite));
    return [
      s.routes.toLocaleString('en-US'),
      s.shards || '1 (unsharded)',
      st.n,
      fmt(st.mean),
      fmt(st.p50),
      fmt(st.max),
      fmt(inline.p50),
      compiled.n ? fmt(compiled.p50, 0) : 'n/a',
      fmt(st.p50 - reloadTotal.p50),
      extra,
      `${s.newHost.other} of ${s.newHost.requests.toLocaleString('en-US')}`,
      `${s.existing.non200} of ${s.existing.requests.toLocaleString('en-US')}`,
    ];
  });
  const biggest = sizes[sizes.length - 1];
  const b = biggest ? stats(biggest.additions.map((a) => a.ms)) : undefined;
  const bInline = biggest ? stats(biggest.additions.map((a) => a.reload?.compileMs ?? NaN).filter(Number.isFinite)) : undefined;
  const bTotal = biggest ? stats(biggest.additions.map((a) => a.reload?.totalMs ?? NaN).filter(Number.isFinite)) : undefined;
  const statuses = (s: SizeResult) =>
    `${s.routes.toLocaleString('en-US')} routes: new host ${Object.entries(s.newHost.byStatus).map(([k, v]) => `${k} ×${v}`).join(', ')}; existing route ${Object.entries(s.existing.byStatus).map(([k, v]) => `${k} ×${v}`).join(', ')}`;
  return `Each addition writes one HTTPRoute file (new hostname \`r<N+k>.bench.test\`, written to a hidden
temporary name and renamed into place) into the watched directory of a running \`vgw serve\`,
then polls the new host every ${POLL_MS} ms over one keep-alive connection (one request in flight at
a time) until the first 200. Time is measured on the monotonic wall clock (\`performance.now()\`)
from just before the file write to the arrival of the first 200, so it includes up to one poll
interval plus one request of measurement slack. ${ADDITIONS} additions per size, ${SETTLE_MS} ms apart; an
existing route (\`r0.bench.test\`) is polled every ${POLL_MS} ms on its own keep-alive connection
during all of them.

${table(
    ['routes loaded', 'shard VCLs', 'additions', 'mean ms', 'p50 ms', 'max ms', 'vcl.inline p50 ms', 'VCLs compiled p50', 'p50 minus reload total ms', 'extra reloads', 'new host: not 404/200', 'existing route: not 200'],
    rows,
  )}

"vcl.inline p50" is varnishd's VCL-to-C, C compile and load as \`/status\` reports it for the
reload that made the route live, summed over the VCLs that reload compiled (with shards, only
the shard that holds the new host). "p50 minus reload total" is the rest: the watcher's
debounce, re-reading the directory (only changed files are parsed again), rendering the config
in Node, and poll slack. "extra reloads" counts configs that went live beyond one per addition.

Statuses seen: ${sizes.map(statuses).join('. ')}.
${
    b && bInline && bTotal
      ? `
At ${biggest.routes.toLocaleString('en-US')} routes a new route needs ${fmt(b.p50, 0)} ms (p50; the target is tens of milliseconds, the
fastest peer measured about 17 ms mean and 75 ms max): ${fmt(bInline.p50, 0)} ms of vcl.inline, and ${fmt(b.p50 - bTotal.p50, 0)} ms
before the reload starts, mostly rendering (see the compile section, "one change").
${bInline.p50 > b.p50 - bTotal.p50 ? 'Compiling VCL in varnishd is the larger part.' : 'The work in Node before the reload is the larger part: every change still translates every route and fingerprints every shard (only changed shards are rendered again).'}
`
      : ''
  }`;
}

await main();
