// A DataPlane with everything that watches it: reload and config metrics, the varnishstat
// collector behind the varnish_* metrics, supervisor events (child restarts), and the
// shared-memory log readers (mirrors, filter counts). Standalone mode and the in-pod agent
// serve the same way, so they are observed the same way.
import type { EndpointMap, RoutingIR } from '../ir/types.ts';
import { LogConsumers } from '../metrics/log-consumers.ts';
import { countEndpoints, observeLive, observeReload, observeVarnishdEvent, type GatewayMetrics } from '../metrics/registry.ts';
import { registerVarnishMetrics } from '../metrics/varnish.ts';
import type { UnavailableSockets } from '../varnish/ports.ts';
import { StatsCollector } from '../varnish/stats.ts';
import type { Varnishd } from '../varnish/varnishd.ts';
import { DataPlane, varnishdParams, type DataPlaneConfig, type DataPlaneOptions } from './data-plane.ts';

/**
 * What the observers need of a config beyond what the data plane deploys: the routing IR (the
 * log readers follow its mirrors and filters) and the endpoints it was compiled with. The
 * pipeline's CompiledConfig is one.
 */
export interface ObservedConfig extends DataPlaneConfig {
  ir: RoutingIR;
  endpoints: EndpointMap;
}

/** DataPlane's own options (see DataPlaneOptions), plus what the observation needs. */
export interface ObservedDataPlaneOptions
  extends Pick<DataPlaneOptions<ObservedConfig>, 'workDir' | 'logger' | 'params' | 'extraArgs' | 'storageBytes' | 'state' | 'onSocketsFreed' | 'portRetry' | 'http2'> {
  metrics: GatewayMetrics;
  /** varnishstat poll interval for the varnish_* metrics; default 1000 ms. */
  statsIntervalMs?: number;
}

export class ObservedDataPlane {
  readonly dataPlane: DataPlane<ObservedConfig>;
  readonly logConsumers: LogConsumers;
  private stats: StatsCollector | null = null;

  constructor(opts: ObservedDataPlaneOptions) {
    const { metrics, logger } = opts;
    // The gateway's vsl_reclen always wins over an admin setting (varnishdParams).
    const recLen = Number(varnishdParams(opts.params).params.vsl_reclen ?? 255);
    this.logConsumers = new LogConsumers({ metrics, logger, recLen });
    registerVarnishMetrics(metrics.registry, () => this.stats?.latest ?? null);
    this.dataPlane = new DataPlane<ObservedConfig>({
      workDir: opts.workDir,
      logger,
      params: opts.params,
      extraArgs: opts.extraArgs,
      storageBytes: opts.storageBytes,
      state: opts.state,
      onSocketsFreed: opts.onSocketsFreed,
      portRetry: opts.portRetry,
      http2: opts.http2,
      onReload: (ok, seconds) => observeReload(metrics, ok, seconds),
      onTls: (result) => {
        if (result === 'reloaded') metrics.hitchReloads.inc();
        else if (result === 'restarted') metrics.hitchRestarts.inc();
      },
      onLive: (config, varnishd) => {
        observeLive(metrics, config.stats.routes);
        metrics.endpoints.set(countEndpoints(config.endpoints));
        const instanceDir = varnishd?.instanceDir;
        this.logConsumers.update(instanceDir ? { instanceDir, ir: config.ir, endpoints: config.endpoints } : null);
      },
      onVarnishd: (varnishd) => {
        varnishd.on('event', (ev) => observeVarnishdEvent(metrics, ev));
        // A new varnishd (listeners changed) has a new -n directory: a collector of its own.
        void this.stats?.stop();
        this.stats = StatsCollector.forVarnishd(varnishd, { logger });
        this.stats.on('poll-failed', () => metrics.statsPollFailures.inc());
        this.stats.start(opts.statsIntervalMs ?? 1000);
      },
    });
  }

  get varnish(): Varnishd | null {
    return this.dataPlane.varnish;
  }

  /** Counters of the running varnishd; the varnish_* metrics read its `latest`. */
  get statsCollector(): StatsCollector | null {
    return this.stats;
  }

  apply(config: ObservedConfig, leftOut?: readonly { address: string; port: number }[]): Promise<void> {
    return this.dataPlane.apply(config, leftOut);
  }

  /** See DataPlane.prestart. */
  prestart(sockets: ObservedConfig['sockets']): Promise<void> {
    return this.dataPlane.prestart(sockets);
  }

  /** See DataPlane.reloadVcl. */
  reloadVcl(config: ObservedConfig): Promise<void> {
    return this.dataPlane.reloadVcl(config);
  }

  /** The config serving now (null before the first one). */
  get live(): ObservedConfig | null {
    return this.dataPlane.live;
  }

  /** Which of `sockets` cannot be bound now (see DataPlane.probe). */
  probe(sockets: readonly { address: string; port: number }[]): Promise<UnavailableSockets> {
    return this.dataPlane.probe(sockets);
  }

  /** See DataPlane.interrupt. */
  interrupt(): void {
    this.dataPlane.interrupt();
  }

  async stop(): Promise<void> {
    await this.logConsumers.stop();
    await this.stats?.stop();
    this.stats = null;
    await this.dataPlane.stop();
  }
}
