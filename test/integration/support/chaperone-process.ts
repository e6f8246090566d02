// `vgw chaperone` as a child process, the way a pod runs it: its JSON log lines are collected
// from stdout (with their arrival time), and it runs in its own process group so that a failed
// test can stop it together with the varnishd it started.
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { KubeApiServer } from '../../support/kube-api-server.ts';

const MAIN = fileURLToPath(new URL('../../../src/cli/main.ts', import.meta.url));

export interface LogLine {
  /** performance.now() when the line arrived. */
  at: number;
  json: Record<string, unknown>;
}

export interface ChaperoneProcess {
  child: ChildProcess;
  lines: LogLine[];
  stderr(): string;
  exited: Promise<{ code: number | null; signal: string | null; at: number }>;
  running(): boolean;
  /** Everything it printed, for failure messages. */
  diagnostics(): string;
  /** First line with this `event`, if any. */
  event(name: string): LogLine | undefined;
  /** Where /status and /metrics listen, once the agent has logged it. */
  metricsEndpoint(): { address: string; port: number } | undefined;
  /** SIGKILL to the whole group (the agent and its varnishd), if still running. */
  kill(): Promise<void>;
  /** True once no process of its group is left. */
  groupGone(): boolean;
}

export async function startChaperoneProcess(opts: {
  server: KubeApiServer;
  dir: string;
  gateway: { namespace: string; name: string };
  admin: { address: string; port: number };
  pod: string;
  /**
   * varnishd's listen address (--listen-address). Always this test's own: the agent's default,
   * 0.0.0.0, would take the port on every address and collide with other test files running at
   * the same time (a busy port is left out, so the gateway would be ready without its listener).
   */
  listenAddress: string;
}): Promise<ChaperoneProcess> {
  const kubeconfig = join(opts.dir, `kubeconfig-${opts.gateway.name}.json`);
  await writeFile(kubeconfig, opts.server.kubeConfig().exportConfig());
  const args = [
    'chaperone',
    '--gateway', `${opts.gateway.namespace}/${opts.gateway.name}`,
    '--kubeconfig', kubeconfig,
    '--listen-address', opts.listenAddress,
    '--probe-port', String(opts.admin.port),
    '--probe-address', opts.admin.address,
    // /status and /metrics on a free loopback port, found from the agent's log.
    '--metrics-port', '0',
    '--metrics-address', '127.0.0.1',
    '--work-dir', join(opts.dir, `work-${opts.gateway.name}`),
    '--pod', opts.pod,
  ];
  const child = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: { ...process.env, LOG_LEVEL: 'info' } });
  const lines: LogLine[] = [];
  let partial = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    const at = performance.now();
    const parts = (partial + chunk.toString()).split('\n');
    partial = parts.pop() ?? '';
    for (const l of parts) {
      if (l.trim() === '') continue;
      try {
        lines.push({ at, json: JSON.parse(l) as Record<string, unknown> });
      } catch {
        lines.push({ at, json: { unparsed: l } });
      }
    }
  });
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  // Resolved on 'close' (stdout fully read), with the time of the exit itself.
  const exited = new Promise<{ code: number | null; signal: string | null; at: number }>((resolve) => {
    let at = 0;
    child.once('exit', () => (at = performance.now()));
    child.once('close', (code, signal) => resolve({ code, signal, at: at || performance.now() }));
  });
  const running = () => child.exitCode === null && child.signalCode === null;
  const groupGone = () => {
    try {
      process.kill(-(child.pid as number), 0);
      return false;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'ESRCH';
    }
  };
  return {
    child,
    lines,
    stderr: () => stderr,
    exited,
    running,
    diagnostics: () => `\nstdout:\n${lines.map((l) => JSON.stringify(l.json)).join('\n')}\nstderr:\n${stderr}`,
    event: (name) => lines.find((l) => l.json.event === name),
    metricsEndpoint: () => {
      const a = lines.find((l) => l.json.event === 'metrics-listening')?.json.address as { address: string; port: number } | undefined;
      return a ? { address: a.address, port: a.port } : undefined;
    },
    async kill() {
      if (child.pid === undefined || groupGone()) return;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
      if (running()) await exited;
    },
    groupGone,
  };
}

/** Whether something accepts TCP connections on `address:port`. */
export function portOpen(p: { address: string; port: number }): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(p.port, p.address, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}
