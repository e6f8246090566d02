// One varnishd serving a sequence of compiled configs: the part of "make this config live"
// that standalone mode and the in-pod agent share. Route, backend and filter changes are VCL
// reloads; a change of listen sockets needs a new varnishd (sockets are fixed at start), and if
// the new one cannot start, the previous config is started again so something keeps serving.
import { join } from 'node:path';
import type { Logger } from 'pino';
import { MAX_RETRY_ATTEMPTS } from '../ir/limits.ts';
import { socketKey } from '../ir/types.ts';
import { splitVarnishdArgs, storageBytesProblem, varnishdArgsProblems, varnishdParamNameProblem, varnishdParamValueProblem } from '../ir/varnishd-settings.ts';
import type { CompileStats } from '../vcl/compile.ts';
import { deployable, sameDeploy, type ShardedVcl } from '../vcl/shards.ts';
import { probeSockets, type UnavailableSockets } from '../varnish/ports.ts';
import { VclReloader, type ReloadResult } from '../varnish/reloader.ts';
import { Varnishd, type VarnishListener } from '../varnish/varnishd.ts';
import { Hitch, type HitchApplyResult, type HitchFrontend } from '../varnish/hitch.ts';
import { Stunnel, type StunnelConfig } from '../varnish/stunnel.ts';

/** Parameters that make varnishd behave as a transparent gateway (see docs/architecture.md). */
export const GATEWAY_PARAMS: Record<string, string> = {
  // Keep Accept-Encoding and bodies exactly as client and backend sent them.
  http_gzip_support: 'off',
  // Bound the cost of user regexes (PCRE2 backtracking).
  pcre2_match_limit: '10000',
  vcc_allow_inline_c: 'off',
  // Log records up to 4 KB instead of 255 bytes, so that mirrored requests keep their cookies,
  // tokens and long URLs (the mirror replayer skips a request whose record was cut). Larger
  // values make varnishd flush its log buffer (vsl_buffer, 16 KB) more often.
  vsl_reclen: '4084',
  // HTTPRoute retry.attempts is accepted up to this (MAX_RETRY_ATTEMPTS in ir/limits.ts).
  max_retries: String(MAX_RETRY_ATTEMPTS),
};

/**
 * The work directory of every varnishd the data plane starts, under its own work dir. One
 * name for all of them, so the shared memory is always at `<workDir>/varnishd-live/varnish`:
 * a log reader started with `-n` on it (the gateway pod's varnishncsa sidecar, our own log
 * readers) follows varnishd across restarts by itself ("Log abandoned", "Log reacquired").
 * A symlink to per-start directories would not do: a running reader keeps the directory it
 * opened and never sees the link move. The name can be reused because a varnishd is started
 * only after the previous one has stopped (restart() awaits its stop).
 */
export const VARNISHD_DIR = 'varnishd-live';

/**
 * varnishd -p parameters: the gateway's own (GATEWAY_PARAMS) over the admin's. Ours win: the
 * generated VCL and the agent depend on them (retry counts the translator accepts, log record
 * length the log readers parse, no inline C, bodies passed through untouched, bounded regex
 * cost). An admin setting of one of them, or of a forbidden parameter, is left out and
 * returned in `ignored` for the owner to log.
 */
export function varnishdParams(admin: Readonly<Record<string, string>> = {}): { params: Record<string, string>; ignored: string[] } {
  const params: Record<string, string> = {};
  const ignored: string[] = [];
  for (const [name, value] of Object.entries(admin)) {
    if (name in GATEWAY_PARAMS || varnishdParamNameProblem(name) !== null || varnishdParamValueProblem(value) !== null) ignored.push(name);
    else params[name] = value;
  }
  return { params: { ...params, ...GATEWAY_PARAMS }, ignored };
}

/**
 * The feature parameter with HTTP/2 on (opt-in) or forced off: "+http2" / "-http2" is appended
 * to whatever feature flags the admin set, so that only the opt-in turns HTTP/2 on.
 */
export function withHttp2(params: Readonly<Record<string, string>>, on: boolean): Record<string, string> {
  const flag = on ? '+http2' : '-http2';
  return { ...params, feature: params.feature ? `${params.feature},${flag}` : flag };
}

