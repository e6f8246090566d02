// The product under test, driven only through its CLI: `serve DIR --admin-port P` and `check DIR`.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import net from 'node:net';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

export const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.ts');

export interface Serve {
  readonly adminPort: number;
  readonly logFile: string;
  /** Exit description once the process has ended. */
  exited(): string | undefined;
  tail(lines?: number): string;
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();

/** Last-resort cleanup for signal handlers: every process group this module started. */
export function killAllChildren(): void {
  for (const child of live) signalGroup(child, 'SIGKILL');
}

export async function startServe(dir: string, logFile: string, workDir: string): Promise<Serve> {
  const adminPort = await freePort();
  const log = createWriteStream(logFile, { flags: 'a' });
  // Its own process group, so that varnishd and anything else serve starts goes down with it.
  // VGW_CONFORMANCE_SHARDS=K runs the suite through K shard VCLs instead of one VCL.
  const shards = process.env.VGW_CONFORMANCE_SHARDS ? ['--shards', process.env.VGW_CONFORMANCE_SHARDS] : [];
  const child = spawn(process.execPath, [CLI, 'serve', dir, '--admin-port', String(adminPort), '--work-dir', workDir, ...shards], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  live.add(child);
  const recent: string[] = [];
  const keep = (chunk: Buffer) => {
    log.write(chunk);
    recent.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    if (recent.length > 400) recent.splice(0, recent.length - 400);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  let exit: string | undefined;
  const exitedP = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exit = signal ? `killed by ${signal}` : `exited with code ${code}`;
      live.delete(child);
      resolve();
    });
    child.once('error', (err) => {
      exit = `failed to start: ${err.message}`;
      live.delete(child);
      resolve();
    });
  });
  return {
    adminPort,
    logFile,
    exited: () => exit,
    tail: (n = 30) => recent.slice(-n).join('\n'),
    async stop() {
      if (exit === undefined) {
        child.kill('SIGTERM');
        const done = await Promise.race([exitedP.then(() => true), sleep(8000).then(() => false)]);
        if (!done) signalGroup(child, 'SIGKILL');
        await exitedP;
      }
      // Whatever serve left behind in its group (it should have stopped it already).
      signalGroup(child, 'SIGKILL');
      await new Promise<void>((resolve) => log.end(resolve));
    },
  };
}

function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // group already gone
  }
}

/** Resolves with undefined once GET /healthz answers 200, else with the reason it did not. */
export async function waitHealthy(serve: Serve, timeoutMs: number): Promise<string | undefined> {
  const until = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < until) {
    const exit = serve.exited();
    if (exit) return `serve ${exit} before becoming healthy`;
    try {
      const status = await getStatus(serve.adminPort, '/healthz');
      if (status === 200) return undefined;
      last = `/healthz answered ${status}`;
    } catch (err) {
      last = `/healthz: ${(err as Error).message}`;
    }
    await sleep(200);
  }
  return `not healthy after ${Math.round(timeoutMs / 1000)} s (${last})`;
}

function getStatus(port: number, p: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: p, agent: false, timeout: 2000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

export interface CheckRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runCheck(dir: string, timeoutMs = 60_000): Promise<CheckRun> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, 'check', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c));
    child.stderr.on('data', (c: Buffer) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      live.delete(child);
      resolve({ code: null, stdout, stderr: `${stderr}${err.message}` });
    });
    // 'close', not 'exit': the exit can be seen before the last of stdout has been read.
    child.once('close', (code) => {
      clearTimeout(timer);
      live.delete(child);
      resolve({ code, stdout, stderr });
    });
  });
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** Waits until nothing accepts connections on the given addresses any more. */
export async function waitPortsClosed(addrs: { ip: string; port: number }[], timeoutMs = 5000): Promise<string[]> {
  const until = Date.now() + timeoutMs;
  let open = addrs;
  while (open.length && Date.now() < until) {
    const states = await Promise.all(open.map((a) => accepts(a.ip, a.port)));
    open = open.filter((_, i) => states[i]);
    if (open.length) await sleep(100);
  }
  return open.map((a) => `${a.ip}:${a.port}`);
}

function accepts(ip: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: ip, port });
    s.setTimeout(500, () => {
      s.destroy();
      resolve(false);
    });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
