// Client TLS in front of varnishd: one hitch process with one frontend per HTTPS address:port,
// all forwarding to varnishd's PROXY socket with PROXY v2 (which carries the address:port the
// client connected to, TLS and the SNI). Varnish 7.1 has no TLS of its own.
//
// Lifecycle: apply() writes one PEM file per certificate (certificate chain and key, mode 0600
// in a 0700 directory) and a configuration, and every change is a hand-over between two hitch
// processes ("instances"), never a restart in place and never a second SIGHUP:
//  1. a new instance starts with the new configuration; hitch binds its listen sockets with
//     SO_REUSEPORT, so it listens on the same address:ports beside the serving one;
//  2. once it is up, the old instance is retired: its configuration is rewritten to a single
//     frontend on an ephemeral loopback port and it gets SIGHUP, so its workers close the public
//     sockets and keep serving the connections they have until the clients close them;
//  3. a retired instance is stopped when its last old worker is gone, or when it exceeds the
//     drain bounds (DRAIN_LIMITS), which cuts the connections it still holds.
// Why not a SIGHUP of the serving instance: hitch 1.7 mishandles a reload while an older
// generation of workers still drains (every worker exits with status 1 at once, open
// connections are cut and the port refuses connections for a moment). That was seen here with
// one kept-alive client and two rotations seconds apart; an instance that is SIGHUPed once, to
// retire, never meets it.
// Queued connections of a closed listen socket are reset by the kernel unless
// net.ipv4.tcp_migrate_req is 1, which moves them to the new instance's socket (docs/tls.md).
// Each instance runs in the foreground under SupervisedProcess, restarted with backoff if it
// dies while serving.
import { createHash } from 'node:crypto';
import { connect } from 'node:net';
import { availableParallelism } from 'node:os';
import { chmod, mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { SupervisedProcess } from '../util/supervised-process.ts';

export interface HitchFrontend {
  address: string;
  port: number;
  /** Certificate ids (keys of HitchConfig.pems), the default first. */
  certificates: readonly string[];
  /** Ask clients for a certificate signed by a CA of the bundle `ca` (a key of
   *  HitchConfig.caBundles). required: refuse a client without one; optional: serve it too.
   *  Either way hitch refuses the handshake of a client whose certificate does not verify. */
  clientVerify?: { mode: 'required' | 'optional'; ca: string };
  /** Lowest TLS version (default TLSv1.2). */
  minVersion?: 'TLSv1.2' | 'TLSv1.3';
  /** OpenSSL cipher names for TLS 1.2 / suite names for TLS 1.3, in preference order. */
  ciphers?: readonly string[];
  cipherSuites?: readonly string[];
}

export interface HitchConfig {
  frontends: readonly HitchFrontend[];
  /** PEM text per certificate id: the certificate chain followed by the private key. */
  pems: ReadonlyMap<string, Buffer>;
  /** Client CA bundles (PEM certificates) by id. */
  caBundles?: ReadonlyMap<string, Buffer>;
  /** varnishd's PROXY socket. */
  backend: { address: string; port: number };
}

export interface HitchOptions {
  /** Created if missing (mode 0700); holds hitch.conf and the PEM files. */
  workDir: string;
  logger: Logger;
  /** Default "hitch". */
  command?: string;
  /** Worker processes; default defaultHitchWorkers(). */
  workers?: number;
  /**
   * User the workers run as. hitch refuses to run workers as root: when we are root (a test
   * machine; gateway pods run as non-root) the default is "nobody". The master keeps reading the
   * key files, so they stay readable by us only.
   */
  user?: string;
  /**
   * Offer HTTP/2 in ALPN (h2, http/1.1). Off by default: varnishd 7.1.1 as packaged lacks the
   * HTTP/2 "Rapid Reset" fix (VSV00013, CVE-2023-44487). varnishd must then run with
   * feature=+http2.
   */
  http2?: boolean;
}

export type HitchApplyResult = 'started' | 'restarted' | 'reloaded' | 'unchanged';

/** A retired instance is stopped, cutting what it still serves, after this long or when more
 *  than `instances` are retired (the oldest first). */
export const DRAIN_LIMITS = { ms: 10 * 60_000, instances: 4 } as const;

/** hitch's per-connection error lines ("Handshake failure", "SSL_read error", ...). */
const CONNECTION_ERROR = /\b(Handshake failure|SSL_read error|SSL_write error|SSL_do_handshake|Connection reset)/i;
const CONNECTION_ERRORS_LOG_MS = 60_000;

/** How long a new instance may take to come up before the change is given up. */
const START_TIMEOUT_MS = 10_000;

interface Instance {
  id: number;
  process: SupervisedProcess;
  confPath: string;
  /** Set once it says it is up ("initialization complete"). */
  up: boolean;
  /** When retired: its workers at that moment (they drain) and the time. */
  draining?: { pids: number[]; since: number };
}

/** Bounds: a PEM file (chain + key) and the number of certificates hitch loads. */
export const HITCH_LIMITS = { pemBytes: 1024 * 1024, certificates: 4096, frontends: 1024, caBundleBytes: 16 * 1024 * 1024 } as const;

/**
 * One worker per CPU the process may use, at most 4: a worker is one event loop on one core, so a
 * single one caps TLS at one core (bench/README.md "TLS"); during a hand-over two instances run.
 */
export function defaultHitchWorkers(): number {
  return Math.max(1, Math.min(4, availableParallelism()));
}

/** Certificate ids become file names: only these characters, bounded. */
const CERT_ID = /^[a-z0-9][a-z0-9._-]{0,300}$/;

export class Hitch {
  private readonly opts: HitchOptions;
  private readonly log: Logger;
  /** The instance serving the public sockets. */
  private current: Instance | null = null;
  /** Instances handed over, draining their connections. */
  private retired: Instance[] = [];
  private nextId = 1;
  /** Client connection errors hitch reported since the last summary, and when that was. */
  private connectionErrors = { count: 0, total: 0, loggedAt: 0 };
  private drainTimer: NodeJS.Timeout | null = null;
  /** What the serving instance listens on and forwards to. */
  private sockets = '';
  /** Hash of the serving configuration and every file it names. */
  private contents = '';
  readonly certDir: string;
  readonly caDir: string;
  /** The address:port of every frontend the running hitch listens on. */
  private frontendSockets: { address: string; port: number }[] = [];

  constructor(opts: HitchOptions) {
    this.opts = opts;
    this.log = opts.logger.child({ component: 'hitch' });
    this.certDir = join(opts.workDir, 'certs');
    this.caDir = join(opts.workDir, 'ca');
  }

  /** Sockets the running hitch holds (a port probe finds them busy: they are ours). */
  get listening(): readonly { address: string; port: number }[] {
    return this.current ? this.frontendSockets : [];
  }

  /** The serving instance's master process. */
  get pid(): number | undefined {
    return this.current?.process.pid;
  }

  /** The serving instance's configuration file. */
  get confPath(): string {
    return this.current?.confPath ?? join(this.opts.workDir, 'hitch-0.conf');
  }

  /** Client connections hitch reported failing (handshake or I/O errors) since it started. */
  get clientConnectionErrors(): number {
    return this.connectionErrors.total;
  }

  /** Retired instances still draining connections. */
  get drainingInstances(): number {
    return this.retired.length;
  }

  /** The PEM file of a certificate id (exists once apply() wrote it). */
  pemPath(id: string): string {
    return join(this.certDir, `${id}.pem`);
  }

  /** The file of a client CA bundle id. */
  caPath(id: string): string {
    return join(this.caDir, `${id}.pem`);
  }

  async apply(config: HitchConfig): Promise<HitchApplyResult> {
    checkConfig(config);
    await mkdir(this.certDir, { recursive: true, mode: 0o700 });
    await mkdir(join(this.opts.workDir, 'ocsp'), { recursive: true, mode: 0o700 });
    await mkdir(this.caDir, { recursive: true, mode: 0o700 });
    await chmod(this.opts.workDir, 0o700);
    await chmod(this.certDir, 0o700);
    const used = new Set(config.frontends.flatMap((f) => f.certificates));
    const hash = createHash('sha256');
    for (const id of [...used].sort()) {
      const pem = config.pems.get(id) as Buffer;
      hash.update(id).update('\0').update(pem).update('\0');
      await writePrivate(this.pemPath(id), pem);
    }
    // Certificates no frontend uses any more: their keys do not stay on disk.
    for (const name of await readdir(this.certDir)) {
      if (!used.has(name.replace(/\.pem$/, ''))) await rm(join(this.certDir, name), { force: true });
    }
    const cas = new Set(config.frontends.flatMap((f) => (f.clientVerify ? [f.clientVerify.ca] : [])));
    for (const id of [...cas].sort()) {
      const pem = config.caBundles?.get(id) as Buffer;
      hash.update(id).update('\0').update(pem).update('\0');
      await writePrivate(this.caPath(id), pem);
    }
    for (const name of await readdir(this.caDir)) {
      if (!cas.has(name.replace(/\.pem$/, ''))) await rm(join(this.caDir, name), { force: true });
    }
    // ALPN is hitch-wide and read at start only: a change of it is a restart.
    const sockets = JSON.stringify([config.frontends.map((f) => [f.address, f.port]), config.backend, this.opts.http2 === true]);
    const contents = hash.update(JSON.stringify(config.frontends)).digest('hex');
    if (this.current && this.sockets === sockets && this.contents === contents) return 'unchanged';

    const previous = this.current;
    const next = await this.startInstance(this.render(config), config.frontends);
    this.current = next;
    const result: HitchApplyResult = previous === null ? 'started' : this.sockets === sockets ? 'reloaded' : 'restarted';
    this.sockets = sockets;
    this.contents = contents;
    this.frontendSockets = config.frontends.map((f) => ({ address: f.address, port: f.port }));
    if (previous) await this.retire(previous, config);
    this.log.info({ event: `hitch-${result === 'started' ? 'start' : result === 'reloaded' ? 'reload' : 'restart'}`, frontends: config.frontends.length, certificates: used.size, pid: this.pid, draining: this.retired.length }, 'hitch serves TLS');
    return result;
  }

  async stop(): Promise<void> {
    const all = [...(this.current ? [this.current] : []), ...this.retired];
    this.current = null;
    this.retired = [];
    this.sockets = '';
    this.contents = '';
    this.frontendSockets = [];
    if (this.drainTimer) clearInterval(this.drainTimer);
    this.drainTimer = null;
    await Promise.all(all.map((i) => i.process.stop()));
  }

  /** Starts an instance with `conf`; resolves once it is up and every frontend accepts. A
   *  failure leaves the serving instance as it was. */
  private async startInstance(conf: string, frontends: readonly HitchFrontend[]): Promise<Instance> {
    const id = this.nextId++;
    const confPath = join(this.opts.workDir, `hitch-${id}.conf`);
    await writePrivate(confPath, Buffer.from(conf));
    const instance: Instance = { id, process: this.spawn(confPath, id), confPath, up: false };
    instance.process.on('line', (l) => {
      if (l.text.includes('initialization complete')) instance.up = true;
    });
    instance.process.on('started', () => (instance.up = false));
    const deadline = Date.now() + START_TIMEOUT_MS;
    try {
      while (!instance.up) {
        if (Date.now() > deadline) throw new Error(`hitch did not start: ${instance.process.output().slice(-5).join(' | ')}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      for (const f of frontends) {
        while (!(await accepts(f.address, f.port))) {
          if (Date.now() > deadline) throw new Error(`hitch does not listen on ${f.address}:${f.port}: ${instance.process.output().slice(-5).join(' | ')}`);
          await new Promise((r) => setTimeout(r, 25));
        }
      }
    } catch (e) {
      await instance.process.stop();
      await rm(confPath, { force: true });
      throw e;
    }
    return instance;
  }

  /**
   * Hands `old` over: it listens on an ephemeral loopback port from now on (its only SIGHUP),
   * and keeps the connections it has. `config` gives it a certificate that exists.
   */
  private async retire(old: Instance, config: HitchConfig): Promise<void> {
    const pids = await childPids(old.process.pid);
    const parked = this.render({ ...config, frontends: [{ address: '127.0.0.1', port: 0, certificates: [config.frontends[0].certificates[0]] }] });
    await writePrivate(old.confPath, Buffer.from(parked));
    old.draining = { pids, since: Date.now() };
    if (old.process.pid !== undefined) signal(old.process.pid, 'SIGHUP');
    this.retired.push(old);
    while (this.retired.length > DRAIN_LIMITS.instances) await this.end(this.retired[0], 'too many instances draining');
    this.drainTimer ??= setInterval(() => void this.reapDrained(), 1_000).unref();
  }

  /** Stops retired instances whose old workers are gone, or that drained too long. */
  private async reapDrained(): Promise<void> {
    for (const old of [...this.retired]) {
      const { pids, since } = old.draining as { pids: number[]; since: number };
      if (!pids.some(alive)) await this.end(old, null);
      else if (Date.now() - since > DRAIN_LIMITS.ms) await this.end(old, 'drain time exceeded');
    }
    if (this.retired.length === 0 && this.drainTimer) {
      clearInterval(this.drainTimer);
      this.drainTimer = null;
    }
  }

  private async end(old: Instance, cut: string | null): Promise<void> {
    this.retired = this.retired.filter((i) => i !== old);
    if (cut) this.log.warn({ event: 'hitch-drain-cut', reason: cut, pid: old.process.pid }, 'a retired hitch is stopped with connections still open');
    await old.process.stop();
    await rm(old.confPath, { force: true });
  }

  private connectionError(): void {
    const e = this.connectionErrors;
    e.count++;
    e.total++;
    const now = Date.now();
    if (now - e.loggedAt < CONNECTION_ERRORS_LOG_MS) return;
    this.log.info({ event: 'hitch-connection-errors', count: e.count, total: e.total }, 'client connections failed in hitch (TLS handshake or I/O errors)');
    e.count = 0;
    e.loggedAt = now;
  }

  private spawn(confPath: string, instance: number): SupervisedProcess {
    const p = new SupervisedProcess({
      command: this.opts.command ?? 'hitch',
      args: [`--config=${confPath}`],
      restart: { initialDelayMs: 250, maxDelayMs: 10_000 },
      stopGraceMs: 2_000,
    });
    // hitch's own messages name files and sockets, never key content.
    p.on('line', (l) => {
      // One line per failed handshake or broken client connection: any client can cause them,
      // so they are counted and summed up at most once per CONNECTION_ERRORS_LOG_MS.
      if (CONNECTION_ERROR.test(l.text)) this.connectionError();
      else this.log.info({ event: 'hitch-output', instance, stream: l.stream }, l.text);
    });
    p.on('exited', (e) => {
      if (!e.expected) this.log.warn({ event: 'hitch-exit', instance, code: e.code, signal: e.signal, error: e.error }, 'hitch exited');
    });
    p.start();
    return p;
  }

  private render(config: HitchConfig): string {
    const q = (s: string) => JSON.stringify(s);
    const lines = [
      '# Generated by vgw. Do not edit: changes are overwritten.',
      'daemon = off',
      'syslog = off',
      'log-level = 1',
      `workers = ${this.opts.workers ?? defaultHitchWorkers()}`,
      `backend = ${q(`[${config.backend.address}]:${config.backend.port}`)}`,
      'write-proxy-v2 = on',
      // HTTP/2 is opt-in: varnishd 7.1.1 lacks the HTTP/2 "Rapid Reset" fix (VSV00013).
      this.opts.http2 ? 'alpn-protos = "h2,http/1.1"' : 'alpn-protos = "http/1.1"',
      'tls-protos = TLSv1.2 TLSv1.3',
      // A client whose SNI matches no certificate still gets the default one.
      'sni-nomatch-abort = off',
      `ocsp-dir = ${q(join(this.opts.workDir, 'ocsp'))}`,
    ];
    const user = this.opts.user ?? (process.getuid?.() === 0 ? 'nobody' : undefined);
    if (user !== undefined) lines.push(`user = ${q(user)}`);
    for (const f of config.frontends) {
      lines.push('frontend = {', `  host = ${q(f.address)}`, `  port = ${q(String(f.port))}`);
      // hitch serves the LAST pem-file of a frontend to clients whose SNI matches none.
      for (const id of [...f.certificates].reverse()) lines.push(`  pem-file = ${q(this.pemPath(id))}`);
      if (f.clientVerify) lines.push(`  client-verify = ${f.clientVerify.mode}`, `  client-verify-ca = ${q(this.caPath(f.clientVerify.ca))}`);
      if (f.minVersion === 'TLSv1.3') lines.push('  tls-protos = TLSv1.3');
      // Names were checked against OpenSSL's (src/gatewayapi/tls-options.ts): an unknown one
      // would make hitch refuse the whole configuration.
      if (f.ciphers?.length) lines.push(`  ciphers = ${q(f.ciphers.join(':'))}`, '  prefer-server-ciphers = on');
      if (f.cipherSuites?.length) lines.push(`  ciphersuites = ${q(f.cipherSuites.join(':'))}`);
      lines.push('}');
    }
    return lines.join('\n') + '\n';
  }
}

function checkConfig(config: HitchConfig): void {
  if (config.frontends.length === 0) throw new Error('hitch needs at least one frontend');
  if (config.frontends.length > HITCH_LIMITS.frontends) throw new Error(`at most ${HITCH_LIMITS.frontends} TLS frontends`);
  if (config.pems.size > HITCH_LIMITS.certificates) throw new Error(`at most ${HITCH_LIMITS.certificates} certificates`);
  for (const f of config.frontends) {
    if (f.certificates.length === 0) throw new Error(`TLS frontend ${f.address}:${f.port} has no certificate`);
    for (const id of f.certificates) {
      if (!CERT_ID.test(id)) throw new Error(`invalid certificate id ${JSON.stringify(id.slice(0, 80))}`);
      const pem = config.pems.get(id);
      if (!pem) throw new Error(`TLS frontend ${f.address}:${f.port}: no PEM for certificate ${id}`);
      if (pem.length > HITCH_LIMITS.pemBytes) throw new Error(`certificate ${id}: PEM larger than ${HITCH_LIMITS.pemBytes} bytes`);
    }
    if (f.clientVerify) {
      const { ca } = f.clientVerify;
      if (!CERT_ID.test(ca)) throw new Error(`invalid CA bundle id ${JSON.stringify(ca.slice(0, 80))}`);
      const pem = config.caBundles?.get(ca);
      if (!pem) throw new Error(`TLS frontend ${f.address}:${f.port}: no PEM for CA bundle ${ca}`);
      if (pem.length > HITCH_LIMITS.caBundleBytes) throw new Error(`CA bundle ${ca}: larger than ${HITCH_LIMITS.caBundleBytes} bytes`);
    }
    for (const name of [...(f.ciphers ?? []), ...(f.cipherSuites ?? [])]) {
      if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/.test(name)) throw new Error(`TLS frontend ${f.address}:${f.port}: invalid cipher name ${JSON.stringify(name.slice(0, 80))}`);
    }
  }
}

/** Writes a file only its owner can read, replacing the old one atomically (hitch may be reading it). */
async function writePrivate(path: string, data: Buffer): Promise<void> {
  const tmp = `${path}.tmp`;
  await rm(tmp, { force: true });
  await writeFile(tmp, data, { mode: 0o600, flag: 'wx' });
  await chmod(tmp, 0o600);
  await rename(tmp, path);
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

/** The child processes of `pid` (Linux /proc); none when it is gone. */
async function childPids(pid: number | undefined): Promise<number[]> {
  if (pid === undefined) return [];
  try {
    const text = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8');
    return text.trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // Already gone.
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
