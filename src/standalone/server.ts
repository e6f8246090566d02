// Standalone mode: a directory of manifests drives the same pipeline a cluster would, and one
// varnishd serves it. Changes in the directory go live without a restart; a change that cannot
// be read or compiled is reported and the last good config keeps serving.
import { chmod, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { MAX_RETRY_ATTEMPTS } from '../gatewayapi/rules.ts';
import { formatProblem, type Problem } from '../gatewayapi/translator.ts';
import { LogConsumers } from '../metrics/log-consumers.ts';
import { createGatewayMetrics, observeLive, observeReload, type GatewayMetrics } from '../metrics/registry.ts';
import { render, type RenderedConfig } from '../pipeline/render.ts';
import { ManifestLoader, ManifestLoadError } from '../providers/file/load.ts';
import { watchDirectory, type DirectoryWatch } from '../providers/file/watch.ts';
import { VclReloader, type ReloadResult } from '../varnish/reloader.ts';
import { Varnishd, type VarnishListener } from '../varnish/varnishd.ts';
import { deployable, sameDeploy, type ShardCache, type ShardedVcl } from '../vcl/shards.ts';

export interface StandaloneOptions {
  dir: string;
  defaultAddress: string;
  workDir?: string;
  logger: Logger;
  /** Extra varnishd -p parameters. */
  params?: Record<string, string>;
  /** Fixed shard VCL count (tests); default: chosen by route count. */
  shards?: number;
  /** Registry handles to record into; default: a new registry (see `metrics`). */
  metrics?: GatewayMetrics;
}

export interface StandaloneStatus {
  ready: boolean;
  /** Number of configs that went live. */
  generation: number;
  activeVcl?: string;
  lastReload?: Omit<ReloadResult, 'meta'>;
  lastError?: { at: string; message: string };
  problems: Problem[];
  listeners: VarnishListener[];
  stats?: RenderedConfig['stats'];
}

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
  // HTTPRoute retry.attempts is accepted up to this (MAX_RETRY_ATTEMPTS in gatewayapi/rules.ts).
  max_retries: String(MAX_RETRY_ATTEMPTS),
};

export class StandaloneServer {
  private readonly opts: StandaloneOptions;
  private readonly log: Logger;
  private varnishd: Varnishd | null = null;
  private reloader: VclReloader | null = null;
  private watch: DirectoryWatch | null = null;
  private readonly loader = new ManifestLoader();
  private readonly shardCache: ShardCache = new Map();
  private workDir = '';
  private ownsWorkDir = false;
  private listeners: VarnishListener[] = [];
  private liveDeploy: ShardedVcl | null = null;
  private liveConfig: RenderedConfig | null = null;
  private applying: Promise<void> | null = null;
  private again = false;
  private stopped = false;
  readonly state: StandaloneStatus = { ready: false, generation: 0, problems: [], listeners: [] };
  readonly metrics: GatewayMetrics;
  /** Shared-memory log readers: request mirroring and filter metrics (docs/mirroring.md). */
  readonly logConsumers: LogConsumers;

  constructor(opts: StandaloneOptions) {
    this.opts = opts;
    this.log = opts.logger.child({ component: 'standalone' });
    this.metrics = opts.metrics ?? createGatewayMetrics();
    const recLen = Number({ ...GATEWAY_PARAMS, ...opts.params }.vsl_reclen ?? 255);
    this.logConsumers = new LogConsumers({ metrics: this.metrics, logger: opts.logger, recLen });
  }

  /** The running varnishd, if any (for diagnostics and tests). */
  get varnish(): Varnishd | null {
    return this.varnishd;
  }

  async start(): Promise<void> {
    if (this.opts.workDir) {
      await makeDir(this.opts.workDir);
      this.workDir = this.opts.workDir;
    } else {
      this.workDir = await mkdtemp(join(tmpdir(), 'vgw-'));
      this.ownsWorkDir = true;
    }
    // varnishd drops privileges to its own user, which must read the files written here.
    await chmod(this.workDir, 0o755);
    this.watch = watchDirectory(this.opts.dir, () => this.schedule(), this.log);
    await this.schedule();
  }

  /** Applies the directory's current content; overlapping calls collapse into one rerun. */
  schedule(): Promise<void> {
    if (this.applying) {
      this.again = true;
      return this.applying;
    }
    this.applying = (async () => {
      do {
        this.again = false;
        await this.applyOnce().catch((err: unknown) => this.fail(err instanceof Error ? err.message : String(err)));
      } while (this.again && !this.stopped);
      this.applying = null;
    })();
    return this.applying;
  }

  private async applyOnce(): Promise<void> {
    if (this.stopped) return;
    let config: RenderedConfig;
    try {
      const { snapshot } = await this.loader.load(this.opts.dir);
      config = render(snapshot, { defaultAddress: this.opts.defaultAddress, shards: this.opts.shards, shardCache: this.shardCache });
    } catch (err) {
      if (err instanceof ManifestLoadError) {
        this.fail(`manifests rejected, last good config keeps serving:\n${err.message}`);
        return;
      }
      throw err;
    }
    // Each problem is logged when it appears, not again on every reload that still has it.
    const known = new Set(this.state.problems.map(formatProblem));
    for (const p of config.problems) {
      if (!known.has(formatProblem(p))) this.log.warn({ event: 'object-not-accepted', kind: p.kind, object: p.object }, p.message);
    }
    this.state.problems = config.problems;
    const listeners = config.sockets.map((s) => ({ name: s.name, address: s.address, port: s.port }));

    if (!sameListeners(listeners, this.listeners) || !this.varnishd) {
      const previous = this.liveConfig;
      try {
        await this.restartVarnish(listeners, config);
      } catch (err) {
        // The new listeners could not be bound (say, a port in use): serve the last good
        // config again rather than nothing, and report why the new one is not live.
        if (previous && previous !== config && previous.sockets.length) {
          await this.restartVarnish(previous.sockets.map((l) => ({ ...l })), previous).catch(() => undefined);
        }
        throw err;
      }
      return;
    }
    if (sameDeploy(this.liveDeploy, config.deploy)) {
      // Same VCL as the one serving: the directory is good again, nothing to reload.
      this.state.lastError = undefined;
      return;
    }
    const result = await (this.reloader as VclReloader).submit(deployable(config.deploy));
    this.recordReload(result, config);
  }

