// Backend TLS: varnishd 7.1 cannot speak TLS to backends, so one stunnel process in client mode
// does it for every TLS endpoint. Each endpoint is one stunnel service accepting on a loopback
// port (the backend the VCL declares for it) and connecting to the endpoint with the policy's
// SNI, trust anchors and names to verify, and the Gateway's client certificate if any.
//
// Lifecycle: apply() writes stunnel.conf and the PEM files (CA bundles, client certificate and
// key; mode 0600 in a 0700 directory) and starts stunnel the first time; afterwards any change
// is a SIGHUP: stunnel reads its configuration again, binds the services that are new, and the
// connections it has keep running. stunnel runs in the foreground under SupervisedProcess.
import { createHash } from 'node:crypto';
import { chmod, mkdir, readdir, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { SupervisedProcess } from '../util/supervised-process.ts';
import { writePrivateFile } from '../util/private-file.ts';

export interface StunnelService {
  /** Loopback port the service accepts on (varnishd's backend). */
  acceptPort: number;
  /** The endpoint. */
  address: string;
  port: number;
  sni: string;
  /** PEM id of the trusted CA bundle, or null for the system store. */
  caBundle: string | null;
  /** The peer certificate must carry one of these DNS names. */
  hostnames: readonly string[];
  /** PEM id of the client certificate chain followed by its key. */
  clientCertificate?: string;
}

export interface StunnelConfig {
  services: readonly StunnelService[];
  /** PEM text per id, as the services name them. */
  pems: ReadonlyMap<string, Buffer>;
}

export interface StunnelOptions {
  /** Created if missing (mode 0700); holds stunnel.conf and the PEM files. */
  workDir: string;
  logger: Logger;
  /** Default "stunnel". */
  command?: string;
  /** The system trust store, for wellKnownCACertificates: System. */
  systemCaFile?: string;
}

export type StunnelApplyResult = 'started' | 'reloaded' | 'unchanged' | 'stopped';

/** Bounds: services (TLS endpoints) one stunnel runs, and the size of one PEM file. */
export const STUNNEL_LIMITS = { services: 4096, pemBytes: 1024 * 1024 } as const;

export const SYSTEM_CA_FILE = '/etc/ssl/certs/ca-certificates.crt';

const PEM_ID = /^[a-z0-9][a-z0-9._-]{0,300}$/;
const HOSTNAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

export class Stunnel {
  private readonly opts: StunnelOptions;
  private readonly log: Logger;
  private process: SupervisedProcess | null = null;
  private contents = '';
  readonly confPath: string;
  readonly pemDir: string;

  constructor(opts: StunnelOptions) {
    this.opts = opts;
    this.log = opts.logger.child({ component: 'stunnel' });
    this.confPath = join(opts.workDir, 'stunnel.conf');
    this.pemDir = join(opts.workDir, 'pem');
  }

  get pid(): number | undefined {
    return this.process?.pid;
  }

  pemPath(id: string): string {
    return join(this.pemDir, `${id}.pem`);
  }

  async apply(config: StunnelConfig): Promise<StunnelApplyResult> {
    checkConfig(config);
    if (config.services.length === 0) {
      if (!this.process) return 'unchanged';
      await this.stop();
      this.log.info({ event: 'stunnel-stop' }, 'no TLS backend: backend TLS proxy stopped');
      return 'stopped';
    }
    await mkdir(this.pemDir, { recursive: true, mode: 0o700 });
    await chmod(this.opts.workDir, 0o700);
    await chmod(this.pemDir, 0o700);
    const used = new Set(config.services.flatMap((s) => [s.caBundle, s.clientCertificate].filter((id): id is string => typeof id === 'string')));
    const hash = createHash('sha256');
    for (const id of [...used].sort()) {
      const pem = config.pems.get(id) as Buffer;
      hash.update(id).update('\0').update(pem).update('\0');
      await writePrivateFile(this.pemPath(id), pem);
    }
    const conf = this.render(config);
    hash.update(conf);
    await writePrivateFile(this.confPath, Buffer.from(conf));
    // Keys and bundles no service uses any more do not stay on disk.
    for (const name of await readdir(this.pemDir)) {
      if (!used.has(name.replace(/\.pem$/, ''))) await rm(join(this.pemDir, name), { force: true });
    }
    const contents = hash.digest('hex');
    if (this.process && this.contents === contents) return 'unchanged';
    this.contents = contents;
    if (this.process?.pid !== undefined) {
      process.kill(this.process.pid, 'SIGHUP');
      await this.listening(config.services);
      this.log.info({ event: 'stunnel-reload', services: config.services.length }, 'backend TLS proxy reloaded');
      return 'reloaded';
    }
    this.process = this.spawn();
    await this.listening(config.services);
    this.log.info({ event: 'stunnel-start', services: config.services.length, pid: this.pid }, 'backend TLS proxy started');
    return 'started';
  }

  async stop(): Promise<void> {
    const p = this.process;
    this.process = null;
    this.contents = '';
    if (p) await p.stop();
  }

  private spawn(): SupervisedProcess {
    const p = new SupervisedProcess({
      command: this.opts.command ?? 'stunnel',
      args: [this.confPath],
      restart: { initialDelayMs: 250, maxDelayMs: 10_000 },
      stopGraceMs: 2_000,
    });
    // stunnel's messages name services, addresses and files, never key content.
    p.on('line', (l) => this.log.info({ event: 'stunnel-output', stream: l.stream }, l.text));
    p.on('exited', (e) => {
      if (!e.expected) this.log.warn({ event: 'stunnel-exit', code: e.code, signal: e.signal, error: e.error }, 'stunnel exited');
    });
    p.start();
    return p;
  }

  /** Resolves once every service accepts connections; rejects if stunnel does not get there. */
  private async listening(services: readonly StunnelService[]): Promise<void> {
    const deadline = Date.now() + 10_000;
    for (const s of services) {
      while (!(await accepts('127.0.0.1', s.acceptPort))) {
        if (Date.now() > deadline) {
          throw new Error(`stunnel does not listen on 127.0.0.1:${s.acceptPort}: ${(this.process?.output() ?? []).slice(-5).join(' | ')}`);
        }
        await new Promise((r) => setTimeout(r, 25));
      }
    }
  }

  private render(config: StunnelConfig): string {
    const lines = [
      '; Generated by vgw. Do not edit: changes are overwritten.',
      'foreground = yes',
      'pid =',
      'syslog = no',
      'debug = notice',
    ];
    for (const s of [...config.services].sort((a, b) => a.acceptPort - b.acceptPort)) {
      const host = s.address.includes(':') ? `[${s.address}]` : s.address;
      lines.push(
        '',
        `[p${s.acceptPort}]`,
        'client = yes',
        `accept = 127.0.0.1:${s.acceptPort}`,
        `connect = ${host}:${s.port}`,
        `sni = ${s.sni}`,
        'verifyChain = yes',
        `CAfile = ${s.caBundle === null ? (this.opts.systemCaFile ?? SYSTEM_CA_FILE) : this.pemPath(s.caBundle)}`,
        ...s.hostnames.map((h) => `checkHost = ${h}`),
        'sslVersionMin = TLSv1.2',
      );
      if (s.clientCertificate) lines.push(`cert = ${this.pemPath(s.clientCertificate)}`, `key = ${this.pemPath(s.clientCertificate)}`);
    }
    return lines.join('\n') + '\n';
  }
}

/** Everything written into stunnel.conf is checked here: the file has no quoting. */
function checkConfig(config: StunnelConfig): void {
  if (config.services.length > STUNNEL_LIMITS.services) throw new Error(`at most ${STUNNEL_LIMITS.services} TLS backend endpoints`);
  const ports = new Set<number>();
  for (const s of config.services) {
    const what = `TLS backend ${s.address}:${s.port}`;
    if (!Number.isInteger(s.acceptPort) || s.acceptPort < 1 || s.acceptPort > 65535 || ports.has(s.acceptPort)) throw new Error(`${what}: bad or duplicate proxy port ${s.acceptPort}`);
    ports.add(s.acceptPort);
    if (!/^[0-9a-fA-F.:]{2,45}$/.test(s.address)) throw new Error(`${what}: address must be an IP address`);
    if (!Number.isInteger(s.port) || s.port < 1 || s.port > 65535) throw new Error(`${what}: bad port`);
    for (const h of [s.sni, ...s.hostnames]) if (!HOSTNAME.test(h)) throw new Error(`${what}: invalid hostname ${JSON.stringify(h.slice(0, 80))}`);
    if (s.hostnames.length === 0) throw new Error(`${what}: no name to verify`);
    for (const id of [s.caBundle, s.clientCertificate]) {
      if (id === null || id === undefined) continue;
      if (!PEM_ID.test(id)) throw new Error(`${what}: invalid PEM id ${JSON.stringify(id.slice(0, 80))}`);
      const pem = config.pems.get(id);
      if (!pem) throw new Error(`${what}: no PEM for ${id}`);
      if (pem.length > STUNNEL_LIMITS.pemBytes) throw new Error(`${id}: PEM larger than ${STUNNEL_LIMITS.pemBytes} bytes`);
    }
  }
}

function accepts(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: address, port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
