// Child processes for the benchmarks: `vgw serve` and `vgw echo`, started with the same Node
// binary that runs the benchmark, and a bare varnishd as a baseline. Every child is registered
// so that an exception or Ctrl-C in the benchmark still stops it (and, for serve, the varnishd
// it supervises).
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { request, type Agent } from 'node:http';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

const live = new Set<ManagedProcess>();
let hooksInstalled = false;

function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  // Last resort only: the normal path is an awaited stop().
  process.on('exit', () => {
    for (const p of live) p.kill('SIGKILL');
  });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      void Promise.all([...live].map((p) => p.stop())).finally(() => process.exit(130));
    });
  }
}

export class ManagedProcess {
  readonly name: string;
  readonly proc: ChildProcess;
  readonly exited: Promise<void>;
  private done = false;

  /** `command` null runs the vgw CLI with `args` (after `nodeArgs`, flags for Node itself). */
  constructor(name: string, command: string | null, args: string[], logFile?: string, nodeArgs: string[] = []) {
    installExitHooks();
    this.name = name;
    this.proc = spawn(command ?? process.execPath, command === null ? [...nodeArgs, MAIN, ...args] : args, {
      stdio: ['ignore', logFile ? 'pipe' : 'ignore', logFile ? 'pipe' : 'ignore'],
      // Own process group, so that stop() can reach grandchildren (varnishd) if the child hangs.
      detached: true,
    });
    if (logFile) {
      const out = createWriteStream(logFile);
      this.proc.stdout?.pipe(out);
      this.proc.stderr?.pipe(out);
    }
    this.exited = new Promise((resolve) => {
      this.proc.once('exit', () => {
        this.done = true;
        live.delete(this);
        resolve();
      });
    });
    live.add(this);
  }

  get running(): boolean {
    return !this.done;
  }

  kill(signal: NodeJS.Signals): void {
    if (this.done || this.proc.pid === undefined) return;
    try {
      process.kill(-this.proc.pid, signal);
    } catch {
      /* already gone */
    }
  }