  /** Listen sockets are fixed per varnishd: a changed set needs a new one (its cache is lost). */
  private async restartVarnish(listeners: VarnishListener[], config: RenderedConfig): Promise<void> {
    const previous = this.varnishd;
    if (previous) {
      this.log.info({ event: 'varnishd-restart', listeners }, 'listeners changed, restarting varnishd');
      await previous.stop();
      this.varnishd = null;
      this.reloader = null;
    }
    this.listeners = listeners;
    this.state.listeners = listeners;
    if (listeners.length === 0) {
      this.liveDeploy = config.deploy;
      this.markLive(config, undefined);
      this.log.info({ event: 'no-listeners' }, 'no accepted Gateway listener: nothing to serve');
      return;
    }
    // A sharded config boots with a placeholder: its labels must exist before its main VCL.
    const sharded = config.deploy.shards.length > 0;
    const varnishd = new Varnishd({
      listeners,
      workDir: join(this.workDir, `varnishd-${this.state.generation}`),
      vcl: sharded ? BOOT_VCL : config.vcl,
      params: { ...GATEWAY_PARAMS, ...this.opts.params },
      logger: this.opts.logger,
    });
    const startedAt = performance.now();
    try {
      await varnishd.start();
    } catch (err) {
      await varnishd.stop().catch(() => undefined);
      this.listeners = [];
      observeReload(this.metrics, false, (performance.now() - startedAt) / 1000);
      throw new Error(`varnishd could not start: ${(err as Error).message}`);
    }
    this.varnishd = varnishd;
    this.reloader = new VclReloader(varnishd, { logger: this.opts.logger });
    if (sharded) {
      const result = await this.reloader.submit(deployable(config.deploy));
      this.recordReload(result, config);
      if (result.status !== 'active') return;
    } else {
      observeReload(this.metrics, true, (performance.now() - startedAt) / 1000);
      varnishd.setLastGoodVcl(config.vcl);
      this.liveDeploy = config.deploy;
      this.markLive(config, 'boot');
    }
    this.log.info({ event: 'varnishd-started', listeners: listeners.map((l) => `${l.name}=${l.address}:${l.port}`) }, 'serving');
  }

  private recordReload(result: ReloadResult, config: RenderedConfig): void {
    const { meta: _meta, ...summary } = result;
    this.state.lastReload = summary;
    if (result.status !== 'superseded') observeReload(this.metrics, result.status === 'active', (result.totalMs ?? 0) / 1000);
    if (result.status === 'active') {
      this.liveDeploy = config.deploy;
      this.markLive(config, result.name);
      this.log.info({ event: 'vcl-active', vcl: result.name, compiled: result.compiled, shards: config.deploy.shards.length, compileMs: result.compileMs, totalMs: result.totalMs, ...config.stats }, 'config is live');
    } else if (result.status === 'failed') {
      this.fail(`VCL compile failed, last good config keeps serving: ${result.error ?? 'unknown error'}`);
    }
  }

  private markLive(config: RenderedConfig, vclName: string | undefined): void {
    this.liveConfig = config;
    this.state.generation++;
    this.state.ready = true;
    this.state.activeVcl = vclName;
    this.state.stats = config.stats;
    this.state.lastError = undefined;
    observeLive(this.metrics, config.stats.routes);
    const instanceDir = this.varnishd?.instanceDir;
    this.logConsumers.update(instanceDir ? { instanceDir, ir: config.ir, endpoints: config.endpoints } : null);
  }

  private fail(message: string): void {
    this.state.lastError = { at: new Date().toISOString(), message };
    this.log.error({ event: 'config-rejected' }, message);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.watch?.close();
    await this.applying?.catch(() => undefined);
    await this.logConsumers.stop();
    await this.varnishd?.stop();
    this.varnishd = null;
    if (this.ownsWorkDir) await rm(this.workDir, { recursive: true, force: true });
  }
}

/**
 * mkdir -p without Node's recursive mode, which never returns for paths under /proc: create
 * the parents, then the directory itself, so an impossible path fails with its error.
 */
async function makeDir(path: string): Promise<void> {
  try {
    await mkdir(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return;
    if (code !== 'ENOENT' || dirname(path) === path) throw err;
    await makeDir(dirname(path));
    await mkdir(path).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'EEXIST') throw e;
    });
  }
}

const BOOT_VCL = `vcl 4.1;
backend vgw_none none;
sub vcl_recv { return (synth(503, "Starting")); }
`;

function sameListeners(a: VarnishListener[], b: VarnishListener[]): boolean {
  return a.length === b.length && a.every((l, i) => l.name === b[i].name && l.address === b[i].address && l.port === b[i].port);
}
