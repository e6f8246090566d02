// One long-lived child process and everything it starts: spawned under a parent-death signal,
// its output split into bounded lines, restarted with backoff when it exits unexpectedly, and
// stopped so that, once stop() resolves, no process of its tree is left.
//
// The tree: each process runs in a process group of its own (spawned detached), and its
// descendants are also followed by parent pid, because a descendant may leave the group
// (setsid) and an orphan loses its parent link. A pid is only signalled while its start time
// still matches the one first seen, so a recycled pid is never hit.
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { readdir, readFile } from 'node:fs/promises';
import { StringDecoder } from 'node:string_decoder';
import { setTimeout as sleep } from 'node:timers/promises';
import { withParentDeathSignal } from './parent-death.ts';

export interface RestartPolicy {
  /** First delay after an unexpected exit; doubles on each further one. Default 250 ms. */
  initialDelayMs?: number;
  /** Largest delay. Default 10 s. */
  maxDelayMs?: number;
  /** A run at least this long resets the delay to initialDelayMs. Default 10 s. */
  stableRunMs?: number;
}

export interface SupervisedProcessOptions {
  command: string;
  args: readonly string[];
  /** Decoding of stdout and stderr; default utf8 (latin1 keeps every byte as one char). */
  encoding?: BufferEncoding;
  /** Longest line passed on, in chars; the rest of a longer line is dropped. Default 64 KiB. */
  maxLineLength?: number;
  /** Lines kept for output() (the last ones of stdout and stderr together). Default 200. */
  keepLines?: number;
  /** Restart after an unexpected exit; default: no restart. */
  restart?: RestartPolicy | false;
  /** SIGTERM grace before SIGKILL in stop(). Default 5 s. */
  stopGraceMs?: number;
  /** stop() resolves after this long even if a process could not be stopped. Default 30 s. */
  stopBoundMs?: number;
  /** Keep a pipe to the process's stdin (write()). Default false. */
  stdin?: boolean;
  /** Not keeping our event loop alive by itself (background helpers). Default false. */
  unref?: boolean;
  env?: NodeJS.ProcessEnv;
}

export interface ProcessLine {
  stream: 'stdout' | 'stderr';
  text: string;
  /** The line was longer than maxLineLength and was cut. */
  truncated: boolean;
}

export interface ProcessExit {
  pid: number;
  code: number | null;
  signal: string | null;
  /** Set when the process could not be started at all (spawn error). */
  error?: string;
}

export type SupervisedProcessEvents = {
  started: [{ pid: number; restart: boolean }];
  exited: [ProcessExit & { expected: boolean }];
  restarting: [{ delayMs: number; restarts: number }];
  line: [ProcessLine];
  /** stdout and stderr of a process are closed too (after its exit, its last lines were passed on). */
  closed: [{ pid: number }];
};

const DEFAULT_MAX_LINE = 64 * 1024;
const POLL_MS = 25;

export class SupervisedProcess extends EventEmitter<SupervisedProcessEvents> {
  /** Unexpected exits that were followed by a restart. */
  restarts = 0;

  private readonly opts: SupervisedProcessOptions;
  private readonly maxLine: number;
  private readonly keep: number;
  private proc: ChildProcess | null = null;
  private wanted = false;
  private timer: NodeJS.Timeout | null = null;
  private delayMs: number;
  private startedAt = 0;
  private exitedPromise: Promise<void> = Promise.resolve();
  private readonly lines: string[] = [];
  /** Every process seen in our trees (pid -> start time), kept until it is gone. */
  private readonly tracked = new Map<number, string>();
  /** Process groups of our processes, past generations included, while they may have members. */
  private readonly groups = new Set<number>();