  /** SIGTERM, then SIGKILL to the whole group after `graceMs`. */
  async stop(graceMs = 15_000): Promise<void> {
    if (this.done) return;
    this.kill('SIGTERM');
    const timer = setTimeout(() => this.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

export interface HttpResult {
  status: number;
  body: string;
}

/** One GET with an optional Host header; rejects on connection errors and after `timeoutMs`. */
export function httpGet(url: string, opts: { host?: string; headers?: Record<string, string>; timeoutMs?: number; agent?: Agent | false } = {}): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...opts.headers };
    if (opts.host) headers.host = opts.host;
    const req = request(url, { headers, agent: opts.agent ?? false, timeout: opts.timeoutMs ?? 5_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timeout after ${opts.timeoutMs ?? 5_000} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** An error that stops waitFor() at once instead of counting as "not yet". */
export class Fatal extends Error {}

/** Polls until `check` returns a value, or throws after `timeoutMs`. */
export async function waitFor<T>(what: string, timeoutMs: number, intervalMs: number, check: () => Promise<T | undefined>, alive?: ManagedProcess): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (alive && !alive.running) throw new Error(`${alive.name} exited while waiting for ${what}`);
    const v = await check().catch((err: unknown) => {
      if (err instanceof Fatal) throw err;
      return undefined;
    });
    if (v !== undefined) return v;
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

export interface EchoBackend {
  proc: ManagedProcess;
  url: string;
  stop(): Promise<void>;
}

export async function startEcho(address: string, port: number, pod = 'bench-echo'): Promise<EchoBackend> {
  // stdout is dropped: the echo command prints a line per request.
  const proc = new ManagedProcess(`echo ${address}:${port}`, null, ['echo', '--port', String(port), '--address', address, '--pod', pod, '--namespace', 'bench']);
  const url = `http://${address}:${port}`;
  await waitFor('echo backend', 15_000, 50, async () => ((await httpGet(`${url}/health`)).status === 200 ? true : undefined), proc);
  return { proc, url, stop: () => proc.stop() };
}

export interface ServeStatus {
  ready: boolean;
  generation: number;
  activeVcl?: string;
  lastReload?: { status: string; seq: number; name?: string; compileMs?: number; useMs?: number; totalMs?: number; compiled?: number; error?: string };
  lastError?: { at: string; message: string };
  /** Objects not accepted; entries are structured or plain strings depending on the version. */
  problems: unknown[];
  stats?: { vhosts: number; routes: number; backends: number };
}

/** The first few problems from /status, readable. */
export function describeProblems(problems: unknown[], max = 3): string {
  return problems
    .slice(0, max)
    .map((p) => {
      if (typeof p === 'string') return p;
      const o = p as { kind?: string; object?: string; message?: string };
      return `${o.kind ?? ''} ${o.object ?? ''}: ${o.message ?? JSON.stringify(p)}`;
    })
    .join('; ');
}

export interface Gateway {
  proc: ManagedProcess;
  adminUrl: string;
  /** performance.now() when the process was spawned. */
  spawnedAt: number;
  status(): Promise<ServeStatus>;
  stop(): Promise<void>;
}

/**
 * Spawns `vgw serve`; does not wait for readiness (callers time that themselves). varnishd's
 * jail user must be able to reach `workDir`, so its parents must not be private (mkdtemp is 0700).
 */
export function spawnServe(dir: string, adminPort: number, workDir: string, logFile: string, opts: { nodeArgs?: string[]; args?: string[]; adminAddress?: string } = {}): Gateway {
  const spawnedAt = performance.now();
  const adminAddress = opts.adminAddress ?? '127.0.0.1';
  const args = ['serve', dir, '--admin-port', String(adminPort), '--admin-address', adminAddress, '--work-dir', workDir, ...(opts.args ?? [])];
  const proc = new ManagedProcess(`vgw serve ${dir}`, null, args, logFile, opts.nodeArgs);
  const adminUrl = `http://${adminAddress}:${adminPort}`;
  return {
    proc,
    adminUrl,
    spawnedAt,
    async status() {
      const r = await httpGet(`${adminUrl}/status`);
      if (r.status !== 200) throw new Error(`/status answered ${r.status}`);
      return JSON.parse(r.body) as ServeStatus;
    },
    stop: () => proc.stop(),
  };
}

/**
 * Resolves at the first 200 for `host` + `path` on the gateway; returns performance.now().
 * Gives up early when the gateway reports that its config was rejected before ever serving.
 */
export async function waitFor200(gatewayUrl: string, host: string, path: string, timeoutMs: number, gw?: Gateway): Promise<number> {
  let last = 'nothing';
  let lastStatusCheck = performance.now();
  try {
    return await waitFor(`200 from ${host}${path}`, timeoutMs, 10, async () => {
      if (gw && performance.now() - lastStatusCheck > 1_000) {
        lastStatusCheck = performance.now();
        const st = await gw.status().catch(() => undefined);
        if (st && !st.ready && st.lastError) throw new Fatal(`vgw serve rejected its config: ${st.lastError.message}`);
      }
      try {
        const r = await httpGet(`${gatewayUrl}${path}`, { host, timeoutMs: 2_000 });
        last = String(r.status);
        return r.status === 200 ? performance.now() : undefined;
      } catch (err) {
        last = (err as Error).message;
        throw err;
      }
    }, gw?.proc);
  } catch (err) {
    if (err instanceof Fatal) throw err;
    throw new Error(`${(err as Error).message} (last answer: ${last})`);
  }
}

/**
 * CPU seconds (user + system) consumed so far by the live processes of a process group; every
 * ManagedProcess leads its own group, so this covers `vgw serve` together with its varnishd.
 */
export async function groupCpuSeconds(pgid: number): Promise<number> {
  let ticks = 0;
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = await readFile(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue;
    }
    // Fields after "(comm)": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(f[2]) !== pgid) continue;
    ticks += Number(f[11]) + Number(f[12]);
  }
  return ticks / CLOCK_TICKS;
}

// USER_HZ is 100 on every Linux architecture this runs on.
const CLOCK_TICKS = 100;

/** Busy and total CPU time of the whole machine so far, in seconds, from /proc/stat. */
export async function machineCpuSeconds(): Promise<{ busy: number; total: number }> {
  const line = (await readFile('/proc/stat', 'utf8')).split('\n')[0];
  // cpu user nice system idle iowait irq softirq steal ...
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.reduce((a, b) => a + b, 0);
  const idle = v[3] + (v[4] ?? 0);
  return { busy: (total - idle) / CLOCK_TICKS, total: total / CLOCK_TICKS };
}

export interface BareVarnish {
  proc: ManagedProcess;
  instanceDir: string;
  stop(): Promise<void>;
}

/**
 * A varnishd with a hand-written VCL and the gateway's parameters, no control plane: the
 * reference the generated VCL is compared against. `dir` must be reachable by varnishd's
 * jail user.
 */
export async function startBareVarnish(dir: string, vcl: string, address: string, port: number, params: Record<string, string>): Promise<BareVarnish> {
  await mkdir(dir, { recursive: true });
  const vclPath = join(dir, 'baseline.vcl');
  await writeFile(vclPath, vcl, { mode: 0o644 });
  const instanceDir = join(dir, 'varnish');
  const args = ['-F', '-n', instanceDir, '-f', vclPath, '-a', `${address}:${port}`, '-T', '127.0.0.1:0', '-s', 'malloc,256m'];
  for (const [k, v] of Object.entries(params)) args.push('-p', `${k}=${v}`);
  const proc = new ManagedProcess(`varnishd ${address}:${port}`, 'varnishd', args, join(dir, 'varnishd.log'));
  await waitFor('baseline varnishd', 30_000, 50, async () => {
    await httpGet(`http://${address}:${port}/`, { timeoutMs: 1_000 });
    return true;
  }, proc);
  return { proc, instanceDir, stop: () => proc.stop() };
}

/**
 * Waits (at most `maxWaitS`) until the machine has been nearly idle for one second, since
 * other work on the box skews every number here. Returns the CPU (in cores) that was busy in
 * the last sample, to be reported alongside the results.
 */
export async function waitForQuietMachine(maxWaitS: number, idleCores = 0.3): Promise<{ backgroundCores: number; waitedS: number }> {
  const start = performance.now();
  for (;;) {
    const a = await machineCpuSeconds();
    const t0 = performance.now();
    await sleep(1_000);
    const b = await machineCpuSeconds();
    const cores = (b.busy - a.busy) / ((performance.now() - t0) / 1000);
    const waitedS = (performance.now() - start) / 1000;
    if (cores <= idleCores || waitedS >= maxWaitS) {
      if (cores > idleCores) console.warn(`machine still busy (${cores.toFixed(2)} cores used by other processes); results will be skewed`);
      return { backgroundCores: cores, waitedS };
    }
  }
}
