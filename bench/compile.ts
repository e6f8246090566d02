// Config build and reload cost against the number of routes. For each size:
// - cold: parse the manifest directory from scratch (loadManifestDir, as at start-up), render
//   it and deploy it into a running varnishd (every shard VCL compiled);
// - one change: add one route file, re-read the directory through the caching ManifestLoader
//   that `vgw serve` keeps, render, and deploy (only the shard holding the new host, plus the
//   dispatcher when the shard count changes, is compiled).
// Deploys go through the same VclReloader `vgw serve` uses; it reports vcl.inline time (VCL ->
// C, C compiler, load into the child) and vcl.label/vcl.use time separately.
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { formatProblem } from '../src/gatewayapi/translator.ts';
import { render, type RenderedConfig } from '../src/pipeline/render.ts';
import { loadManifestDir, ManifestLoader } from '../src/providers/file/load.ts';
import { GATEWAY_PARAMS } from '../src/runtime/data-plane.ts';
import { VclReloader, type ReloadResult } from '../src/varnish/reloader.ts';
import { Varnishd } from '../src/varnish/varnishd.ts';
import { deployable } from '../src/vcl/shards.ts';
import { addRouteFile, writeBenchDir, type BenchTopology } from './lib/manifests.ts';
import { waitForQuietMachine } from './lib/procs.ts';
import { fmt, machineInfo, saveSection, stats, table } from './lib/report.ts';

const SIZES = [10, 100, 1_000, 5_000, 10_000];
/** Repetitions of each step per size; the median is reported. */
const REPS = 3;

const TOPOLOGY: BenchTopology = { gatewayAddress: '127.0.5.3', gatewayPort: 18380, backendAddress: '127.0.6.3', backendPort: 18381 };

interface Step {
  loadMs: number;
  renderMs: number;
  inlineMs: number;
  useMs: number;
  compiled: number;
}

interface Row {
  routes: number;
  shards: number;
  vclBytes: number;
  largestVclBytes: number;
  cold: Step;
  /** vcl.inline of the same config rendered as one VCL, for comparison; only where sharded. */
  coldUnshardedInlineMs?: number;
  change: Step;
  cc: string;
}

const median = (v: number[]) => stats(v).p50;

function medianStep(steps: Step[]): Step {
  const m = (f: (s: Step) => number) => median(steps.map(f));
  return { loadMs: m((s) => s.loadMs), renderMs: m((s) => s.renderMs), inlineMs: m((s) => s.inlineMs), useMs: m((s) => s.useMs), compiled: m((s) => s.compiled) };
}

async function timed<T>(f: () => T | Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const v = await f();
  return [v, performance.now() - t0];
}

function renderChecked(snapshot: Parameters<typeof render>[0], routes: number, shards?: number): RenderedConfig {
  const config = render(snapshot, { defaultAddress: '127.0.0.1', ...(shards ? { shards } : {}) });
  if (config.problems.length) throw new Error(`${routes} routes: ${config.problems.slice(0, 3).map(formatProblem).join('; ')}`);
  return config;
}

/** What `vgw serve` hands the reloader for a rendered config. */
async function deploy(reloader: VclReloader, config: RenderedConfig, what: string): Promise<ReloadResult> {
  const res = await reloader.submit(deployable(config.deploy));
  if (res.status !== 'active') throw new Error(`${what}: reload ${res.status}: ${res.error ?? ''}`);
  return res;
}