/**
 * What the data plane needs of a compiled config: the VCLs to deploy, the listen sockets, and
 * the counts it logs. The pipeline's CompiledConfig is one; the data plane knows nothing else
 * about how it was made.
 */
export interface DataPlaneConfig {
  /** The main VCL (the whole config when unsharded); varnishd boots with it when unsharded. */
  vcl: string;
  /** Main VCL plus shard VCLs, as the reloader deploys them. */
  deploy: ShardedVcl;
  stats: CompileStats;
  /** varnishd listen sockets this config needs, in a stable order; `proxy` for the socket the
   *  TLS terminator forwards to (port 0: chosen when varnishd starts). */
  sockets: readonly { name: string; address: string; port: number; proxy?: boolean }[];
  /** HTTPS frontends and their PEM files; hitch runs while there are any. */
  tls?: { frontends: readonly HitchFrontend[]; pems: ReadonlyMap<string, Buffer>; caBundles?: ReadonlyMap<string, Buffer> };
  /** Backend TLS endpoints and their material; stunnel runs while there are any. */
  backendTls?: StunnelConfig;
}

/** What the owner shows about the data plane (standalone /status, the agent's logs). */
export interface DataPlaneState {
  ready: boolean;
  /** Number of configs that went live. */
  generation: number;
  activeVcl?: string;
  lastReload?: Omit<ReloadResult, 'meta'>;
  listeners: VarnishListener[];
  stats?: CompileStats;
  /** Sockets of the live config that could not be bound (busy port), retried in the background. */
  unavailableSockets?: { name: string; address: string; port: number; why: string }[];
  /** varnishd processes started so far (a restart is a new one). */
  varnishdStarts?: number;
}

/** Background re-probing of busy sockets: first after initialMs, doubling up to maxMs. */
export interface PortRetryOptions {
  initialMs?: number;
  maxMs?: number;
}

export interface DataPlaneOptions<C extends DataPlaneConfig = DataPlaneConfig> {
  /** Parent of the varnishd work directory (VARNISHD_DIR, reused by every varnishd started). */
  workDir: string;
  logger: Logger;
  /** The admin's varnishd -p parameters; GATEWAY_PARAMS win over them (see varnishdParams). */
  params?: Record<string, string>;
  /**
   * The admin's extra varnishd options, option/value pairs that pass varnishdArgsProblems
   * (the constructor throws otherwise). `-p` pairs among them count as `params`.
   */
  extraArgs?: readonly string[];
  /** Size of the malloc storage in bytes (varnishd -s malloc,BYTES); default Varnishd's. */
  storageBytes?: number;
  /** The owner's state object, updated in place. */
  state: DataPlaneState;
  /** A config went live (also with no listeners: then varnishd is null). */
  onLive?: (config: C, varnishd: Varnishd | null) => void;
  /** An attempt to make a config live ended (not called for superseded ones). */
  onReload?: (ok: boolean, seconds: number) => void;
  /** A varnishd was started (its supervisor events can be followed from here). */
  onVarnishd?: (varnishd: Varnishd) => void;
  /** The TLS terminator applied a config: started, restarted, reloaded or unchanged. */
  onTls?: (result: HitchApplyResult) => void;
  /**
   * A busy socket was found free again. Default: the last config is applied again here; an
   * owner that re-translates (status follows the sockets) applies a new config instead.
   */
  onSocketsFreed?: () => void;
  portRetry?: PortRetryOptions;
  /**
   * Serve HTTP/2: varnishd with feature=+http2 and the TLS terminator offering h2 in ALPN.
   * Off by default: varnishd 7.1.1 as packaged lacks the HTTP/2 "Rapid Reset" fix (VSV00013,
   * CVE-2023-44487). Without it, an admin's feature parameter cannot turn HTTP/2 on either.
   */
  http2?: boolean;
}

