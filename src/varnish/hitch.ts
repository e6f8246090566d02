// Client TLS in front of varnishd: one hitch process with one frontend per HTTPS address:port,
// all forwarding to varnishd's PROXY socket with PROXY v2 (which carries the address:port the
// client connected to, TLS and the SNI). Varnish 7.1 has no TLS of its own.
//
// Lifecycle: apply() writes hitch.conf and one PEM file per certificate (certificate chain and
// key, mode 0600 in a 0700 directory) and
//  - starts hitch the first time;
//  - restarts it when the frontends or the backend change (listen sockets are hitch's start
//    configuration; varnishd keeps running);
//  - sends SIGHUP when only certificates changed: hitch reads its configuration again, new
//    connections get the new certificates, and the old workers keep serving the connections
//    they have (with the old certificate) until the clients close them.
// hitch runs in the foreground under SupervisedProcess, restarted with backoff if it dies.
import { createHash } from 'node:crypto';
import { connect } from 'node:net';
import { chmod, mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
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
  /** Worker processes; default 1 (each handles many connections). */
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

/** Bounds: a PEM file (chain + key) and the number of certificates hitch loads. */
export const HITCH_LIMITS = { pemBytes: 1024 * 1024, certificates: 4096, frontends: 1024, caBundleBytes: 16 * 1024 * 1024 } as const;

/** Certificate ids become file names: only these characters, bounded. */
const CERT_ID = /^[a-z0-9][a-z0-9._-]{0,300}$/;

export class Hitch {
  private readonly opts: HitchOptions;
  private readonly log: Logger;
  private process: SupervisedProcess | null = null;
  /** What the running hitch listens on and forwards to; a change needs a restart. */
  private sockets = '';
  /** Hash of every PEM file's content; a change needs a SIGHUP. */
  private contents = '';
  readonly confPath: string;
  readonly certDir: string;
  readonly caDir: string;
  /** The address:port of every frontend the running hitch listens on. */
  private frontendSockets: { address: string; port: number }[] = [];

  constructor(opts: HitchOptions) {
    this.opts = opts;
    this.log = opts.logger.child({ component: 'hitch' });
    this.confPath = join(opts.workDir, 'hitch.conf');
    this.certDir = join(opts.workDir, 'certs');
    this.caDir = join(opts.workDir, 'ca');
  }

  /** Sockets the running hitch holds (a port probe finds them busy: they are ours). */
  get listening(): readonly { address: string; port: number }[] {
    return this.process ? this.frontendSockets : [];
  }

  get pid(): number | undefined {
    return this.process?.pid;
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
    await writePrivate(this.confPath, Buffer.from(this.render(config)));

    if (this.process && this.sockets === sockets) {
      if (this.contents === contents) return 'unchanged';
      this.contents = contents;
      const pid = this.process.pid;
      if (pid !== undefined) process.kill(pid, 'SIGHUP');
      this.log.info({ event: 'hitch-reload', certificates: used.size }, 'hitch reloads its certificates');
      return 'reloaded';
    }
    const restart = this.process !== null;
    if (this.process) await this.process.stop();
    this.sockets = sockets;
    this.contents = contents;
    this.process = this.spawn();
    this.frontendSockets = config.frontends.map((f) => ({ address: f.address, port: f.port }));
    await this.waitListening(config.frontends);
    this.log.info({ event: restart ? 'hitch-restart' : 'hitch-start', frontends: config.frontends.length, pid: this.pid }, 'hitch serves TLS');
    return restart ? 'restarted' : 'started';
  }

  async stop(): Promise<void> {
    const p = this.process;
    this.process = null;
    this.sockets = '';
    this.contents = '';
    this.frontendSockets = [];
    if (p) await p.stop();
  }

  private spawn(): SupervisedProcess {
    const p = new SupervisedProcess({
      command: this.opts.command ?? 'hitch',
      args: [`--config=${this.confPath}`],
      restart: { initialDelayMs: 250, maxDelayMs: 10_000 },
      stopGraceMs: 2_000,
    });
    // hitch's own messages name files and sockets, never key content.
    p.on('line', (l) => this.log.info({ event: 'hitch-output', stream: l.stream }, l.text));
    p.on('exited', (e) => {
      if (!e.expected) this.log.warn({ event: 'hitch-exit', code: e.code, signal: e.signal, error: e.error }, 'hitch exited');
    });
    p.start();
    return p;
  }

  /** Resolves once every frontend accepts connections; rejects if hitch keeps failing. */
  private async waitListening(frontends: readonly HitchFrontend[]): Promise<void> {
    const deadline = Date.now() + 10_000;
    for (const f of frontends) {
      while (!(await accepts(f.address, f.port))) {
        if (Date.now() > deadline) {
          throw new Error(`hitch does not listen on ${f.address}:${f.port}: ${(this.process?.output() ?? []).slice(-5).join(' | ')}`);
        }
        await new Promise((r) => setTimeout(r, 25));
      }
    }
  }

  private render(config: HitchConfig): string {
    const q = (s: string) => JSON.stringify(s);
    const lines = [
      '# Generated by vgw. Do not edit: changes are overwritten.',
      'daemon = off',
      'syslog = off',
      'log-level = 1',
      `workers = ${this.opts.workers ?? 1}`,
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