async function main(): Promise<void> {
  const quiet = await waitForQuietMachine(60);
  const t0 = performance.now();
  const machine = machineInfo();
  const tmp = await mkdtemp(join(tmpdir(), 'vgw-bench-compile-'));
  // varnishd's jail user must reach the work directory.
  await chmod(tmp, 0o755);
  const rows: Row[] = [];
  let varnishd: Varnishd | null = null;
  try {
    const bootDir = join(tmp, 'boot');
    await writeBenchDir(bootDir, TOPOLOGY, 1);
    const boot = renderChecked((await loadManifestDir(bootDir)).snapshot, 1);
    varnishd = new Varnishd({
      listeners: boot.sockets,
      workDir: join(tmp, 'varnishd'),
      vcl: boot.vcl,
      params: GATEWAY_PARAMS,
      logger: pino({ level: 'silent' }),
    });
    await varnishd.start();
    const reloader = new VclReloader(varnishd);
    const cc = varnishd.cc?.command ?? 'unknown';
    for (const n of SIZES) {
      const dir = join(tmp, `routes-${n}`);
      await writeBenchDir(dir, TOPOLOGY, n);

      // Cold: each rep deploys onto a varnishd holding the 1-route config, so every shard compiles.
      const cold: Step[] = [];
      let config = boot;
      for (let r = 0; r < REPS; r++) {
        await deploy(reloader, boot, 'reset to 1 route');
        const [loaded, loadMs] = await timed(() => loadManifestDir(dir));
        const [c, renderMs] = await timed(() => renderChecked(loaded.snapshot, n));
        const res = await deploy(reloader, c, `${n} routes, cold`);
        cold.push({ loadMs, renderMs, inlineMs: res.compileMs ?? NaN, useMs: res.useMs ?? NaN, compiled: res.compiled ?? NaN });
        config = c;
      }

      // The same config as one VCL: what sharding costs a cold deploy.
      let coldUnshardedInlineMs: number | undefined;
      if (config.deploy.shards.length > 0) {
        const unsharded = renderChecked((await loadManifestDir(dir)).snapshot, n, 1);
        const inline: number[] = [];
        for (let r = 0; r < REPS; r++) {
          await deploy(reloader, boot, 'reset to 1 route');
          inline.push((await deploy(reloader, unsharded, `${n} routes, unsharded`)).compileMs ?? NaN);
        }
        coldUnshardedInlineMs = median(inline);
        // The loop below starts from the sharded config being live.
        await deploy(reloader, config, `${n} routes, cold`);
      }

      // One change: the loader has seen the directory and the config is live; one file is new.
      const loader = new ManifestLoader();
      await loader.load(dir);
      const change: Step[] = [];
      for (let r = 0; r < REPS; r++) {
        await addRouteFile(dir, n + r);
        const [loaded, loadMs] = await timed(() => loader.load(dir));
        const [c, renderMs] = await timed(() => renderChecked(loaded.snapshot, n + r + 1));
        const res = await deploy(reloader, c, `${n} routes, +1`);
        change.push({ loadMs, renderMs, inlineMs: res.compileMs ?? NaN, useMs: res.useMs ?? NaN, compiled: res.compiled ?? NaN });
        config = c;
      }
      const texts = [config.deploy.main, ...config.deploy.shards];
      const row: Row = {
        routes: n,
        shards: config.deploy.shards.length,
        vclBytes: texts.reduce((s, t) => s + Buffer.byteLength(t), 0),
        largestVclBytes: Math.max(...texts.map((t) => Buffer.byteLength(t))),
        cold: medianStep(cold),
        coldUnshardedInlineMs,
        change: medianStep(change),
        cc,
      };
      rows.push(row);
      const show = (s: Step) =>
        `load ${fmt(s.loadMs)} ms, render ${fmt(s.renderMs)} ms, vcl.inline ${fmt(s.inlineMs)} ms (${s.compiled} VCLs), label/use ${fmt(s.useMs)} ms`;
      console.log(`${n} routes, ${row.shards} shards, ${row.vclBytes} B VCL: cold ${show(row.cold)}; one change ${show(row.change)}`);
      await rm(dir, { recursive: true, force: true });
    }
  } finally {
    await varnishd?.stop().catch(() => undefined);
    await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
  }

  const durationS = (performance.now() - t0) / 1000;
  saveSection('compile', {
    title: 'Compile and reload time',
    command: 'bench:compile',
    machine,
    durationS,
    backgroundCores: quiet.backgroundCores,
    markdown: compileMarkdown(rows),
    data: { reps: REPS, rows },
  });
  console.log(`done in ${fmt(durationS)} s; bench/README.md updated`);
}

