/**
 * Runs and supervises one varnishd (manager + child) in the foreground (-F).
 *
 * Lifecycle: `start()` writes a random secret and the boot VCL into
 * `workDir` (made 0755 when running as root, because varnishd reads -f files
 * and its -n directory as its unprivileged jail user), launches varnishd with
 * an admin socket on a free loopback port and resolves once the CLI is
 * authenticated and the child reports "running"; on failure it rejects with
 * varnishd's output. `stop()` sends SIGTERM, then SIGKILL after
 * `stopTimeoutMs`, and resolves only once the manager and every cache child
 * it had are gone (the listen sockets are free then); it removes no files.
 *
 * Process tree (lifeline.ts): varnishd runs under a parent-death signal and a
 * watchdog that stops it if our process ends without stop(); the manager's
 * pid is in `pidFile` (-P), the child's in `child.pid`, so the next control
 * plane on the same work directory can stop what a dead one left behind.
 *
 * cc_command: tcc by default, gcc -O0 when tcc is missing or its compile
 * fails, at boot or on a later reload (`fallBackCc`, event `cc-fallback`);
 * `cc` tells which one is in use. See cc.ts.
 *
 * Supervision, reported as `'event'` emissions carrying a VarnishdEvent
 * (discriminated on `type`) and mirrored as JSON log lines:
 *  - child crashes: varnishd's manager restarts the child itself
 *    (auto_restart=on). The manager's own log lines ("Child (N) died",
 *    "Child (N) Started") are parsed to emit `child-died` / `child-started`
 *    and to count `childRestarts`; after a death the panic text, if any, is
 *    read with `panic.show`, emitted as `child-panic` and cleared. A
 *    `status` poll (every `pollIntervalMs`) issues `start` when the child
 *    stays stopped, e.g. after a panic with auto_restart off.
 *  - manager exits: unless stop() was called, varnishd is launched again with
 *    the last VCL that was successfully activated (`lastGoodVcl`, kept up to
 *    date by the reloader through `setLastGoodVcl`), with backoff on failure,
 *    counting `managerRestarts`. The new manager has a new admin port and a
 *    new CLI connection: always reach the CLI through the `cli` getter, and
 *    use `whenReady()` to wait for a restart to finish. Listeners configured
 *    with port 0 get new ports.
 */
