// Standalone mode: a directory of manifests drives the same pipeline a cluster would, and one
// varnishd serves it. Changes in the directory go live without a restart; a change that cannot
// be read or compiled is reported and the last good config keeps serving.
import { createHash } from 'node:crypto';
import { chmod, lstat, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Logger } from 'pino';
import { indexStatuses, ofKind, type GatewayObjectStatus, type ObjectStatus, type PreviousStatuses } from '../gatewayapi/status.ts';
import { formatProblem, type Problem } from '../gatewayapi/translator.ts';
import type { LogConsumers } from '../metrics/log-consumers.ts';
import { createGatewayMetrics, type GatewayMetrics } from '../metrics/registry.ts';
import type { CompileHook, RenderedConfig } from '../pipeline/render.ts';
import { formatManifestError, ManifestLoader, ManifestLoadError, type ManifestError } from '../providers/file/load.ts';
import { watchDirectory, type DirectoryChanges, type DirectoryWatch } from '../providers/file/watch.ts';
import { ConfigApplier } from '../runtime/config-applier.ts';
import type { DataPlaneState, PortRetryOptions } from '../runtime/data-plane.ts';
import { ObservedDataPlane } from '../runtime/observed-data-plane.ts';
import { claimWorkDir, releaseWorkDir } from '../varnish/lifeline.ts';
import type { StatsCollector } from '../varnish/stats.ts';
import type { Varnishd } from '../varnish/varnishd.ts';
import type { ShardCache } from '../vcl/shards.ts';
import type { SettleOptions } from '../util/coalesce.ts';
import { CheckedPipeline } from './checked-pipeline.ts';
import { CoarseStart } from './coarse-start.ts';
import { earlySockets } from './early-start.ts';
import type { ResourceSnapshot } from '../gatewayapi/types.ts';
import { shardCount } from '../vcl/shards.ts';
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
  /** How changes in the directory are batched into applies; default DEFAULT_SETTLE. */
  settle?: Partial<SettleOptions>;
  /** Test seam: changes the VCL of each config (to force a compile failure). */
  compileHook?: CompileHook;
  /** Normalise request paths before routing (default 'On'). */
  pathNormalization?: 'On' | 'Off';
  /** Re-probing of listen sockets another process holds; default every 1 s doubling to 5 s. */
  portRetry?: PortRetryOptions;
  /** Serve HTTP/2 on HTTPS listeners (opt-in; see DataPlaneOptions.http2). */
  http2?: boolean;
  /** Shard VCLs of the first config, at most, before the split to the normal count; default START_SHARDS. */
  startShards?: number;
}

export interface StandaloneStatus extends DataPlaneState {
  lastError?: { at: string; message: string };
  problems: Problem[];
  /** Times the directory was loaded (one load per apply, none while nothing changes). */
  applies?: number;
  /** Status of every Gateway we own, as `vgw check` prints it (listener conditions included). */
  gateways?: GatewayObjectStatus[];
  /** Shard VCLs of the live config (0: one VCL), and whether the start-up split to the normal count is still to go live. */
  shardVcls?: number;
  startSplitPending?: boolean;
}

export class StandaloneServer {
  private readonly opts: StandaloneOptions;
  private readonly log: Logger;
  private dataPlane: ObservedDataPlane | null = null;
  private watch: DirectoryWatch | null = null;
  // One author's unreadable file keeps its last good content; the others' changes go on.
  // A large first load starts varnishd on the Gateways' sockets while the routes are parsed.
  private readonly loader = new ManifestLoader({ keepLastGood: true, onGateways: (partial) => this.startEarly(partial) });
  private warnings = new Set<string>();
  private readonly shardCache: ShardCache = new Map();
  private workDir = '';
  private ownsWorkDir = false;
  private claimedWorkDir = false;
  /** Listen sockets another process holds (socketKey -> why), fed to the translator. */
  private readonly unavailableSockets = new Map<string, string>();
  private readonly applier: ConfigApplier;
  private stopped = false;
  readonly state: StandaloneStatus = { ready: false, generation: 0, problems: [], listeners: [], applies: 0 };
  /** Changes not loaded yet; the first load, and any after lost events, reads everything. */
  private pending: DirectoryChanges = { files: new Set(), rescan: true };
  /** The last load was made live without an error. */
  private appliedClean = false;
  readonly metrics: GatewayMetrics;
  private readonly pipeline: CheckedPipeline;
  /** Every status of the config reported last, and its index for the next render. */
  private lastStatuses: readonly ObjectStatus[] = [];
  private previousStatuses: PreviousStatuses | undefined;
  private readonly coarseStart: CoarseStart;

