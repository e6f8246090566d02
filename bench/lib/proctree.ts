// CPU time by process tree, for benchmarks whose server is several processes that do not share
// a process group: `vgw serve` supervises varnishd and hitch each in a group of its own, so
// the group sums of procs.ts miss them. Here every descendant of a root pid is found through
// the parent pids in /proc and its CPU time is added to a category named after its command.
import { readdir, readFile } from 'node:fs/promises';

// USER_HZ is 100 on every Linux architecture this runs on.
const CLOCK_TICKS = 100;

interface ProcStat {
  pid: number;
  comm: string;
  ppid: number;
  /** utime + stime, seconds. */
  cpu: number;
  /** cutime + cstime: children that exited and were waited for, seconds. */
  childrenCpu: number;
}

function parseStat(pid: number, text: string): ProcStat {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  // Fields after "(comm)": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime
  const f = text.slice(close + 2).split(' ');
  return {
    pid,
    comm: text.slice(open + 1, close),
    ppid: Number(f[1]),
    cpu: (Number(f[11]) + Number(f[12])) / CLOCK_TICKS,
    childrenCpu: (Number(f[13]) + Number(f[14])) / CLOCK_TICKS,
  };
}

async function allProcesses(): Promise<ProcStat[]> {
  const out: ProcStat[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      out.push(parseStat(Number(entry), await readFile(`/proc/${entry}/stat`, 'utf8')));
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}

/**
 * CPU seconds used so far by `root` and its live descendants, summed per category
 * (`classify(comm)`). A process that exits between two samples takes its time with it, so
 * compare samples only across intervals in which the tree does not change.
 */
export async function treeCpuSeconds(root: number, classify: (comm: string) => string): Promise<Record<string, number>> {
  const procs = await allProcesses();
  const children = new Map<number, ProcStat[]>();
  for (const p of procs) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p]);
  const out: Record<string, number> = {};
  const start = procs.find((p) => p.pid === root);
  if (!start) return out;
  for (const stack = [start]; stack.length > 0; ) {
    const p = stack.pop() as ProcStat;
    const key = classify(p.comm);
    out[key] = (out[key] ?? 0) + p.cpu;
    stack.push(...(children.get(p.pid) ?? []));
  }
  return out;
}

/**
 * CPU seconds of this process's children that have exited and been waited for (a load
 * generator run with execFile counts here once it has finished).
 */
export async function reapedChildrenCpuSeconds(): Promise<number> {
  return parseStat(process.pid, await readFile('/proc/self/stat', 'utf8')).childrenCpu;
}
