/**
 * Keeping the processes we start tied to the control plane, so that a control plane that dies
 * (heap exhausted, SIGKILL, a crash) never leaves varnishd serving unowned.
 *
 * Three layers, each covering what the one before cannot:
 *  - Parent-death signal: varnishlog and varnishstat are launched through `setpriv --pdeathsig
 *    SIGTERM` (util-linux, always present on Debian). The kernel signals them when the thread
 *    that forked them exits; libuv forks from the JavaScript main thread, whose end is the end
 *    of the process. varnishd is launched the same way, but as root its manager switches its
 *    effective uid to the varnish user, and any credential change clears the parent-death
 *    signal (checked on Debian 12 with varnishd 7.1), so varnishd needs more.
 *  - A watchdog per varnishd: a small `sh` that blocks reading a pipe from us. The pipe's write
 *    end lives only in our process, so it reaches end-of-file however we end, and the watchdog
 *    then stops (TERM, then KILL after 5 s) the manager and the processes of the pid files
 *    below (cache child, log readers), each only while its command line still names that
 *    varnishd's -n directory. It runs in a session of its own so that a terminal's Ctrl-C or a
 *    signal to our process group does not take it down before it has done its work.
 *  - Pid files in the work directory (varnishd's -P, ours for the child and the log readers),
 *    read by the next control plane that starts on the same work directory, which stops what
 *    is still running there (reclaimWorkDir). A pid is trusted only while /proc/PID/cmdline
 *    still names the -n directory the pid file belongs to, so a recycled pid is never hit.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';

/** Name of varnishd's -n directory inside each varnishd work directory. */
export const INSTANCE_DIR_NAME = 'varnish';
/** varnishd's own pid file (-P), inside its work directory. */
export const MANAGER_PID_FILE = 'varnishd.pid';
/** The cache child's pid, written by us once known. */
export const CHILD_PID_FILE = 'child.pid';
/** The control plane that owns a work directory. */
export const OWNER_PID_FILE = 'vgw.pid';

// Re-exported: every process we start goes through it (util/parent-death.ts).
export { withParentDeathSignal } from '../util/parent-death.ts';

// $1: the -n directory, $2: the varnishd work directory (its pid files), $3: the manager's pid.
// `cat` returns at end-of-file on stdin, i.e. when the control plane is gone (or closed the
// pipe on purpose). Then the manager and every pid in the pid files (cache child, log readers)
// that still names the -n directory as an argument gets TERM, and KILL after 5 s if it is
// still there. Only those few pids are looked at: no scan of /proc.
const WATCHDOG_SCRIPT = `
cat >/dev/null
pids=$3
for f in "$2"/*.pid; do
  [ -f "$f" ] || continue
  p=; read -r p <"$f"; pids="$pids $p"
done
live() {
  for p in $pids; do
    case "$p" in *[!0-9]*|'') continue ;; esac
    grep -qzxF -- "$1" "/proc/$p/cmdline" 2>/dev/null || continue
    read -r _ _ st _ <"/proc/$p/stat" 2>/dev/null || continue
    [ "$st" = Z ] || echo "$p"
  done
}
left=$(live "$1"); [ -z "$left" ] && exit 0
kill -TERM $left 2>/dev/null
i=0
while [ $i -lt 50 ]; do
  sleep 0.1
  left=$(live "$1"); [ -z "$left" ] && exit 0
  i=$((i + 1))
done
kill -KILL $left 2>/dev/null
exit 0
`;

/**
 * Starts the watchdog of the varnishd manager `managerPid` whose -n directory is
 * `instanceDir`; it also stops the processes named by the pid files in `pidDir`.
 */
export function startWatchdog(instanceDir: string, pidDir: string, managerPid: number): ChildProcess {
  const proc = spawn('sh', ['-c', WATCHDOG_SCRIPT, 'vgw-watchdog', instanceDir, pidDir, String(managerPid)], {
    stdio: ['pipe', 'ignore', 'ignore'],
    detached: true,
  });
  proc.on('error', () => undefined);
  proc.stdin?.on('error', () => undefined);
  // Neither the watchdog nor its pipe may keep our event loop alive.
  proc.unref();
  (proc.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  return proc;
}

/** Ends a watchdog whose varnishd was stopped by us: it must not act any more. */
export function dismissWatchdog(proc: ChildProcess): void {
  if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
}

/** Reads one line of /proc/PID/stat: [state, ppid], or null when the process is gone. */
async function procStat(pid: number): Promise<{ state: string; ppid: number } | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: rest[0], ppid: Number(rest[1]) };
  } catch {
    return null;
  }
}

/**
 * True while `pid` is a process with `dir` as one of its arguments that has not finished
 * exiting. A zombie counts as gone once its last thread has exited (it holds no socket any
 * more); an orphaned zombie waits for whatever init the machine has to reap it.
 */
export async function isLiveProcessOf(pid: number, dir: string): Promise<boolean> {
  try {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8');
    if (!cmdline.split('\0').includes(dir)) return false;
  } catch {
    return false;
  }
  const stat = await procStat(pid);
  if (!stat) return false;
  if (stat.state !== 'Z') return true;
  const tasks = await readdir(`/proc/${pid}/task`).catch(() => []);
  return tasks.length > 1;
}