import { execFile, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { pino, type Logger } from 'pino';
import { SupervisedProcess } from '../util/supervised-process.ts';
import { GCC_COMMAND, TCC_COMMAND, ccKind, initialCcChoice, isCcFailure, recordCcFailure, type CcChoice } from './cc.ts';
import { VarnishCli, VarnishCliError } from './cli.ts';
import {
  CHILD_PID_FILE,
  childrenOf,
  dismissWatchdog,
  INSTANCE_DIR_NAME,
  isLiveProcessOf,
  MANAGER_PID_FILE,
  startWatchdog,
  stopProcessesOf,
  withParentDeathSignal,
  writePidFile,
} from './lifeline.ts';
import { freePort } from './ports.ts';

const execFileP = promisify(execFile);

export interface VarnishListener {
  /** Socket name, visible in VCL as `local.socket`. */
  name: string;
  address: string;
  /** 0 lets the kernel choose; see listenAddresses(). */
  port: number;
  /** Expect the PROXY protocol (e.g. from hitch). */
  proxy?: boolean;
}

export interface VarnishdOptions {
  listeners: VarnishListener[];
  /** Created if missing; holds the secret, boot.vcl and varnishd's -n directory. */
  workDir: string;
  /** Initial VCL text, passed with -f. */
  vcl: string;
  /** -s argument; default malloc,256m. */
  storage?: string;
  /** Extra -p parameters; they override the defaults set here. */
  params?: Record<string, string>;
  /** Preferred cc_command; default tcc (TCC_COMMAND). */
  ccCommand?: string;
  /** Used when the preferred command fails to compile; default gcc -O0 (GCC_COMMAND), null for none. */
  ccFallback?: string | null;
  /** Appended to the varnishd command line as is. */
  extraArgs?: string[];
  varnishdPath?: string;
  varnishstatPath?: string;
  /** How long start() waits for the child to run; default 30 s. */
  startTimeoutMs?: number;
  /** SIGTERM grace before SIGKILL; default 10 s. */
  stopTimeoutMs?: number;
  /** Interval of the `status` poll; default 1 s. */
  pollIntervalMs?: number;
  /** Relaunch varnishd when the manager exits unexpectedly; default true. */
  restartManager?: boolean;
  /** Per-command CLI timeout (0 = none); default 0 because compiles may be slow. */
  cliTimeoutMs?: number;
  logger?: Logger;
}

export type VarnishdEvent =
  | { type: 'manager-started'; pid: number; adminPort: number; restart: boolean }
  | { type: 'manager-exited'; pid: number; code: number | null; signal: string | null; stderr: string }
  | { type: 'manager-restart-failed'; attempt: number; error: string; retryInMs: number }
  | { type: 'child-started'; pid: number; restart: boolean }
  | { type: 'child-died'; pid: number; detail: string }
  | { type: 'child-panic'; pid?: number; panic: string }
  | { type: 'child-start-requested'; reason: string }
  | { type: 'cli-reconnected'; adminPort: number }
  | { type: 'cc-fallback'; from: string; to: string; reason: string }
  | { type: 'stopped'; pid: number; code: number | null; signal: string | null };

export type VarnishdEventMap = { event: [VarnishdEvent] };

export interface VarnishCounter {
  description: string;
  flag: string;
  format: string;
  value: number;
}

export interface VarnishStats {
  timestamp: string;
  counters: Record<string, VarnishCounter>;
}

export interface ListenAddress {
  name: string;
  address: string;
  port: number;
}

type State = 'idle' | 'starting' | 'running' | 'restarting' | 'stopping' | 'stopped';

interface Exit {
  code: number | null;
  signal: string | null;
}

/** One launched varnishd manager process. */
interface Generation {
  /** Spawn, output lines and the stop of the whole tree; restarts are ours (relaunch()). */
  proc: SupervisedProcess;
  pid: number;
  adminPort: number;
  exited: Promise<Exit>;
  /** Resolves when stdout and stderr are closed too. */
  closed: Promise<void>;
  exit: Exit | null;
  output: string[];
  childPid?: number;
  /** Every cache child pid this manager was seen with: all must be gone before stop() ends. */
  children: Set<number>;
  childStarts: number;
  /** Stops this manager's process tree if our process ends without stopping it. */
  watchdog: ChildProcess;
}

const OUTPUT_LINES_KEPT = 200;

export class Varnishd extends EventEmitter<VarnishdEventMap> {
  readonly workDir: string;
  /** varnishd's -n directory (shared memory, compiled VCLs). */
  readonly instanceDir: string;
  readonly secretPath: string;
  readonly bootVclPath: string;
  /** varnishd's -P file: the manager's pid, read by the next control plane on this work dir. */
  readonly pidFile: string;
  childRestarts = 0;
  managerRestarts = 0;

  private readonly opts: VarnishdOptions;
  private readonly log: Logger;
  private readonly secret = randomBytes(32).toString('hex') + '\n';
  private state: State = 'idle';
  private gen: Generation | null = null;
  private cliConn: VarnishCli | null = null;
  private ccChoice: CcChoice | undefined;
  private goodVcl: string;
  private pollTimer: NodeJS.Timeout | null = null;
  private polling = false;
  private childStopRequested = false;
  private stoppedPolls = 0;
  private panicCheckPending = false;
  private relaunchTimer: NodeJS.Timeout | null = null;
  private readyWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];

  constructor(opts: VarnishdOptions) {
    super();
    validateListeners(opts.listeners);
    this.opts = opts;
    this.log = (opts.logger ?? pino({ level: 'silent' })).child({ component: 'varnishd' });
    this.workDir = opts.workDir;
    this.instanceDir = join(opts.workDir, INSTANCE_DIR_NAME);
    this.pidFile = join(opts.workDir, MANAGER_PID_FILE);
    this.secretPath = join(opts.workDir, 'secret');
    this.bootVclPath = join(opts.workDir, 'boot.vcl');
    this.goodVcl = opts.vcl;
  }

  /** The CLI of the current manager; throws while none is connected. */
  get cli(): VarnishCli {
    if (!this.cliConn || this.cliConn.closed) throw new Error(`varnishd CLI not available (state ${this.state})`);
    return this.cliConn;
  }

  get running(): boolean {
    return this.state === 'running';
  }

  get pid(): number | undefined {
    return this.gen && !this.gen.exit ? this.gen.pid : undefined;
  }

  get childPid(): number | undefined {
    return this.gen?.childPid;
  }

  get adminPort(): number | undefined {
    return this.gen?.adminPort;
  }

  /** The cc_command in use; known once start() has resolved. */
  get cc(): CcChoice | undefined {
    return this.ccChoice;
  }

  get lastGoodVcl(): string {
    return this.goodVcl;
  }

  /** Records VCL that was activated successfully; a manager restart boots with it. */
  setLastGoodVcl(vcl: string): void {
    this.goodVcl = vcl;
  }

  /** Last lines varnishd wrote to stdout/stderr. */
  output(): string {
    return this.gen ? this.gen.output.join('\n') : '';
  }

  async start(): Promise<void> {
    if (this.state !== 'idle') throw new Error(`varnishd cannot start in state ${this.state}`);
    this.state = 'starting';
    try {
      await mkdir(this.workDir, { recursive: true });
      // As root varnishd drops to its jail user, which must reach -f files and the -n directory.
      if (process.getuid?.() === 0) await chmod(this.workDir, 0o755);
      await writeFile(this.secretPath, this.secret, { mode: 0o600 });
      await chmod(this.secretPath, 0o600);
      this.ccChoice = await initialCcChoice(this.preferredCc(), this.fallbackCc());
      if (this.ccChoice.fallbackReason) {
        const { command, fallbackReason } = this.ccChoice;
        this.log.warn({ cc: command, reason: fallbackReason }, 'preferred cc_command not used');
      }
      try {
        await this.launch(this.goodVcl, false);
      } catch (err) {
        const msg = (err as Error).message;
        if (!isCcFailure(msg) || !(await this.fallBackCc(ccMessage(msg)))) throw err;
        await this.launch(this.goodVcl, false);
      }
    } catch (err) {
      if (!this.isStopping()) this.state = 'stopped';
      this.settleReady(err as Error);
      throw err;
    }
    this.state = 'running';
    this.pollTimer = setInterval(() => void this.poll(), this.opts.pollIntervalMs ?? 1000);
    this.pollTimer.unref();
    this.settleReady();
  }

  /**
   * Switches to the fallback cc_command after the current one failed to
   * compile, for the running manager (param.set) and later launches.
   * Returns false when there is nothing to fall back to.
   */
  async fallBackCc(reason: string): Promise<boolean> {
    const from = this.ccChoice?.command ?? this.preferredCc();
    const to = this.fallbackCc();
    if (to === null || to === from) return false;
    recordCcFailure(from, reason);
    this.ccChoice = { kind: ccKind(to), command: to, fallbackReason: reason };
    if (this.cliConn && !this.cliConn.closed) await this.cliConn.expectOk(['param.set', 'cc_command', to]);
    this.emitEvent({ type: 'cc-fallback', from, to, reason }, 'warn');
    return true;
  }

  private preferredCc(): string {
    return this.opts.ccCommand ?? TCC_COMMAND;
  }

  private fallbackCc(): string | null {
    return this.opts.ccFallback === undefined ? GCC_COMMAND : this.opts.ccFallback;
  }

  /** Resolves when varnishd is running (immediately, or after an ongoing restart). */
  whenReady(): Promise<void> {
    if (this.state === 'running' && this.cliConn && !this.cliConn.closed) return Promise.resolve();
    if (this.state === 'stopping' || this.state === 'stopped') {
      return Promise.reject(new Error(`varnishd is ${this.state}`));
    }
    return new Promise((resolve, reject) => this.readyWaiters.push({ resolve, reject }));
  }

  /**
   * Stops the child (the cache process) through the admin CLI and keeps it stopped: the
   * manager stays up until stop(). Used at the end of connection draining.
   */
  async stopChild(): Promise<void> {
    this.childStopRequested = true;
    await this.cli.expectOk('stop');
  }

  async stop(): Promise<void> {
    if (this.state === 'stopped' || this.state === 'stopping') return;
    if (this.state === 'idle') {
      this.state = 'stopped';
      return;
    }
    this.state = 'stopping';
    if (this.pollTimer) clearInterval(this.pollTimer);
    if (this.relaunchTimer) clearTimeout(this.relaunchTimer);
    this.pollTimer = this.relaunchTimer = null;
    this.settleReady(new Error('varnishd stopped'));
    this.cliConn?.destroy();
    this.cliConn = null;
    const gen = this.gen;
    if (gen) {
      const exit = await this.terminate(gen);
      this.emitEvent({ type: 'stopped', pid: gen.pid, ...exit }, 'info');
    }
    this.state = 'stopped';
  }

  /** `varnishstat -j -1`: one snapshot of all counters. */
  async stats(): Promise<VarnishStats> {
    const launch = withParentDeathSignal(this.opts.varnishstatPath ?? 'varnishstat', ['-n', this.instanceDir, '-j', '-1']);
    const { stdout } = await execFileP(
      launch.command,
      launch.args,
      { maxBuffer: 64 * 1024 * 1024, timeout: 30_000 },
    );
    const parsed = JSON.parse(stdout) as Record<string, unknown>;
    // 7.x nests counters under "counters"; 6.x put them at the top level.
    const src = (parsed.counters ?? parsed) as Record<string, unknown>;
    const counters: Record<string, VarnishCounter> = {};
    for (const [name, v] of Object.entries(src)) {
      if (v && typeof v === 'object' && 'value' in v) counters[name] = v as VarnishCounter;
    }
    return { timestamp: String(parsed.timestamp ?? ''), counters };
  }

  /** The addresses varnishd actually listens on (resolves port 0). */
  async listenAddresses(): Promise<ListenAddress[]> {
    const body = await this.cli.expectOk('debug.listen_address');
    const out: ListenAddress[] = [];
    for (const line of body.split('\n')) {
      const m = /^(\S+)\s+(\S+)\s+(\d+)\s*$/.exec(line);
      if (m) out.push({ name: m[1], address: m[2], port: Number(m[3]) });
    }
    return out;
  }

  private async launch(vcl: string, restart: boolean): Promise<void> {
    await writeFile(this.bootVclPath, vcl, { mode: 0o644 });
    await chmod(this.bootVclPath, 0o644);
    const deadline = Date.now() + (this.opts.startTimeoutMs ?? 30_000);
    for (let attempt = 1; ; attempt++) {
      if (this.isStopping()) throw new Error('varnishd stopped while starting');
      const adminPort = await freePort();
      if (this.isStopping()) throw new Error('varnishd stopped while starting');
      const gen = this.spawn(adminPort);
      try {
        const cli = await this.waitReady(gen, deadline);
        this.attachCli(cli, gen);
        this.emitEvent({ type: 'manager-started', pid: gen.pid, adminPort, restart }, 'info');
        return;
      } catch (err) {
        await this.terminate(gen);
        // Someone may have taken the free port between our probe and varnishd's bind.
        const portTaken = gen.output.some((l) => l.includes(String(adminPort)) && /in use|Could not/i.test(l));
        if (portTaken && attempt < 3 && Date.now() < deadline && !this.isStopping()) continue;
        throw err;
      }
    }
  }

  private spawn(adminPort: number): Generation {
    const args = this.buildArgs(adminPort);
    const proc = new SupervisedProcess({
      command: this.opts.varnishdPath ?? 'varnishd',
      args,
      // varnishd's own lines are kept in gen.output (blank lines left out).
      keepLines: 0,
      stopGraceMs: this.opts.stopTimeoutMs ?? 10_000,
      // SIGKILL ends it at the latest after the grace period; this only bounds a stuck exit.
      stopBoundMs: (this.opts.stopTimeoutMs ?? 10_000) + 30_000,
    });
    let resolveExit!: (e: Exit) => void;
    let resolveClosed!: () => void;
    const gen: Generation = {
      proc,
      pid: -1,
      adminPort,
      exited: new Promise<Exit>((r) => (resolveExit = r)),
      closed: new Promise<void>((r) => (resolveClosed = r)),
      exit: null,
      output: [],
      children: new Set(),
      childStarts: 0,
      watchdog: null as unknown as ChildProcess,
    };
    this.gen = gen;
    proc.on('line', ({ text }) => this.onOutputLine(gen, text));
    proc.on('closed', () => resolveClosed());
    proc.on('exited', ({ code, signal, error }) => {
      if (gen.exit) return;
      gen.exit = { code, signal };
      resolveExit(gen.exit);
      if (error) {
        gen.output.push(`spawn error: ${error}`);
        resolveClosed();
        return;
      }
      this.onManagerExit(gen);
    });
    proc.start();
    gen.pid = proc.pid ?? -1;
    // From here on, our death takes this varnishd down (lifeline.ts).
    gen.watchdog = startWatchdog(this.instanceDir, this.workDir, proc.pid ?? 0);
    this.log.debug({ args, pid: proc.pid }, 'varnishd spawned');
    return gen;
  }

  private buildArgs(adminPort: number): string[] {
    const o = this.opts;
    const args = [
      '-F',
      '-n', this.instanceDir,
      '-P', this.pidFile,
      '-f', this.bootVclPath,
      '-S', this.secretPath,
      '-T', `127.0.0.1:${adminPort}`,
      '-s', o.storage ?? 'malloc,256m',
    ];
    for (const l of o.listeners) {
      args.push('-a', `${l.name}=${formatHost(l.address)}:${l.port}${l.proxy ? ',PROXY' : ''}`);
    }
    const params: Record<string, string> = {
      cc_command: this.ccChoice?.command ?? '',
      vcc_allow_inline_c: 'off',
      auto_restart: 'on',
      ...o.params,
    };
    for (const [k, v] of Object.entries(params)) if (v !== '') args.push('-p', `${k}=${v}`);
    args.push(...(o.extraArgs ?? []));
    return args;
  }

  private async waitReady(gen: Generation, deadline: number): Promise<VarnishCli> {
    const fail = (why: string): Error => {
      const exit = gen.exit ? ` (exit code ${gen.exit.code}, signal ${gen.exit.signal})` : '';
      return new Error(`varnishd ${why}${exit}:\n${gen.output.join('\n')}`);
    };
    let cli: VarnishCli | null = null;
    try {
      while (!cli) {
        if (gen.exit) throw fail('exited during startup');
        if (Date.now() > deadline) throw fail('did not open its admin port in time');
        try {
          cli = await VarnishCli.connect({
            host: '127.0.0.1',
            port: gen.adminPort,
            secret: this.secret,
            timeoutMs: this.opts.cliTimeoutMs ?? 0,
            logger: this.log,
          });
        } catch (err) {
          if (err instanceof VarnishCliError) throw err;
          await sleep(50);
        }
      }
      for (;;) {
        if (gen.exit) throw fail('exited during startup');
        const st = await cli.command('status');
        if (/running/.test(st.body)) {
          // The "Child (N) Started" line may still be on its way through the pipe.
          await this.trackChildren(gen);
          return cli;
        }
        if (Date.now() > deadline) throw fail(`child not running in time (${st.body.trim()})`);
        await sleep(50);
      }
    } catch (err) {
      cli?.destroy();
      // 'exit' can precede the last stderr bytes; they usually carry the reason.
      if (gen.exit) await Promise.race([gen.closed, sleep(300)]);
      if (err instanceof Error && gen.exit && !(err instanceof VarnishCliError)) throw fail('exited during startup');
      throw err;
    }
  }

  private attachCli(cli: VarnishCli, gen: Generation): void {
    this.cliConn?.destroy();
    this.cliConn = cli;
    cli.onClose((err) => {
      if (this.cliConn === cli && this.gen === gen && !gen.exit && this.state === 'running') {
        this.log.warn({ err: err.message }, 'varnish CLI connection lost; reconnecting on next poll');
      }
    });
  }

  private onOutputLine(gen: Generation, line: string): void {
    if (line.trim() === '') return;
    gen.output.push(line);
    if (gen.output.length > OUTPUT_LINES_KEPT) gen.output.splice(0, gen.output.length - OUTPUT_LINES_KEPT);
    this.log.debug({ pid: gen.pid, line }, 'varnishd output');
    let m = /Child \((\d+)\) Started/.exec(line);
    if (m) {
      const pid = Number(m[1]);
      this.noteChild(gen, pid);
      gen.childStarts++;
      const restart = gen.childStarts > 1;
      if (restart) this.childRestarts++;
      this.stoppedPolls = 0;
      this.emitEvent({ type: 'child-started', pid, restart }, restart ? 'warn' : 'info');
      return;
    }
    m = /Child \((\d+)\) died(.*)$/.exec(line);
    if (m && this.gen === gen && this.state === 'running') {
      this.panicCheckPending = true;
      this.emitEvent({ type: 'child-died', pid: Number(m[1]), detail: m[2].trim() }, 'error');
    }
  }

  private async poll(): Promise<void> {
    if (this.polling || this.state !== 'running') return;
    const gen = this.gen;
    if (!gen || gen.exit) return;
    this.polling = true;
    try {
      if (!this.cliConn || this.cliConn.closed) {
        const cli = await VarnishCli.connect({
          host: '127.0.0.1',
          port: gen.adminPort,
          secret: this.secret,
          timeoutMs: this.opts.cliTimeoutMs ?? 0,
          logger: this.log,
        });
        if (this.gen !== gen || this.state !== 'running') {
          cli.destroy();
          return;
        }
        this.attachCli(cli, gen);
        this.emitEvent({ type: 'cli-reconnected', adminPort: gen.adminPort }, 'info');
        this.settleReady();
      }
      const cli = this.cliConn!;
      const st = await cli.command('status');
      const childState = /Child in state (\w+)/.exec(st.body)?.[1] ?? 'unknown';
      if (childState === 'stopped' && !this.childStopRequested) {
        this.stoppedPolls++;
        if (this.stoppedPolls >= 2) {
          this.stoppedPolls = 0;
          this.emitEvent({ type: 'child-start-requested', reason: 'child stayed stopped' }, 'warn');
          const r = await cli.command('start');
          if (r.status !== 200) this.log.error({ status: r.status, body: r.body }, 'starting the child failed');
        }
      } else {
        this.stoppedPolls = 0;
      }
      if (this.panicCheckPending && childState === 'running') {
        this.panicCheckPending = false;
        const p = await cli.command('panic.show');
        if (p.status === 200 && p.body.trim() !== '') {
          this.emitEvent({ type: 'child-panic', pid: gen.childPid, panic: p.body }, 'error');
          await cli.command('panic.clear');
        }
      }
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'varnishd status poll failed');
    } finally {
      this.polling = false;
    }
  }

  private onManagerExit(gen: Generation): void {
    if (this.gen !== gen || this.state !== 'running') return;
    const exit = gen.exit!;
    const stderr = gen.output.slice(-20).join('\n');
    this.emitEvent({ type: 'manager-exited', pid: gen.pid, code: exit.code, signal: exit.signal, stderr }, 'error');
    this.cliConn?.destroy();
    this.cliConn = null;
    void this.reapChild(gen);
    if (this.opts.restartManager === false) {
      this.state = 'stopped';
      this.settleReady(new Error('varnishd manager exited'));
      return;
    }
    this.state = 'restarting';
    this.scheduleRelaunch(1, 0);
  }

  private scheduleRelaunch(attempt: number, delayMs: number): void {
    this.relaunchTimer = setTimeout(() => {
      this.relaunchTimer = null;
      void this.relaunch(attempt);
    }, delayMs);
  }

  private async relaunch(attempt: number): Promise<void> {
    if (this.state !== 'restarting') return;
    try {
      if (this.gen) await this.reapChild(this.gen);
      await this.launch(this.goodVcl, true);
      if (this.state !== 'restarting') return;
      this.managerRestarts++;
      this.state = 'running';
      this.settleReady();
    } catch (err) {
      if (this.state !== 'restarting') return;
      const retryInMs = Math.min(10_000, 250 * 2 ** (attempt - 1));
      this.emitEvent({ type: 'manager-restart-failed', attempt, error: (err as Error).message, retryInMs }, 'error');
      this.scheduleRelaunch(attempt + 1, retryInMs);
    }
  }

  private noteChild(gen: Generation, pid: number): void {
    gen.childPid = pid;
    if (gen.children.has(pid)) return;
    gen.children.add(pid);
    writePidFile(join(this.workDir, CHILD_PID_FILE), pid).catch(() => undefined);
  }

  /** Adds the manager's current children (from /proc) to the ones known from its output. */
  private async trackChildren(gen: Generation): Promise<void> {
    if (gen.exit) return;
    for (const pid of await childrenOf(gen.pid)) {
      if (await isLiveProcessOf(pid, this.instanceDir)) this.noteChild(gen, pid);
    }
  }

  /**
   * SIGTERM, SIGKILL after the grace period; resolves only once the manager has exited and
   * every cache child it had is gone too (killed if need be), so that the listen sockets are
   * free when this resolves.
   */
  private async terminate(gen: Generation): Promise<Exit> {
    if (!gen.exit) await this.trackChildren(gen);
    // The manager's whole process tree (SupervisedProcess.stop); the children known from its
    // output are checked once more below, by their -n directory.
    const left = await gen.proc.stop();
    if (left.length) this.log.error({ event: 'process-not-gone', pids: left }, 'varnishd processes still running after SIGKILL');
    await gen.exited;
    await this.reapChild(gen);
    dismissWatchdog(gen.watchdog);
    return gen.exit!;
  }

  /**
   * A child whose manager died exits by itself once its CLI pipe closes, but until then it
   * holds the listen sockets a new manager needs: it gets a short grace, then SIGKILL, and
   * this waits (bounded) until it is gone. Only a process whose command line names our -n
   * directory is signalled, so a recycled pid is never hit.
   */
  private async reapChild(gen: Generation): Promise<void> {
    const pids = [...gen.children];
    if (pids.length === 0) return;
    const left = await stopProcessesOf(pids, this.instanceDir, 200, 30_000);
    if (left.length) this.log.error({ event: 'child-not-gone', pids: left }, 'varnishd child still running after SIGKILL');
  }

  private isStopping(): boolean {
    return this.state === 'stopping' || this.state === 'stopped';
  }

  private settleReady(err?: Error): void {
    for (const w of this.readyWaiters.splice(0)) {
      if (err) w.reject(err);
      else w.resolve();
    }
  }

  private emitEvent(ev: VarnishdEvent, level: 'info' | 'warn' | 'error'): void {
    this.log[level]({ event: ev }, `varnishd ${ev.type}`);
    this.emit('event', ev);
  }
}

/** The compiler's own message out of varnishd's report. */
function ccMessage(output: string): string {
  const m = /Message from C-compiler:\n([\s\S]*?)Running C-compiler failed/.exec(output);
  return (m ? m[1] : output).trim().slice(0, 2000);
}

function formatHost(address: string): string {
  return address.includes(':') && !address.startsWith('[') ? `[${address}]` : address;
}

function validateListeners(listeners: VarnishListener[]): void {
  if (listeners.length === 0) throw new Error('varnishd needs at least one listener');
  const seen = new Set<string>();
  for (const l of listeners) {
    if (!/^[A-Za-z0-9_.-]+$/.test(l.name)) throw new Error(`invalid listener name ${JSON.stringify(l.name)}`);
    if (seen.has(l.name)) throw new Error(`duplicate listener name ${l.name}`);
    seen.add(l.name);
    if (!Number.isInteger(l.port) || l.port < 0 || l.port > 65535) throw new Error(`invalid port for ${l.name}`);
    if (!/^[A-Za-z0-9_.:[\]-]+$/.test(l.address)) throw new Error(`invalid address for ${l.name}`);
  }
}