export class DataPlane<C extends DataPlaneConfig = DataPlaneConfig> {
  private readonly opts: DataPlaneOptions<C>;
  private readonly log: Logger;
  private varnishd: Varnishd | null = null;
  private reloader: VclReloader | null = null;
  private listeners: VarnishListener[] = [];
  private liveDeploy: ShardedVcl | null = null;
  private liveConfig: C | null = null;
  private starts = 0;
  /** apply() runs one at a time: the port retry applies too. */
  private queue: Promise<void> = Promise.resolve();
  private lastRequested: C | null = null;
  private busy: VarnishListener[] = [];
  private retryTimer: NodeJS.Timeout | null = null;
  private retryDelayMs = 0;
  private stopped = false;
  private readonly varnishdParams: Record<string, string>;
  private readonly varnishdArgs: string[];
  private hitch: Hitch | null = null;
  /** apply() calls so far. */
  private applies = 0;
  /** A prestart() under way (see probe()). */
  private prestarting: Promise<void> | null = null;
  private stunnel: Stunnel | null = null;

  constructor(opts: DataPlaneOptions<C>) {
    this.opts = opts;
    this.log = opts.logger.child({ component: 'data-plane' });
    const extra = opts.extraArgs ?? [];
    const problems = varnishdArgsProblems(extra);
    if (problems.length) throw new Error(`varnishd options refused: ${problems.map(([i, m]) => `argument ${i}: ${m}`).join('; ')}`);
    if (opts.storageBytes !== undefined) {
      const problem = storageBytesProblem(opts.storageBytes);
      if (problem) throw new Error(problem);
    }
    const split = splitVarnishdArgs([], extra);
    const { params, ignored } = varnishdParams({ ...opts.params, ...split.params });
    if (ignored.length) this.log.warn({ event: 'varnishd-params-ignored', params: ignored }, 'varnishd parameters the gateway sets itself or does not allow are left out');
    this.varnishdParams = withHttp2(params, opts.http2 === true);
    this.varnishdArgs = split.args;
    if (opts.http2) {
      this.log.warn(
        { event: 'http2-enabled' },
        'HTTP/2 is enabled: varnishd 7.1.1 lacks the HTTP/2 Rapid Reset fix (VSV00013, CVE-2023-44487); a client can make it work hard with little traffic',
      );
    }
  }

  /** varnishd processes started so far. */
  get varnishdStarts(): number {
    return this.starts;
  }

  /**
   * Which of `sockets` cannot be bound now, keyed by socketKey. Sockets the running varnishd
   * already holds are not probed (they are in use, by us).
   */
  async probe(sockets: readonly { address: string; port: number }[]): Promise<UnavailableSockets> {
    // A varnishd starting early is binding its sockets: they are ours once it runs.
    if (this.prestarting) await this.prestarting;
    // hitch's frontends are ours too: a probe of an HTTPS port it serves must not find it busy.
    const held = [...(this.varnishd ? this.listeners : []), ...(this.hitch?.listening ?? [])];
    const toProbe = sockets.filter((s) => !held.some((h) => h.address === s.address && h.port === s.port));
    return probeSockets(toProbe, (s) => socketKey(s.address, s.port));
  }

  get varnish(): Varnishd | null {
    return this.varnishd;
  }

  get live(): C | null {
    return this.liveConfig;
  }

  /** The -p parameters every varnishd gets. */
  get params(): Record<string, string> {
    return { ...this.varnishdParams };
  }