/** Every live process that names `dir` as an argument (other than this process). */
export async function processesOf(dir: string): Promise<number[]> {
  const out: number[] = [];
  const entries = await readdir('/proc').catch(() => [] as string[]);
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    if (pid === process.pid) continue;
    if (await isLiveProcessOf(pid, dir)) out.push(pid);
  }
  return out;
}

/** Children of `ppid` (from /proc/PID/stat), e.g. varnishd's cache child of its manager. */
export async function childrenOf(ppid: number): Promise<number[]> {
  const out: number[] = [];
  const entries = await readdir('/proc').catch(() => [] as string[]);
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const stat = await procStat(Number(e));
    if (stat && stat.ppid === ppid && stat.state !== 'Z') out.push(Number(e));
  }
  return out;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* already gone */
  }
}

/**
 * Signals each pid (only while it still names `dir`) with SIGTERM, then SIGKILL after
 * `graceMs`, and resolves once none is left or `boundMs` has passed; returns the pids still
 * left (empty in every normal case).
 */
export async function stopProcessesOf(pids: number[], dir: string, graceMs: number, boundMs: number): Promise<number[]> {
  const start = Date.now();
  let left = await filterLive(pids, dir);
  for (const pid of left) signal(pid, 'SIGTERM');
  let killed = false;
  while (left.length) {
    const elapsed = Date.now() - start;
    if (elapsed > boundMs) break;
    if (!killed && elapsed >= graceMs) {
      killed = true;
      for (const pid of left) signal(pid, 'SIGKILL');
    }
    await sleep(20);
    left = await filterLive(left, dir);
  }
  return left;
}

async function filterLive(pids: number[], dir: string): Promise<number[]> {
  const live = await Promise.all(pids.map((p) => isLiveProcessOf(p, dir)));
  return pids.filter((_, i) => live[i]);
}

export async function writePidFile(path: string, pid: number): Promise<void> {
  await writeFile(path, `${pid}\n`, { mode: 0o644 });
}

export async function readPidFile(path: string): Promise<number | null> {
  const text = await readFile(path, 'utf8').catch(() => '');
  const pid = Number(text.trim());
  return Number.isInteger(pid) && pid > 1 ? pid : null;
}

export class WorkDirInUseError extends Error {}

/**
 * Claims `workDir` for this control plane: refuses when another live control plane (same
 * Node binary, pid in `vgw.pid`) holds it, then stops whatever a previous control plane left
 * running there (varnishd managers and children, log readers, found through their pid files)
 * and writes our own pid. Returns the pids that were stopped.
 */
export async function claimWorkDir(workDir: string, log: Logger): Promise<number[]> {
  const ownerFile = join(workDir, OWNER_PID_FILE);
  const owner = await readPidFile(ownerFile);
  if (owner !== null && (await sameBinary(owner))) {
    throw new WorkDirInUseError(`work directory ${workDir} is in use by the running control plane with pid ${owner}`);
  }
  const stopped = await reclaimWorkDir(workDir, log);
  await writePidFile(ownerFile, process.pid);
  return stopped;
}

/** Releases a work directory claimed by claimWorkDir (clean shutdown). */
export async function releaseWorkDir(workDir: string): Promise<void> {
  const ownerFile = join(workDir, OWNER_PID_FILE);
  if ((await readPidFile(ownerFile)) === process.pid) await rm(ownerFile, { force: true });
}

async function sameBinary(pid: number): Promise<boolean> {
  const exe = await readlink(`/proc/${pid}/exe`).catch(() => null);
  return exe !== null && exe === process.execPath;
}

/** Stops processes left running under `workDir` by a control plane that is gone. */
export async function reclaimWorkDir(workDir: string, log: Logger): Promise<number[]> {
  const entries = await readdir(workDir, { withFileTypes: true }).catch(() => []);
  const stopped: number[] = [];
  for (const e of entries) {
    if (!e.isDirectory() || !e.name.startsWith('varnishd-')) continue;
    const dir = join(workDir, e.name);
    const instanceDir = join(dir, INSTANCE_DIR_NAME);
    const files = (await readdir(dir).catch(() => [] as string[])).filter((f) => f.endsWith('.pid'));
    const pids = new Set<number>();
    for (const f of files) {
      const pid = await readPidFile(join(dir, f));
      if (pid !== null && (await isLiveProcessOf(pid, instanceDir))) pids.add(pid);
    }
    // A manager's cache child, even if its own pid file was never written.
    for (const pid of [...pids]) for (const c of await childrenOf(pid)) if (await isLiveProcessOf(c, instanceDir)) pids.add(c);
    if (pids.size === 0) continue;
    const list = [...pids];
    log.warn({ event: 'leftover-processes', dir, pids: list }, 'stopping processes a previous control plane left running');
    const left = await stopProcessesOf(list, instanceDir, 5_000, 15_000);
    if (left.length) throw new Error(`processes ${left.join(', ')} left in ${dir} could not be stopped`);
    stopped.push(...list);
  }
  return stopped;
}