  constructor(opts: StandaloneOptions) {
    this.opts = opts;
    this.log = opts.logger.child({ component: 'standalone' });
    this.coarseStart = new CoarseStart(opts.startShards);
    this.metrics = opts.metrics ?? createGatewayMetrics();
    this.applier = new ConfigApplier({ apply: () => this.applyOnce(), state: this.state, configErrors: this.metrics.configErrors, logger: this.log });
    this.pipeline = new CheckedPipeline({
      defaultAddress: opts.defaultAddress,
      shards: opts.shards,
      shardCache: this.shardCache,
      logger: opts.logger,
      compileHook: opts.compileHook,
      pathNormalization: opts.pathNormalization,
      unavailableSockets: this.unavailableSockets,
      // Conditions that did not change keep their lastTransitionTime across reloads.
      previousStatuses: () => this.previousStatuses,
      maxShards: () => this.coarseStart.cap,
    });
  }

  /** The status of every object we own (HTTPRoutes included), as last reported. */
  get statuses(): readonly ObjectStatus[] {
    return this.lastStatuses;
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
      this.workDir = await defaultWorkDir(this.opts.dir, this.opts.defaultAddress);
      this.ownsWorkDir = true;
    }
    // varnishd drops privileges to its own user, which must read the files written here.
    await chmod(this.workDir, 0o755);
    // Refuses a work dir another live control plane holds; stops what a dead one left running.
    await claimWorkDir(this.workDir, this.log);
    this.claimedWorkDir = true;
    this.dataPlane = new ObservedDataPlane({
      workDir: this.workDir,
      logger: this.opts.logger,
      params: this.opts.params,
      state: this.state,
      metrics: this.metrics,
      statsIntervalMs: this.opts.statsIntervalMs,
      // A freed port needs a new translation (listener status), not just the last config again.
      onSocketsFreed: () => void this.applier.run(),
      portRetry: this.opts.portRetry,
      http2: this.opts.http2,
    });
    this.watch = watchDirectory(this.opts.dir, (changes) => void this.changed(changes), this.log, { settle: this.opts.settle });
    await this.schedule();
  }

  /** Applies the directory's current content; overlapping calls collapse into one rerun. */
  schedule(): Promise<void> {
    this.pending.rescan = true;
    return this.applier.run();
  }

  /** Applies the files the watch named (re-reading only those); overlapping calls collapse. */
  private changed(changes: DirectoryChanges): Promise<void> {
    for (const f of changes.files) this.pending.files.add(f);
    if (changes.rescan) this.pending.rescan = true;
    return this.applier.run();
  }

  private async applyOnce(): Promise<void> {
    if (this.stopped || !this.dataPlane) return;
    let config;
    let snapshot;
    let fileErrors: ManifestError[] = [];
    try {
      const changes = this.pending;
      this.pending = { files: new Set(), rescan: false };
      this.state.applies = (this.state.applies ?? 0) + 1;
      const loaded = await this.loader.load(this.opts.dir, changes.rescan ? undefined : changes.files);
      // Events that changed nothing (an editor touching a file, a second event of one write):
      // rendering thousands of routes again would only find the same config.
      const upToDate = loaded.unchanged && this.appliedClean && this.unavailableSockets.size === 0 && !this.coarseStart.splitDue;
      this.appliedClean = false;
      if (upToDate) {
        this.appliedClean = true;
        return;
      }
      snapshot = loaded.snapshot;
      this.reportWarnings(loaded.warnings);
      fileErrors = loaded.fileErrors;
      config = await this.pipeline.render(snapshot);
      config = await this.settleSockets(snapshot, config);
    } catch (err) {
      if (err instanceof ManifestLoadError) {
        this.fail(`manifests rejected, last good config keeps serving:\n${err.message}`);
        return;
      }
      // The loader may have stopped half-way: the next load reads everything again.
      this.pending.rescan = true;
      throw err;
    }
    this.report(config);
    // A config whose VCL does not compile has the routes responsible rejected and the rest applied.
    const dataPlane = this.dataPlane;
    const live = await this.pipeline.apply(snapshot, config, (c) => dataPlane.apply(c, c.leftOutSockets), (c) => this.report(c));
    this.applier.accepted();
    this.appliedClean = true;
    this.splitIfCoarse(live);
    // Applied without them: shown until fixed, logged and counted once per distinct set.
    if (fileErrors.length) {
      const message = `files not applied, each keeps its last good content:\n${fileErrors.map(formatManifestError).join('\n')}`;
      if (message !== this.lastFileErrors) this.fail(message);
      else this.state.lastError = { at: this.lastFileErrorsAt, message };
    }
    this.lastFileErrors = fileErrors.length ? (this.state.lastError?.message ?? '') : '';
    this.lastFileErrorsAt = this.state.lastError?.at ?? '';
  }

  /** See early-start.ts: only before anything serves. */
  private startEarly(partial: ResourceSnapshot): void {
    if (!this.dataPlane || this.dataPlane.live || this.stopped) return;
    const sockets = earlySockets(partial, this.opts.defaultAddress);
    if (sockets.length) void this.dataPlane.prestart(sockets);
  }

  /**
   * After a coarse first config (see coarse-start.ts) went live, the split to the normal shard
   * count is applied at once, as its own apply after this one (start() does not wait for it).
   */
  private splitIfCoarse(live: RenderedConfig): void {
    const deployed = live.deploy.shards.length;
    const wanted = this.opts.shards ?? shardCount(live.ir);
    this.state.shardVcls = deployed;
    this.state.startSplitPending = this.coarseStart.live(deployed, wanted);
    if (!this.state.startSplitPending) return;
    this.log.info({ event: 'shard-split', from: deployed, to: wanted }, 'serving; splitting the start-up shard VCLs to the normal count');
    setImmediate(() => void this.applier.run());
  }

  /**
   * Probes the sockets the config wants (those left out as unavailable included, so that a
   * freed one comes back); when the set of unavailable ones changed, translates again with
   * it, so that listener status and sockets agree. One re-render at most per apply.
   */
  private async settleSockets(snapshot: Parameters<CheckedPipeline['render']>[0], config: RenderedConfig): Promise<RenderedConfig> {
    // HTTPS sockets are the TLS terminator's, not varnishd's: probed here too, so that a busy
    // one makes its listener PortUnavailable instead of failing the terminator's start.
    const tlsSockets = config.ir.sockets.filter((s) => s.tls).map(({ address, port }) => ({ address, port }));
    const busy = await this.dataPlane!.probe([...config.sockets, ...tlsSockets, ...config.leftOutSockets]);
    const same = busy.size === this.unavailableSockets.size && [...busy.keys()].every((k) => this.unavailableSockets.has(k));
    if (same) return config;
    this.unavailableSockets.clear();
    for (const [k, why] of busy) this.unavailableSockets.set(k, why);
    return this.pipeline.render(snapshot);
  }

  /** Skipped symlinks and FQDN EndpointSlices: logged when they appear, not on every reload. */
  private reportWarnings(warnings: ManifestError[]): void {
    const now = new Set(warnings.map(formatManifestError));
    for (const w of now) if (!this.warnings.has(w)) this.log.warn({ event: 'manifest-skipped' }, w);
    this.warnings = now;
  }

  private report(config: RenderedConfig): void {
    this.state.gateways = config.statuses.filter(ofKind('Gateway'));
    this.lastStatuses = config.statuses;
    this.previousStatuses = indexStatuses(config.statuses);
    // Each problem is logged when it appears, not again on every reload that still has it.
    const known = new Set(this.state.problems.map(formatProblem));
    for (const p of config.problems) {
      if (!known.has(formatProblem(p))) this.log.warn({ event: 'object-not-accepted', kind: p.kind, object: p.object }, p.message);
    }
    this.state.problems = config.problems;
  }

  /** The file errors reported last (see applyOnce), so an unchanged set is not logged again. */
  private lastFileErrors = '';
  private lastFileErrorsAt = '';

  private fail(message: string): void {
    this.applier.reject(message);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.metrics.draining.set(1);
    this.watch?.close();
    // An apply under way may be deploying dozens of shard VCLs (the split after start): it
    // stops after the one being compiled instead.
    this.dataPlane?.interrupt();
    await this.applier.stop();
    await this.dataPlane?.stop();
    if (!this.claimedWorkDir) return;
    await releaseWorkDir(this.workDir);
    if (this.ownsWorkDir) await rm(this.workDir, { recursive: true, force: true });
  }
}

/**
 * The work directory when none is given: one per user, manifest directory and default
 * address, under the system temp dir, so that the next run of the same command finds the pid
 * files a killed run left and stops its processes. It must be a real directory owned by us
 * (not a symlink another user planted).
 */
async function defaultWorkDir(manifestDir: string, address: string): Promise<string> {
  const dir = await realpath(manifestDir).catch(() => resolve(manifestDir));
  const hash = createHash('sha256').update(`${dir}\0${address}`).digest('hex').slice(0, 16);
  const path = join(tmpdir(), `vgw-${process.getuid?.() ?? 0}-${hash}`);
  await makeDir(path);
  const st = await lstat(path);
  if (!st.isDirectory() || st.isSymbolicLink() || (process.getuid && st.uid !== process.getuid())) {
    throw new Error(`${path} is not a directory of ours; pass --work-dir`);
  }
  return path;
}
