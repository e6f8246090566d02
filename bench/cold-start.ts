// Cold start of `vgw serve` on its own, repeated: from spawn to the first 200 of the last route,
// one HTTPRoute per file (the scale workload). Several checkouts can be compared run by run
// (`--trees a,b`: each run starts every tree once, in alternating order), so that the load of
// a shared machine spreads evenly over them. Besides wall time it reports CPU time, which
// other work on the machine disturbs less: of the Node process, and of the whole process group
// (Node, varnishd and the compilers varnishd ran), both read when the first 200 arrives.
// Flags: --sizes 10000 --runs 3 --trees DIR[,DIR] --gateway-address --backend-address
//        --admin-address --port --keep (logs and manifests kept in the printed directory).
import { chmod, mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { scaleRouteHost, scaleRoutePrefix, writeScaleDir } from './lib/manifests.ts';
import { httpGet, ManagedProcess, startEcho, waitFor } from './lib/procs.ts';
import { fmt, stats } from './lib/report.ts';

const { values: flags } = parseArgs({
  options: {
    sizes: { type: 'string', default: '10000' },
    runs: { type: 'string', default: '3' },
    trees: { type: 'string', default: '' },
    'gateway-address': { type: 'string', default: '127.0.116.1' },
    'backend-address': { type: 'string', default: '127.0.116.2' },
    'admin-address': { type: 'string', default: '127.0.116.3' },
    port: { type: 'string', default: '18680' },
    keep: { type: 'boolean', default: false },
  },
});
const SIZES = flags.sizes.split(',').map(Number);
const RUNS = Number(flags.runs);
const TREES = flags.trees ? flags.trees.split(',').map((t) => resolve(t)) : [resolve(import.meta.dirname, '..')];
const PORT = Number(flags.port);
const GATEWAY = { address: flags['gateway-address'], port: PORT };
const BACKEND = { address: flags['backend-address'], port: PORT + 1 };
const ADMIN = { address: flags['admin-address'], port: PORT + 2 };
const HEADER = { 'x-bench': 'on' };


/**
 * CPU seconds of one process, and of it with all its descendants (varnishd runs in a process
 * group of its own) including the children they reaped (the compilers varnishd ran).
 */
async function cpu(pid: number): Promise<{ own: number; group: number }> {
  const procs = new Map<number, { ppid: number; ticks: number; ownTicks: number }>();
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = await readFile(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue;
    }
    // Fields after "(comm)": state ppid pgrp ... utime(11) stime(12) cutime(13) cstime(14)
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    procs.set(Number(entry), { ppid: Number(f[1]), ownTicks: Number(f[11]) + Number(f[12]), ticks: Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]) });
  }
  const inTree = (p: number): boolean => {
    for (let cur = p, hops = 0; cur > 1 && hops < 64; hops++) {
      if (cur === pid) return true;
      cur = procs.get(cur)?.ppid ?? 0;
    }
    return false;
  };
  let group = 0;
  for (const [p, info] of procs) if (inTree(p)) group += info.ticks;
  return { own: (procs.get(pid)?.ownTicks ?? 0) / 100, group: group / 100 };
}

interface Run {
  wallS: number;
  nodeCpuS: number;
  groupCpuS: number;
  /** Seconds from spawn to log events of the start (first occurrence of each). */
  events: Record<string, number>;
}

const EVENTS = ['admin-listening', 'manager-started', 'vcl-active'];

async function coldStart(tree: string, dir: string, tmp: string, tag: string): Promise<Run> {
  const workDir = join(tmp, `work-${tag}`);
  await mkdir(workDir, { recursive: true });
  const logFile = join(tmp, `serve-${tag}.log`);
  const args = [join(tree, 'src/cli/main.ts'), 'serve', dir, '--admin-port', String(ADMIN.port), '--admin-address', ADMIN.address, '--work-dir', workDir];
  const spawnedAt = performance.now();
  const wallClockAt = Date.now();
  const proc = new ManagedProcess(`vgw serve (${tree})`, process.execPath, args, logFile);
  const pid = proc.proc.pid as number;
  const last = Number(tag.split('-')[0]) - 1;
  try {
    let usage = { own: 0, group: 0 };
    const okAt = await waitFor(`200 from ${scaleRouteHost(last)}`, 300_000, 10, async () => {
      const r = await httpGet(`http://${GATEWAY.address}:${GATEWAY.port}${scaleRoutePrefix(last)}/x`, { host: scaleRouteHost(last), headers: HEADER, timeoutMs: 2_000 }).catch(() => undefined);
      if (r?.status !== 200) return undefined;
      const at = performance.now();
      usage = await cpu(pid);
      return at;
    }, proc);
    await new Promise((r) => setTimeout(r, 300));
    const events: Record<string, number> = {};
    for (const line of (await readFile(logFile, 'utf8')).split('\n')) {
      try {
        const rec = JSON.parse(line) as { event?: string | { type?: string }; time?: string };
        const name = typeof rec.event === 'string' ? rec.event : rec.event?.type;
        if (name && EVENTS.includes(name) && rec.time && events[name] === undefined) events[name] = (Date.parse(rec.time) - wallClockAt) / 1000;
      } catch {
        /* not a log line */
      }
    }
    return { wallS: (okAt - spawnedAt) / 1000, nodeCpuS: usage.own, groupCpuS: usage.group, events };
  } finally {
    await proc.stop();
    // The next run must not be answered by this one's varnishd.
    await waitFor('gateway port closed', 60_000, 100, async () => (await listening(GATEWAY.address, GATEWAY.port)) ? undefined : true);
    if (!flags.keep) await rm(workDir, { recursive: true, force: true }).catch(() => undefined);
  }
}

function listening(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function summary(values: number[]): string {
  const s = stats(values);
  return `${fmt(s.mean, 2)} (${fmt(s.min, 2)}–${fmt(s.max, 2)})`;
}

async function main(): Promise<void> {
  const tmp = await mkdtemp(join(tmpdir(), 'vgw-bench-cold-'));
  await chmod(tmp, 0o755);
  const backend = await startEcho(BACKEND.address, BACKEND.port);
  try {
    for (const n of SIZES) {
      const dir = join(tmp, `routes-${n}`);
      await writeScaleDir(dir, GATEWAY, BACKEND, n);
      const runs = new Map<string, Run[]>(TREES.map((t) => [t, []]));
      for (let r = 0; r < RUNS; r++) {
        const order = r % 2 === 0 ? TREES : [...TREES].reverse();
        for (const tree of order) {
          const run = await coldStart(tree, dir, tmp, `${n}-${TREES.indexOf(tree)}-${r}`);
          runs.get(tree)!.push(run);
          const ev = Object.entries(run.events).map(([k, v]) => `${k} ${fmt(v, 2)}`).join(', ');
          console.log(`${n} routes, run ${r + 1}, ${tree}: ${fmt(run.wallS, 2)} s wall, ${fmt(run.nodeCpuS, 2)} s Node CPU, ${fmt(run.groupCpuS, 2)} s tree CPU; ${ev}`);
        }
      }
      for (const tree of TREES) {
        const rs = runs.get(tree)!;
        console.log(`${n} routes, ${tree}: cold start ${summary(rs.map((r) => r.wallS))} s; Node CPU ${summary(rs.map((r) => r.nodeCpuS))} s; tree CPU ${summary(rs.map((r) => r.groupCpuS))} s (mean, min–max of ${rs.length})`);
      }
    }
  } finally {
    await backend.stop();
    if (flags.keep) console.log(`kept in ${tmp}`);
    else await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
  }
}

await main();
