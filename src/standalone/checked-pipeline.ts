// The pipeline `vgw serve` runs for each snapshot, with the two guards that keep one route from
// stopping everyone: regexes are compiled by PCRE2 before the config is built (a refused one
// rejects its route only), and if the VCL still does not compile when applied, the routes that
// break it are found with varnishd -C, rejected, and the rest applied. Those routes are
// remembered per version, so later applies leave them out without searching again.
import type { Logger } from 'pino';
import type { PreviousStatuses } from '../gatewayapi/status.ts';
import { TranslationMemo } from '../gatewayapi/translation-memo.ts';
import type { ResourceSnapshot } from '../gatewayapi/types.ts';
import { compileConfig, renderChecked, type CompileHook, type RenderedConfig } from '../pipeline/render.ts';
import { CompileCulprits, isolateCompileFailure } from '../pipeline/compile-isolation.ts';
import { RegexChecker } from '../varnish/regex-check.ts';
import { TlsProxyPorts } from '../runtime/tls-proxy-ports.ts';
import { backendTlsMaterial, tlsProxyTargets } from '../pipeline/backend-tls-proxy.ts';
import { vccCheck, VccUnavailableError, type VccResult } from '../varnish/vcc-check.ts';
import type { ShardCache } from '../vcl/shards.ts';

/** Isolation rounds per apply: each round finds up to MAX_CULPRITS routes. */
const MAX_ISOLATION_ROUNDS = 3;

export interface CheckedPipelineOptions {
  defaultAddress: string;
  shards?: number;
  shardCache?: ShardCache;
  logger: Logger;
  /** varnishd binary for the -C checks; default "varnishd". */
  varnishdPath?: string;
  /** Test seam: see CompileHook. */
  compileHook?: CompileHook;
  /** Normalise request paths before routing (default 'On'). */
  pathNormalization?: 'On' | 'Off';
  /** Listen sockets that cannot be bound now; read at each render (owned by the caller). */
  unavailableSockets?: ReadonlyMap<string, string>;
  /** The statuses last reported, read at each render (owned by the caller; see RenderOptions.previous). */
  previousStatuses?: () => PreviousStatuses | undefined;
  /** A shard cap, read at each render (see RenderOptions.maxShards). */
  maxShards?: () => number | undefined;
}

export class CheckedPipeline {
  private readonly opts: CheckedPipelineOptions;
  private readonly log: Logger;
  private readonly checker: RegexChecker;
  private readonly culprits = new CompileCulprits();
  private readonly vcc: (vcl: string) => Promise<VccResult>;
  private readonly tlsProxyPorts = new TlsProxyPorts();
  /** The last translation's work, so that a route change does not translate everything again. */
  private readonly translationMemo = new TranslationMemo();

  constructor(opts: CheckedPipelineOptions) {
    this.opts = opts;
    this.log = opts.logger.child({ component: 'pipeline' });
    this.checker = new RegexChecker({ varnishdPath: opts.varnishdPath, logger: this.log });
    this.vcc = (vcl) => vccCheck(vcl, { varnishdPath: opts.varnishdPath });
  }

  async render(snapshot: ResourceSnapshot): Promise<RenderedConfig> {
    this.culprits.prune(snapshot.httpRoutes);
    const { defaultAddress, shards, shardCache, compileHook, unavailableSockets, pathNormalization } = this.opts;
    const previous = this.opts.previousStatuses?.();
    const maxShards = this.opts.maxShards?.();
    const once = () =>
      renderChecked(
        snapshot,
        { defaultAddress, shards, maxShards, shardCache, compileHook, unavailableSockets, pathNormalization, previous, rejectedRoutes: this.culprits.rejected, tlsProxyPorts: this.tlsProxyPorts.map, translationMemo: this.translationMemo },
        this.checker,
      );
    const config = await once();
    // TLS endpoints get their proxy ports once the translation names them; a render that met
    // new ones is done again with their ports.
    const targets = tlsProxyTargets(config.ir, config.endpoints, backendTlsMaterial(snapshot.configMaps, snapshot.secrets));
    const fresh = this.tlsProxyPorts.needsAssign(targets);
    await this.tlsProxyPorts.assign(targets);
    return fresh ? once() : config;
  }

  /**
   * Applies `config`; when that fails because its VCL does not compile, rejects the routes
   * responsible and applies the rest. `onRendered` sees every config built on the way.
   * Throws the apply error when the failure is not attributable to routes.
   */
  async apply(
    snapshot: ResourceSnapshot,
    first: RenderedConfig,
    apply: (config: RenderedConfig) => Promise<void>,
    onRendered: (config: RenderedConfig) => void,
  ): Promise<RenderedConfig> {
    let config = first;
    for (let round = 0; ; round++) {
      try {
        await apply(config);
        return config;
      } catch (err) {
        if (round >= MAX_ISOLATION_ROUNDS || !(await this.isolate(snapshot, config))) throw err;
      }
      config = await this.render(snapshot);
      onRendered(config);
    }
  }

  /** True when culprit routes were found (and remembered). */
  private async isolate(snapshot: ResourceSnapshot, config: RenderedConfig): Promise<boolean> {
    const { compileHook } = this.opts;
    let result;
    try {
      result = await isolateCompileFailure(config.ir, {
        compile: (ir) => compileConfig(ir, config.endpoints, { shards: 1, compileHook }).vcl,
        check: this.vcc,
      });
    } catch (err) {
      if (!(err instanceof VccUnavailableError)) throw err;
      this.log.error({ event: 'compile-isolation-unavailable' }, err.message);
      return false;
    }
    if (!result) return false;
    if (result.unattributed !== undefined) {
      this.log.error({ event: 'compile-failure-unattributed', checks: result.checks }, `the configuration does not compile even without routes: ${result.unattributed}`);
    }
    const routes = new Map(snapshot.httpRoutes.map((r) => [`${r.metadata.namespace ?? ''}/${r.metadata.name}`, r]));
    let found = false;
    for (const c of result.culprits) {
      const route = routes.get(c.route);
      if (!route) continue;
      this.culprits.add(route, c.message);
      found = true;
      const [namespace, name] = c.route.split('/');
      this.log.warn({ event: 'route-breaks-vcl', namespace, name, checks: result.checks }, `rejected: its generated VCL does not compile: ${c.message}`);
    }
    return found;
  }
}
