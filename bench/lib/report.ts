// Results live in bench/results.json, one entry per benchmark; bench/README.md is regenerated
// from the whole file each time, so a rerun replaces only its own section.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';

const RESULTS = fileURLToPath(new URL('../results.json', import.meta.url));
const README = fileURLToPath(new URL('../README.md', import.meta.url));

export interface Machine {
  date: string;
  nproc: number;
  cpuModel: string;
  memory: string;
  varnishd: string;
  node: string;
  kernel: string;
  /** Commit of the code measured, "+dirty" when src/ had uncommitted changes. */
  commit: string;
}

export interface Section {
  title: string;
  /** npm script that produces the section. */
  command: string;
  machine: Machine;
  durationS: number;
  /** CPU busy with other work just before the run, in cores. */
  backgroundCores?: number;
  markdown: string;
  data: unknown;
}

/** Order of the sections in the README; unknown keys go last. */
const ORDER = ['throughput', 'propagation', 'compile'];

export function machineInfo(): Machine {
  const cpuinfo = safe(() => readFileSync('/proc/cpuinfo', 'utf8'), '');
  const meminfo = safe(() => readFileSync('/proc/meminfo', 'utf8'), '');
  const memKb = Number(/^MemTotal:\s+(\d+) kB/m.exec(meminfo)?.[1] ?? NaN);
  return {
    date: new Date().toISOString(),
    nproc: Number(safe(() => execFileSync('nproc', { encoding: 'utf8' }).trim(), String(cpus().length))),
    cpuModel: /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1].trim() ?? cpus()[0]?.model ?? 'unknown',
    memory: `${((Number.isFinite(memKb) ? memKb * 1024 : totalmem()) / 2 ** 30).toFixed(1)} GiB`,
    // varnishd -V prints to stderr.
    varnishd: safe(() => {
      const r = execFileSync('sh', ['-c', 'varnishd -V 2>&1'], { encoding: 'utf8' });
      return /varnish-[^\s)]+/.exec(r)?.[0] ?? r.split('\n')[0];
    }, 'unknown'),
    node: process.version,
    kernel: safe(() => execFileSync('uname', ['-sr'], { encoding: 'utf8' }).trim(), 'unknown'),
    commit: safe(() => {
      const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
      const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() !== '';
      return `${head}${dirty ? '+dirty' : ''}`;
    }, 'unknown'),
  };
}

function safe<T>(f: () => T, fallback: T): T {
  try {
    return f();
  } catch {
    return fallback;
  }
}

export function machineLine(m: Machine): string {
  return `${m.date.slice(0, 16).replace('T', ' ')} UTC, commit ${m.commit ?? 'unknown'}; ${m.nproc} CPUs (${m.cpuModel}), ${m.memory} RAM, ${m.varnishd}, Node ${m.node}, ${m.kernel}`;
}

export function saveSection(key: string, section: Section): void {
  const all = safe(() => JSON.parse(readFileSync(RESULTS, 'utf8')) as Record<string, Section>, {} as Record<string, Section>);
  all[key] = section;
  writeFileSync(RESULTS, `${JSON.stringify(all, null, 2)}\n`);
  writeFileSync(README, renderReadme(all));
}

function renderReadme(all: Record<string, Section>): string {
  const keys = Object.keys(all).sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  const out: string[] = [
    '# Benchmarks',
    '',
    'Generated from `bench/results.json` by the scripts in this directory; each run replaces its own',
    'section. Everything runs on one machine over loopback (wrk, varnishd, the Node control plane and',
    'the Node echo backend share the CPUs), so absolute numbers are a floor, and ratios are what matter.',
    '',
    '| Section | Command | Machine | Run time | Other load before the run |',
    '| --- | --- | --- | --- | --- |',
  ];
  for (const k of keys) {
    const s = all[k];
    out.push(`| [${s.title}](#${anchor(s.title)}) | \`npm run ${s.command}\` | ${machineLine(s.machine)} | ${Math.round(s.durationS)} s | ${background(s)} |`);
  }
  out.push('', 'Workload (all sections): one Gateway with one HTTP listener, one Service with one EndpointSlice');
  out.push('pointing at `vgw echo`, and N HTTPRoutes, route i matching host `r<i>.bench.test` and path');
  out.push('prefix `/p<i>`, all N in one multi-document `routes.yaml`. Helpers are in `bench/lib/`.');
  for (const k of keys) {
    const s = all[k];
    out.push('', `## ${s.title}`, '', `\`npm run ${s.command}\` — ${machineLine(s.machine)}; other load before the run: ${background(s)}`, '', s.markdown.trim());
  }
  return `${out.join('\n')}\n`;
}

function background(s: Section): string {
  return s.backgroundCores === undefined ? 'not measured' : `${s.backgroundCores.toFixed(2)} cores`;
}

function rank(key: string): number {
  const i = ORDER.indexOf(key);
  return i === -1 ? ORDER.length : i;
}

function anchor(title: string): string {
  return title.toLowerCase().replace(/[^a-z0-9 -]/g, '').replace(/ /g, '-');
}

/** A markdown table from a header and rows. */
export function table(header: string[], rows: (string | number)[][]): string {
  const line = (cells: (string | number)[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

export function fmt(n: number | undefined, digits = 1): string {
  if (n === undefined || !Number.isFinite(n)) return 'n/a';
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function stats(values: number[]): { n: number; mean: number; p50: number; p90: number; min: number; max: number } {
  const v = [...values].sort((a, b) => a - b);
  const q = (p: number) => v[Math.min(v.length - 1, Math.max(0, Math.ceil(p * v.length) - 1))];
  return {
    n: v.length,
    mean: v.reduce((s, x) => s + x, 0) / (v.length || 1),
    p50: q(0.5),
    p90: q(0.9),
    min: v[0],
    max: v[v.length - 1],
  };
}
