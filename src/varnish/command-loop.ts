// Runs one fixed command again and again through a small long-lived `sh`, instead of spawning
// it from Node each time. Spawning forks the Node process, and the cost of a fork grows with
// the parent's memory: about 25 ms of CPU at 400 MB (page tables copied, then a page fault for
// every page Node writes afterwards), which for a control plane holding thousands of routes
// and polling varnishstat every second was most of its CPU while idle. The shell is a few
// hundred kilobytes; Node only writes a line to it and reads the output back.
import { SupervisedProcess } from '../util/supervised-process.ts';

/** Ends each run's output; never part of varnishstat's JSON (ASCII record separator). */
const END = '\x1e';
/** stderr kept for the error of a failed run. */
const STDERR_KEEP = 4_096;
/** The terminator line: END, then the exit status (at the end of the last output line if that had no newline). */
const END_LINE = /\x1e(\d+)$/;

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
  private shell: SupervisedProcess | null = null;
  private out: string[] = [];
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
      shell.write('\n');
    });
  }

  /** Ends the shell (and a run in progress, which rejects). */
  close(): void {
    this.fail(new Error('closed'));
  }

  private start(): SupervisedProcess {
    const shell = new SupervisedProcess({
      command: 'sh',
      args: ['-c', SCRIPT, 'vgw-command-loop', this.command, ...this.args],
      stdin: true,
      // Neither the shell nor its pipes may keep our event loop alive.
      unref: true,
      keepLines: 0,
      // One line never exceeds what a whole run may write.
      maxLineLength: this.opts.maxBytes + 64,
      // A timeout ends the shell and the run it is waiting for together, at once.
      stopGraceMs: 0,
      stopBoundMs: 5_000,
    });
    this.shell = shell;
    shell.on('line', ({ stream, text, truncated }) => {
      if (this.shell !== shell) return;
      if (stream === 'stderr') this.err = (this.err + text + '\n').slice(-STDERR_KEEP);
      else this.onLine(text, truncated);
    });
    shell.on('exited', ({ error }) => {
      if (this.shell !== shell) return;
      this.fail(error ? new Error(error) : new Error(`${this.command} loop ended${this.err ? `: ${this.err.trim()}` : ''}`));
    });
    shell.start();
    return shell;
  }

  private onLine(text: string, truncated: boolean): void {
    if (!this.waiting) return;
    this.outBytes += text.length + 1;
    if (truncated || this.outBytes > this.opts.maxBytes + 64) {
      this.fail(new Error(`${this.command} wrote more than ${this.opts.maxBytes} bytes`));
      return;
    }
    const m = END_LINE.exec(text);
    if (!m) {
      this.out.push(text);
      return;
    }
    const before = text.slice(0, m.index);
    const stdout = this.out.join('\n') + (this.out.length ? '\n' : '') + before;
    const code = Number(m[1]);
    const { resolve, reject, timer } = this.waiting;
    this.waiting = null;
    clearTimeout(timer);
    if (code === 0) resolve(stdout);
    else reject(new Error(`${this.command} exited with status ${code}${this.err ? `: ${this.err.trim()}` : ''}`));
  }

  private fail(err: Error): void {
    const shell = this.shell;
    this.shell = null;
    if (shell) void shell.stop();
    const w = this.waiting;
    this.waiting = null;
    if (w) {
      clearTimeout(w.timer);
      w.reject(err);
    }
  }
}