  constructor(opts: SupervisedProcessOptions) {
    super();
    this.opts = opts;
    this.maxLine = opts.maxLineLength ?? DEFAULT_MAX_LINE;
    this.keep = opts.keepLines ?? 200;
    this.delayMs = opts.restart ? (opts.restart.initialDelayMs ?? 250) : 0;
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  get running(): boolean {
    return this.proc !== null;
  }

  /** The last lines the process wrote (stdout and stderr), at most keepLines. */
  output(): string[] {
    return [...this.lines];
  }

  /** Starts the process (again after stop()); a no-op while it is wanted already. */
  start(): void {
    if (this.wanted) return;
    this.wanted = true;
    this.spawn(false);
  }

  /** Writes to the process's stdin (with `stdin: true`); false when there is none. */
  write(data: string): boolean {
    const stdin = this.proc?.stdin;
    if (!stdin || stdin.destroyed) return false;
    stdin.write(data);
    return true;
  }

  /** Resolves when the current process has exited (at once when none runs). */
  exited(): Promise<void> {
    return this.exitedPromise;
  }

  /**
   * SIGTERM to the process, then, after the grace period, SIGKILL to it and to every process
   * of its tree still there; resolves once none is left, or after stopBoundMs with the pids
   * that could not be stopped (empty in every normal case). No restart follows.
   */
  async stop(): Promise<number[]> {
    this.wanted = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const proc = this.proc;
    const start = Date.now();
    const grace = this.opts.stopGraceMs ?? 5_000;
    const bound = this.opts.stopBoundMs ?? 30_000;
    await this.refreshTree();
    if (proc?.pid !== undefined) signal(proc.pid, 'SIGTERM');
    let killed = false;
    let orphansTermed = false;
    for (;;) {
      await this.refreshTree();
      const rootGone = this.proc !== proc || proc === null;
      if (this.tracked.size === 0 && rootGone) return [];
      const elapsed = Date.now() - start;
      if (elapsed > bound) return [...this.tracked.keys()];
      if (rootGone && !orphansTermed) {
        // What the process left behind gets its own SIGTERM and the rest of the grace period.
        orphansTermed = true;
        for (const pid of this.tracked.keys()) signal(pid, 'SIGTERM');
      }
      if (!killed && elapsed >= grace) {
        killed = true;
        for (const g of this.groups) signal(-g, 'SIGKILL');
        for (const pid of this.tracked.keys()) signal(pid, 'SIGKILL');
      }
      await sleep(POLL_MS);
    }
  }

  private spawn(restart: boolean): void {
    const launch = withParentDeathSignal(this.opts.command, this.opts.args);
    // Own process group: the whole tree can be signalled at once, and a terminal's ^C reaches
    // only us (we stop the tree ourselves).
    const proc = spawn(launch.command, launch.args, {
      stdio: [this.opts.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
      detached: true,
      env: this.opts.env,
    });
    this.proc = proc;
    this.startedAt = Date.now();
    let resolveExit!: () => void;
    this.exitedPromise = new Promise((r) => (resolveExit = r));
    if (proc.pid !== undefined) this.groups.add(proc.pid);
    proc.stdin?.on('error', () => undefined);
    this.follow(proc, 'stdout');
    this.follow(proc, 'stderr');
    if (this.opts.unref) {
      proc.unref();
      for (const s of [proc.stdin, proc.stdout, proc.stderr]) (s as unknown as { unref?: () => void } | null)?.unref?.();
    }
    let done = false;
    const finish = (exit: ProcessExit) => {
      if (done) return;
      done = true;
      if (this.proc === proc) this.proc = null;
      resolveExit();
      this.onExit(exit);
    };
    proc.on('error', (err) => finish({ pid: proc.pid ?? -1, code: null, signal: null, error: err.message }));
    proc.on('exit', (code, sig) => finish({ pid: proc.pid ?? -1, code, signal: sig }));
    proc.on('close', () => this.emit('closed', { pid: proc.pid ?? -1 }));
    if (proc.pid !== undefined) {
      this.tracked.set(proc.pid, '');
      void startTime(proc.pid).then((t) => {
        if (t !== null && this.tracked.get(proc.pid!) === '') this.tracked.set(proc.pid!, t);
      });
      this.emit('started', { pid: proc.pid, restart });
    }
  }

  /** Splits a stream into lines of at most maxLine chars; a partial last line is passed on at the end. */
  private follow(proc: ChildProcess, stream: 'stdout' | 'stderr'): void {
    const source = proc[stream];
    if (!source) return;
    const decoder = new StringDecoder(this.opts.encoding ?? 'utf8');
    let rest = '';
    let dropping = false;
    const emit = (text: string, truncated: boolean) => {
      this.lines.push(text);
      if (this.lines.length > this.keep) this.lines.splice(0, this.lines.length - this.keep);
      this.emit('line', { stream, text, truncated });
    };
    const take = (chunk: string) => {
      let start = 0;
      for (let nl = chunk.indexOf('\n'); nl >= 0; nl = chunk.indexOf('\n', start)) {
        if (dropping) dropping = false;
        else {
          const line = rest + chunk.slice(start, nl);
          if (line.length > this.maxLine) emit(line.slice(0, this.maxLine), true);
          else emit(line, false);
        }
        rest = '';
        start = nl + 1;
      }
      if (dropping) return;
      rest += chunk.slice(start);
      if (rest.length > this.maxLine) {
        // Never buffer more than one line's worth: the cut line goes now, its tail is dropped.
        emit(rest.slice(0, this.maxLine), true);
        rest = '';
        dropping = true;
      }
    };
    source.on('data', (chunk: Buffer) => take(decoder.write(chunk)));
    source.on('end', () => {
      take(decoder.end());
      if (rest !== '' && !dropping) emit(rest, false);
      rest = '';
    });
    source.on('error', () => undefined);
  }

  private onExit(exit: ProcessExit): void {
    const expected = !this.wanted;
    this.emit('exited', { ...exit, expected });
    // Forgets the groups and pids of earlier runs that are gone, so restarts cannot pile them up.
    void this.refreshTree();
    const policy = this.opts.restart;
    if (expected || !policy) {
      this.wanted = false;
      return;
    }
    const initial = policy.initialDelayMs ?? 250;
    if (Date.now() - this.startedAt >= (policy.stableRunMs ?? 10_000)) this.delayMs = initial;
    const delayMs = this.delayMs;
    this.delayMs = Math.min(policy.maxDelayMs ?? 10_000, Math.max(1, this.delayMs * 2));
    this.restarts++;
    this.emit('restarting', { delayMs, restarts: this.restarts });
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.wanted) this.spawn(true);
    }, delayMs);
    if (this.opts.unref) this.timer.unref();
  }

  /**
   * Re-reads the tree: drops tracked processes that are gone (or whose pid now names another
   * process), adds the live descendants of tracked ones and the members of our groups.
   */
  private async refreshTree(): Promise<void> {
    if (this.tracked.size === 0 && this.groups.size === 0) return;
    const table = await processTable();
    for (const [pid, start] of [...this.tracked]) {
      const p = table.get(pid);
      if (!p || p.zombie || (start !== '' && p.start !== start)) this.tracked.delete(pid);
    }
    let added = true;
    while (added) {
      added = false;
      for (const [pid, p] of table) {
        if (p.zombie || this.tracked.has(pid) || pid === process.pid) continue;
        if (this.tracked.has(p.ppid) || this.groups.has(p.pgid)) {
          this.tracked.set(pid, p.start);
          added = true;
        }
      }
    }
    // A group without a live member is forgotten (zombies do not count: they hold nothing).
    const liveGroups = new Set<number>();
    for (const p of table.values()) if (!p.zombie) liveGroups.add(p.pgid);
    for (const g of [...this.groups]) if (!liveGroups.has(g)) this.groups.delete(g);
  }
}

interface ProcInfo {
  ppid: number;
  pgid: number;
  start: string;
  zombie: boolean;
}

/** /proc/PID/stat after the command name: state, ppid, pgrp, ..., starttime (field 22). */
function parseStat(stat: string): ProcInfo | null {
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  if (rest.length < 20) return null;
  return { ppid: Number(rest[1]), pgid: Number(rest[2]), start: rest[19], zombie: rest[0] === 'Z' || rest[0] === 'X' };
}

async function startTime(pid: number): Promise<string | null> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
  return stat === null ? null : (parseStat(stat)?.start ?? null);
}

/** Every process of the machine (one /proc scan; only while stopping). */
async function processTable(): Promise<Map<number, ProcInfo>> {
  const out = new Map<number, ProcInfo>();
  const entries = await readdir('/proc').catch(() => [] as string[]);
  await Promise.all(
    entries
      .filter((e) => /^\d+$/.test(e))
      .map(async (e) => {
        const stat = await readFile(`/proc/${e}/stat`, 'utf8').catch(() => null);
        const info = stat === null ? null : parseStat(stat);
        if (info) out.set(Number(e), info);
      }),
  );
  return out;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* already gone */
  }
}
