// Runs one fixed command again and again through a small long-lived `sh`, instead of spawning
// it from Node each time. Spawning forks the Node process, and the cost of a fork grows with
// the parent's memory: about 25 ms of CPU at 400 MB (page tables copied, then a page fault for
// every page Node writes afterwards), which for a control plane holding thousands of routes
// and polling varnishstat every second was most of its CPU while idle. The shell is a few
// hundred kilobytes; Node only writes a line to it and reads the output back.
import { spawn, type ChildProcess } from 'node:child_process';
import { withParentDeathSignal } from './lifeline.ts';

/** Ends each run's output; never part of varnishstat's JSON (ASCII record separator). */
const END = '\x1e';
/** stderr kept for the error of a failed run. */
const STDERR_KEEP = 4_096;

// "$@" is the command: no quoting of our own, the arguments pass through as given.
const SCRIPT = `while read -r _; do "$@"; printf '${END}%d\\n' "$?"; done`;

export interface CommandLoopOptions {
  /** A run that has not ended after this long kills the shell (the next run starts a new one). */
  timeoutMs: number;
  /** Largest output of one run; more kills the shell. */
  maxBytes: number;
}

export class CommandLoop {
  private readonly command: string;
  private readonly args: readonly string[];
  private readonly opts: CommandLoopOptions;
  private shell: ChildProcess | null = null;
  private out: Buffer[] = [];
  private outBytes = 0;
  private err = '';
  private waiting: { resolve: (stdout: string) => void; reject: (err: Error) => void; timer: NodeJS.Timeout } | null = null;

  constructor(command: string, args: readonly string[], opts: CommandLoopOptions) {
    this.command = command;
    this.args = args;
    this.opts = opts;
  }

  /** One run's stdout; rejects when it exits non-zero (with its stderr), times out or is too large. */
  run(): Promise<string> {
    if (this.waiting) return Promise.reject(new Error('a run is already in progress'));
    const shell = this.shell ?? this.start();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.fail(new Error(`${this.command} did not answer within ${this.opts.timeoutMs} ms`)), this.opts.timeoutMs);
      this.waiting = { resolve, reject, timer };
      this.out = [];
      this.outBytes = 0;
      this.err = '';
      shell.stdin?.write('\n');
    });
  }

  /** Ends the shell (and a run in progress, which rejects). */
  close(): void {
    this.fail(new Error('closed'));
  }

  private start(): ChildProcess {
    const launch = withParentDeathSignal('sh', ['-c', SCRIPT, 'vgw-command-loop', this.command, ...this.args]);
    // Own process group: a timeout ends the shell and the run it is waiting for together.
    const shell = spawn(launch.command, launch.args, { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    this.shell = shell;
    shell.stdout?.on('data', (chunk: Buffer) => this.onData(chunk));
    shell.stderr?.on('data', (chunk: Buffer) => {
      this.err = (this.err + chunk.toString('utf8')).slice(-STDERR_KEEP);
    });
    shell.on('error', (err) => {
      if (this.shell === shell) this.fail(err);
    });
    shell.on('exit', () => {
      if (this.shell === shell) this.fail(new Error(`${this.command} loop ended${this.err ? `: ${this.err.trim()}` : ''}`));
    });
    shell.stdin?.on('error', () => undefined);
    shell.unref();
    (shell.stdin as unknown as { unref?: () => void } | null)?.unref?.();
    (shell.stdout as unknown as { unref?: () => void } | null)?.unref?.();
    (shell.stderr as unknown as { unref?: () => void } | null)?.unref?.();
    return shell;
  }

  private onData(chunk: Buffer): void {
    if (!this.waiting) return;
    this.out.push(chunk);
    this.outBytes += chunk.length;
    if (this.outBytes > this.opts.maxBytes + 64) {
      this.fail(new Error(`${this.command} wrote more than ${this.opts.maxBytes} bytes`));
      return;
    }
    // The terminator line arrives last: look for it only at the end of what we have.
    if (chunk[chunk.length - 1] !== 0x0a) return;
    const text = Buffer.concat(this.out, this.outBytes).toString('utf8');
    const at = text.lastIndexOf(END);
    if (at === -1 || !/^\d+\n$/.test(text.slice(at + 1))) return;
    const code = Number(text.slice(at + 1, -1));
    const { resolve, reject, timer } = this.waiting;
    this.waiting = null;
    clearTimeout(timer);
    if (code === 0) resolve(text.slice(0, at));
    else reject(new Error(`${this.command} exited with status ${code}${this.err ? `: ${this.err.trim()}` : ''}`));
  }

  private fail(err: Error): void {
    const shell = this.shell;
    this.shell = null;
    if (shell?.pid !== undefined && shell.exitCode === null) {
      try {
        process.kill(-shell.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    const w = this.waiting;
    this.waiting = null;
    if (w) {
      clearTimeout(w.timer);
      w.reject(err);
    }
  }
}