function total(s: Step): number {
  return s.loadMs + s.renderMs + s.inlineMs + s.useMs;
}

function compileMarkdown(rows: Row[]): string {
  const first = rows[0];
  const last = rows[rows.length - 1];
  const n = (r: Row) => r.routes.toLocaleString('en-US');
  const stepCells = (s: Step) => [fmt(s.loadMs), fmt(s.renderMs), fmt(s.inlineMs), String(s.compiled), fmt(s.useMs), fmt(total(s))];
  const steps = last
    ? ([
        ['re-reading the manifests', last.change.loadMs],
        ['render', last.change.renderMs],
        ['vcl.inline', last.change.inlineMs],
        ['vcl.label/vcl.use', last.change.useMs],
      ] as const)
    : [];
  const dominant = [...steps].sort((a, b) => b[1] - a[1])[0];
  return `What a config costs to build and deploy, by number of routes (median of ${REPS} runs of each step).
"cold" is a whole config deployed onto a varnishd that holds a different one (start-up, or a
change of shard count): \`loadManifestDir\` parses every file, every shard VCL is compiled.
"one change" adds one route file to a live config: the \`ManifestLoader\` that \`vgw serve\` keeps
parses only that file, \`render()\` (src/pipeline/render.ts: translate + endpoints + VCL text of
every shard, in-process) runs as usual, and the reloader compiles only VCLs whose text changed.
"vcl.inline" is varnishd turning VCL into C, compiling it with \`${first?.cc ?? ''}\` and loading it
into the child (summed over the VCLs compiled); "label/use" is \`vcl.label\` for changed shards
plus \`vcl.use\` for a changed dispatcher. Both are measured by \`VclReloader\`, as \`vgw serve\`
runs them. "vcl.inline as one VCL" renders the same routes unsharded (\`render\` option
\`shards: 1\`) and deploys that, for comparison. All routes are in one multi-document YAML file.

${table(
    ['routes', 'shard VCLs', 'VCL bytes (all / largest)', 'load ms', 'render ms', 'vcl.inline ms', 'VCLs compiled', 'label/use ms', 'total ms', 'vcl.inline as one VCL ms'],
    rows.map((r) => [
      n(r),
      r.shards || '1 (unsharded)',
      `${r.vclBytes.toLocaleString('en-US')} / ${r.largestVclBytes.toLocaleString('en-US')}`,
      ...stepCells(r.cold),
      r.coldUnshardedInlineMs === undefined ? '—' : fmt(r.coldUnshardedInlineMs),
    ]),
  ).replace(/^\| routes/, '| cold: routes')}

${table(
    ['routes', 'shard VCLs', 'load ms', 'render ms', 'vcl.inline ms', 'VCLs compiled', 'label/use ms', 'total ms', 'µs per route'],
    rows.map((r) => [n(r), r.shards || '1 (unsharded)', ...stepCells(r.change), fmt((total(r.change) * 1000) / r.routes, 1)]),
  ).replace(/^\| routes/, '| one change: routes')}

"total" for one change is the floor for route propagation at that size (the propagation section
adds the watcher's debounce and poll slack).
${
    last && dominant
      ? `At ${n(last)} routes one change costs ${fmt(total(last.change), 0)} ms, against ${fmt(total(last.cold), 0)} ms cold; its largest step is ${dominant[0]}
(${fmt(dominant[1], 0)} ms).${
          last.coldUnshardedInlineMs !== undefined
            ? ` Cold, the ${last.shards + 1} VCLs take ${fmt(last.cold.inlineMs / last.coldUnshardedInlineMs, 1)}× the vcl.inline time of the same
routes as one VCL (${fmt(last.cold.inlineMs, 0)} ms against ${fmt(last.coldUnshardedInlineMs, 0)} ms): each VCL has a fixed cost, paid at start-up and whenever the
shard count changes.`
            : ''
        }`
      : ''
  }
`;
}

await main();
