// Standalone mode: a directory of manifests drives the same pipeline a cluster would, and one
// varnishd serves it. Changes in the directory go live without a restart; a change that cannot
// be read or compiled is reported and the last good config keeps serving.
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { formatProblem, type Problem } from '../gatewayapi/translator.ts';
import type { LogConsumers } from '../metrics/log-consumers.ts';
import { ObservedDataPlane } from '../metrics/observed-data-plane.ts';
import { createGatewayMetrics, type GatewayMetrics } from '../metrics/registry.ts';
import { render } from '../pipeline/render.ts';
import { ManifestLoader, ManifestLoadError } from '../providers/file/load.ts';
import { watchDirectory, type DirectoryWatch } from '../providers/file/watch.ts';
import type { DataPlaneState } from '../varnish/data-plane.ts';
import type { StatsCollector } from '../varnish/stats.ts';
import type { Varnishd } from '../varnish/varnishd.ts';
import type { ShardCache } from '../vcl/shards.ts';
import { Coalescer } from '../util/coalesce.ts';
import { makeDir } from '../util/fs.ts';

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
  /** varnishstat poll interval for the varnish_* metrics; default 1000 ms. */
  statsIntervalMs?: number;
}

export interface StandaloneStatus extends DataPlaneState {
  lastError?: { at: string; message: string };
  problems: Problem[];
}

export class StandaloneServer {
  private readonly opts: StandaloneOptions;
  private readonly log: Logger;
  private dataPlane: ObservedDataPlane | null = null;
  private watch: DirectoryWatch | null = null;
  private readonly loader = new ManifestLoader();
  private readonly shardCache: ShardCache = new Map();
  private workDir = '';
  private ownsWorkDir = false;
  private readonly applier = new Coalescer(
    () => this.applyOnce(),
    (err) => this.fail(err instanceof Error ? err.message : String(err)),
  );
  private stopped = false;
  readonly state: StandaloneStatus = { ready: false, generation: 0, problems: [], listeners: [] };
  readonly metrics: GatewayMetrics;

  constructor(opts: StandaloneOptions) {
    this.opts = opts;
    this.log = opts.logger.child({ component: 'standalone' });
    this.metrics = opts.metrics ?? createGatewayMetrics();
  }

  /** The running varnishd, if any (for diagnostics and tests). */
  get varnish(): Varnishd | null {
    return this.dataPlane?.varnish ?? null;
  }

  /** Counters of the running varnishd; the varnish_* metrics read its `latest`. */
  get statsCollector(): StatsCollector | null {
    return this.dataPlane?.statsCollector ?? null;
  }

  /** Shared-memory log readers: request mirroring and filter metrics (docs/mirroring.md). */
  get logConsumers(): LogConsumers | null {
    return this.dataPlane?.logConsumers ?? null;
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
    this.dataPlane = new ObservedDataPlane({
      workDir: this.workDir,
      logger: this.opts.logger,
      params: this.opts.params,
      state: this.state,
      metrics: this.metrics,
      statsIntervalMs: this.opts.statsIntervalMs,
    });
    this.watch = watchDirectory(this.opts.dir, () => this.schedule(), this.log);
    await this.schedule();
  }

  /** Applies the directory's current content; overlapping calls collapse into one rerun. */
  schedule(): Promise<void> {
    return this.applier.run();
  }

  private async applyOnce(): Promise<void> {
    if (this.stopped || !this.dataPlane) return;
    let config;
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
    await this.dataPlane.apply(config);
    this.state.lastError = undefined;
  }

  private fail(message: string): void {
    this.state.lastError = { at: new Date().toISOString(), message };
    this.metrics.configErrors.inc();
    this.log.error({ event: 'config-rejected' }, message);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.metrics.draining.set(1);
    this.watch?.close();
    await this.applier.stop();
    await this.dataPlane?.stop();
    if (this.ownsWorkDir) await rm(this.workDir, { recursive: true, force: true });
  }
}