  /**
   * Makes `config` live. Resolves when it is live or when nothing changed; throws with a
   * message for the owner to report when it could not be made live (the previous config keeps
   * serving in every case).
   */
  apply(config: C, leftOut: readonly { address: string; port: number }[] = []): Promise<void> {
    this.applies++;
    const run = this.queue.then(() => this.applyNow(config, leftOut));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Loads `config`'s VCL into the running varnishd and never restarts it: the listen sockets
   * stay as they are whatever the config names, so no open connection is cut. For the VCL a
   * draining data plane ends with. Nothing happens without a running varnishd; throws as
   * apply() does when the VCL does not go live (the previous one keeps serving).
   */
  reloadVcl(config: C): Promise<void> {
    const run = this.queue.then(async () => {
      if (this.stopped || !this.varnishd || !this.reloader) return;
      if (sameDeploy(this.liveDeploy, config.deploy)) return;
      // A port retry firing later re-applies this one, not the config it replaces.
      this.lastRequested = config;
      this.record(await this.reloader.submit(deployable(config.deploy)), config);
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Starts varnishd on `sockets` before the first config is made (it answers 503 "Starting"
   * until then), so that its start overlaps the work of making that config. The first apply()
   * uses it when it wants the same sockets and restarts it otherwise. Nothing happens once a
   * varnishd runs, or when a socket is busy (apply() deals with those); a failed start is
   * logged, and apply() starts varnishd as usual.
   */
  prestart(sockets: DataPlaneConfig['sockets']): Promise<void> {
    // Only ahead of the first apply: one queued before would wait on this in probe().
    if (this.applies > 0) return Promise.resolve();
    const run = this.queue.then(async () => {
      if (this.stopped || this.varnishd || this.liveConfig || sockets.length === 0) return;
      const listeners: VarnishListener[] = sockets.map((s) => ({ name: s.name, address: s.address, port: s.port, ...(s.proxy ? { proxy: true } : {}) }));
      if ((await probeSockets(listeners, (s) => socketKey(s.address, s.port))).size > 0 || this.stopped) return;
      try {
        await this.launch(listeners, BOOT_VCL);
      } catch (err) {
        this.log.warn({ event: 'varnishd-prestart-failed', err: (err as Error).message }, 'varnishd could not start early; it starts with the first config');
        return;
      }
      this.log.info({ event: 'varnishd-prestarted', listeners: listeners.map((l) => `${l.name}=${l.address}:${l.port}`) }, 'varnishd started while the first config is made');
    });
    const done = run.catch(() => undefined);
    this.queue = done;
    this.prestarting = done;
    void done.then(() => {
      if (this.prestarting === done) this.prestarting = null;
    });
    return run;
  }

  private async applyNow(config: C, leftOut: readonly { address: string; port: number }[]): Promise<void> {
    // The backend TLS proxy first: the VCL about to go live sends requests to its ports.
    if (!this.stopped && (config.backendTls?.services.length || this.stunnel)) {
      this.stunnel ??= new Stunnel({ workDir: join(this.opts.workDir, 'backend-tls'), logger: this.opts.logger });
      await this.stunnel.apply(config.backendTls ?? { services: [], pems: new Map() });
    }
    await this.applyVarnishd(config, leftOut);
    if (!this.stopped) await this.applyTls(config);
  }

  /**
   * Runs hitch for the config's HTTPS frontends, in front of the running varnishd's PROXY
   * socket: a certificate change is a hitch reload, a frontend change a hitch restart.
   */
  private async applyTls(config: C): Promise<void> {
    const frontends = config.tls?.frontends ?? [];
    const proxy = this.listeners.find((l) => l.proxy);
    if (frontends.length === 0 || !this.varnishd || !proxy) {
      if (this.hitch) this.log.info({ event: 'hitch-stop' }, 'no HTTPS listener: TLS terminator stopped');
      await this.hitch?.stop();
      return;
    }
    const bound = (await this.varnishd.listenAddresses()).find((a) => a.name === proxy.name);
    if (!bound) throw new Error(`varnishd does not report its ${proxy.name} socket`);
    this.hitch ??= new Hitch({ workDir: join(this.opts.workDir, 'tls'), logger: this.opts.logger, http2: this.opts.http2 === true });
    const result = await this.hitch.apply({ frontends, pems: config.tls?.pems ?? new Map(), caBundles: config.tls?.caBundles ?? new Map(), backend: { address: bound.address, port: bound.port } });
    this.opts.onTls?.(result);
  }

  private async applyVarnishd(config: C, leftOut: readonly { address: string; port: number }[]): Promise<void> {
    if (this.stopped) return;
    this.lastRequested = config;
    const wanted: VarnishListener[] = config.sockets.map((s) => ({ name: s.name, address: s.address, port: s.port, ...(s.proxy ? { proxy: true } : {}) }));
    // A socket another process holds is left out (and retried) rather than failing the whole
    // restart: the other listeners keep serving and unrelated changes stay a VCL reload.
    // `leftOut`: sockets the owner already left out of the config as busy, probed again here.
    const extra = leftOut.map((s) => ({ name: '', address: s.address, port: s.port }));
    const busy = await this.probe([...wanted, ...extra]);
    this.noteBusy([...wanted, ...extra].filter((l) => busy.has(socketKey(l.address, l.port))), busy);
    const listeners = wanted.filter((l) => !busy.has(socketKey(l.address, l.port)));
    if (!sameListeners(listeners, this.listeners) || !this.varnishd) {
      const previous = this.liveConfig;
      const previousListeners = this.listeners;
      try {
        await this.restart(listeners, config);
      } catch (err) {
        // The new listeners could not be bound (say, a port taken between probe and bind):
        // serve the last good config again rather than nothing, and report why the new one
        // is not live.
        if (previous && previous !== config && previousListeners.length) {
          await this.restart(previousListeners.map((l) => ({ ...l })), previous).catch(() => undefined);
        }
        throw err;
      }
      return;
    }
    // Same VCL as the one serving: nothing to reload.
    if (sameDeploy(this.liveDeploy, config.deploy)) return;
    const result = await (this.reloader as VclReloader).submit(deployable(config.deploy));
    this.record(result, config);
  }

  private async restart(listeners: VarnishListener[], config: C): Promise<void> {
    const previous = this.varnishd;
    if (previous) {
      this.log.info({ event: 'varnishd-restart', listeners }, 'listeners changed, restarting varnishd');
      await previous.stop();
      this.varnishd = null;
      this.reloader = null;
    }
    this.listeners = listeners;
    this.opts.state.listeners = listeners;
    this.opts.state.varnishdStarts = this.starts + (listeners.length ? 1 : 0);
    if (listeners.length === 0) {
      this.liveDeploy = config.deploy;
      this.markLive(config, undefined);
      this.log.info({ event: 'no-listeners' }, 'no accepted Gateway listener: nothing to serve');
      return;
    }
    // A sharded config boots with a placeholder: its labels must exist before its main VCL.
    const sharded = config.deploy.shards.length > 0;
    const startedAt = performance.now();
    let varnishd: Varnishd;
    try {
      varnishd = await this.launch(listeners, sharded ? BOOT_VCL : config.vcl);
    } catch (err) {
      this.opts.onReload?.(false, (performance.now() - startedAt) / 1000);
      throw err;
    }
    if (sharded) {
      const result = await (this.reloader as VclReloader).submit(deployable(config.deploy));
      this.record(result, config);
      if (result.status !== 'active') return;
    } else {
      this.opts.onReload?.(true, (performance.now() - startedAt) / 1000);
      varnishd.setLastGoodVcl(config.vcl);
      this.liveDeploy = config.deploy;
      this.markLive(config, 'boot');
    }
    this.log.info({ event: 'varnishd-started', listeners: listeners.map((l) => `${l.name}=${l.address}:${l.port}`) }, 'serving');
  }

  /** Starts a varnishd on `listeners` booting `vcl`, and makes it the one that serves. */
  private async launch(listeners: VarnishListener[], vcl: string): Promise<Varnishd> {
    this.listeners = listeners;
    this.opts.state.listeners = listeners;
    this.opts.state.varnishdStarts = this.starts + 1;
    this.starts++;
    const varnishd = new Varnishd({
      listeners,
      workDir: join(this.opts.workDir, VARNISHD_DIR),
      vcl,
      params: this.params,
      extraArgs: this.varnishdArgs,
      ...(this.opts.storageBytes !== undefined ? { storage: `malloc,${this.opts.storageBytes}` } : {}),
      logger: this.opts.logger,
    });
    try {
      await varnishd.start();
    } catch (err) {
      await varnishd.stop().catch(() => undefined);
      this.listeners = [];
      throw new Error(`varnishd could not start: ${(err as Error).message}`);
    }
    this.varnishd = varnishd;
    this.opts.onVarnishd?.(varnishd);
    this.reloader = new VclReloader(varnishd, { logger: this.opts.logger });
    return varnishd;
  }

  private record(result: ReloadResult, config: C): void {
    const { meta: _meta, ...summary } = result;
    this.opts.state.lastReload = summary;
    if (result.status !== 'superseded') this.opts.onReload?.(result.status === 'active', (result.totalMs ?? 0) / 1000);
    if (result.status === 'active') {
      this.liveDeploy = config.deploy;
      this.markLive(config, result.name);
      this.log.info(
        { event: 'vcl-active', vcl: result.name, compiled: result.compiled, shards: config.deploy.shards.length, compileMs: result.compileMs, totalMs: result.totalMs, ...config.stats },
        'config is live',
      );
    } else if (result.status === 'failed') {
      throw new Error(`VCL compile failed, last good config keeps serving: ${result.error ?? 'unknown error'}`);
    }
  }

  private markLive(config: C, vclName: string | undefined): void {
    const s = this.opts.state;
    this.liveConfig = config;
    s.generation++;
    s.ready = true;
    s.activeVcl = vclName;
    s.stats = config.stats;
    this.opts.onLive?.(config, this.varnishd);
  }

  /** Records the busy sockets, logs the ones new since last time and keeps the retry going. */
  private noteBusy(busy: VarnishListener[], why: UnavailableSockets): void {
    const before = new Set(this.busy.map((l) => socketKey(l.address, l.port)));
    const changed = busy.length !== before.size || busy.some((l) => !before.has(socketKey(l.address, l.port)));
    for (const l of busy) {
      const key = socketKey(l.address, l.port);
      if (!before.has(key)) this.log.warn({ event: 'socket-unavailable', socket: key, why: why.get(key) }, 'cannot bind a listen socket; left out and retried');
    }
    for (const key of before) {
      if (!busy.some((l) => socketKey(l.address, l.port) === key)) this.log.info({ event: 'socket-available', socket: key }, 'listen socket can be bound again');
    }
    this.busy = busy;
    this.opts.state.unavailableSockets = busy.map((l) => ({ ...l, why: why.get(socketKey(l.address, l.port)) ?? '' }));
    if (busy.length === 0) {
      if (this.retryTimer) clearTimeout(this.retryTimer);
      this.retryTimer = null;
      return;
    }
    if (changed) this.retryDelayMs = this.opts.portRetry?.initialMs ?? 1000;
    if (!this.retryTimer) this.scheduleRetry();
  }

  private scheduleRetry(): void {
    const delay = this.retryDelayMs;
    this.retryDelayMs = Math.min(this.opts.portRetry?.maxMs ?? 5000, delay * 2);
    this.retryTimer = setTimeout(() => void this.retry(), delay);
    this.retryTimer.unref();
  }

  /** Probes the busy sockets; when one is free, the config is applied again (once). */
  private async retry(): Promise<void> {
    if (this.stopped) return;
    const free = (await probeSockets(this.busy, (s) => socketKey(s.address, s.port))).size < this.busy.length;
    this.retryTimer = null;
    if (this.stopped) return;
    if (!free) {
      this.scheduleRetry();
      return;
    }
    this.log.info({ event: 'socket-freed' }, 'a busy listen socket is free: applying again');
    if (this.opts.onSocketsFreed) {
      this.opts.onSocketsFreed();
    } else if (this.lastRequested) {
      await this.apply(this.lastRequested).catch((err: unknown) => this.log.error({ event: 'apply-failed', err: String(err) }, 'applying after a freed socket failed'));
    }
    // Still busy after that (taken again, or the owner did not apply yet): keep probing.
    if (this.busy.length && !this.retryTimer && !this.stopped) this.scheduleRetry();
  }

  /**
   * The first step of stop(), for an owner that waits for its own applies before calling it:
   * no new work, and a VCL set being deployed stops after the VCL being compiled.
   */
  interrupt(): void {
    this.stopped = true;
    this.reloader?.close();
  }

  async stop(): Promise<void> {
    this.interrupt();
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    await this.queue;
    // The terminator first: it forwards to varnishd.
    await this.hitch?.stop();
    this.hitch = null;
    await this.varnishd?.stop();
    this.varnishd = null;
    this.reloader = null;
    await this.stunnel?.stop();
    this.stunnel = null;
  }
}

const BOOT_VCL = `vcl 4.1;
backend vgw_none none;
sub vcl_recv { return (synth(503, "Starting")); }
`;

function sameListeners(a: VarnishListener[], b: VarnishListener[]): boolean {
  return a.length === b.length && a.every((l, i) => l.name === b[i].name && l.address === b[i].address && l.port === b[i].port && !l.proxy === !b[i].proxy);
}
