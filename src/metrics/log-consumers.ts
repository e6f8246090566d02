// Runs the shared-memory log readers that the live config needs, and nothing more:
//  - the mirror reader (`-g vxid`, costlier) only while some route mirrors, feeding the replayer;
//  - the records reader (`-g raw`, cheap) only while some route has filters, timeouts or
//    retries, feeding the filter/timeout/retry metrics.
// Call update() each time a config goes live (and with null when nothing is served); readers
// follow varnishd to a new -n directory when the server starts a new one.
import type { Logger } from 'pino';
import type { EndpointMap, RoutingIR } from '../ir/types.ts';
import { MirrorReplayer } from '../mirror/replayer.ts';
import { mirrorRequests } from '../mirror/requests.ts';
import { mirrorTransactionArgs, rawRecordArgs, VslReader, type VslReaderEvent } from '../varnish/vsl.ts';
import { EMPTY_LOG_CONFIG, logConfig, RecordMetrics, type LogConfig } from './records.ts';
import type { GatewayMetrics, VslReaderName } from './registry.ts';

export interface LogTarget {
  /** varnishd's -n directory. */
  instanceDir: string;
  ir: RoutingIR;
  /** Ready endpoints per service key, as rendered with the config. */
  endpoints: EndpointMap;
}

export interface LogConsumersOptions {
  metrics: GatewayMetrics;
  logger: Logger;
  /** varnishd's vsl_reclen parameter (bytes; default 255), to detect cut records. */
  recLen?: number;
  varnishlogPath?: string;
  mirror?: { maxInFlight?: number; timeoutMs?: number };
}

export class LogConsumers {
  readonly replayer: MirrorReplayer;
  readonly records: RecordMetrics;
  private readonly opts: LogConsumersOptions;
  private readonly log: Logger;
  private readonly m: GatewayMetrics;
  private readonly stopping = new Set<Promise<void>>();
  private mirrorReader: VslReader | null = null;
  private recordsReader: VslReader | null = null;
  private config: LogConfig = EMPTY_LOG_CONFIG;
  private stopped = false;

  constructor(opts: LogConsumersOptions) {
    this.opts = opts;
    this.m = opts.metrics;
    this.log = opts.logger.child({ component: 'log-consumers' });
    this.records = new RecordMetrics(opts.metrics);
    this.replayer = new MirrorReplayer({
      logger: opts.logger,
      maxInFlight: opts.mirror?.maxInFlight,
      timeoutMs: opts.mirror?.timeoutMs,
      onOutcome: (service, outcome, route) => {
        this.records.mirrorOutcome(service, outcome, route);
        this.m.mirrorsInFlight.set(this.replayer.inFlight);
      },
    });
  }

  /** The running readers, for tests and diagnostics. */
  get readers(): { mirror: VslReader | null; records: VslReader | null } {
    return { mirror: this.mirrorReader, records: this.recordsReader };
  }

  /** A config went live on the varnishd of `target.instanceDir`; null: nothing is served. */
  update(target: LogTarget | null): void {
    if (this.stopped) return;
    this.config = target ? logConfig(target.ir) : EMPTY_LOG_CONFIG;
    void this.records.setConfig(this.config).catch((err: unknown) => this.log.error({ err: String(err) }, 'pruning metric series failed'));
    this.replayer.setEndpoints(target?.endpoints ?? new Map());
    const dir = target?.instanceDir;
    this.mirrorReader = this.ensure(this.mirrorReader, 'mirror', this.config.mirrorServices.size > 0 ? dir : undefined);
    this.recordsReader = this.ensure(this.recordsReader, 'records', this.config.wantsRecords ? dir : undefined);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const readers = [this.mirrorReader, this.recordsReader];
    this.mirrorReader = this.recordsReader = null;
    await Promise.all([...readers.map((r) => r?.stop()), ...this.stopping]);
    this.replayer.close();
  }

  /** Keeps, replaces, starts or stops one reader so that it reads `dir` (undefined: none). */
  private ensure(current: VslReader | null, name: VslReaderName, dir: string | undefined): VslReader | null {
    if (current && current.instanceDir === dir) return current;
    if (current) {
      const p = current.stop().finally(() => this.stopping.delete(p));
      this.stopping.add(p);
      this.log.info({ event: 'vsl-reader-stopped', reader: name }, `${name} log reader stopped`);
    }
    if (!dir) return null;
    const onEvent = (e: VslReaderEvent) => {
      if (e.type === 'overrun') this.m.vslOverruns.inc({ reader: name });
      else if (e.type === 'exited') this.m.vslReaderRestarts.inc({ reader: name });
    };
    const common = { name, instanceDir: dir, logger: this.opts.logger, varnishlogPath: this.opts.varnishlogPath, onEvent };
    const recLen = this.opts.recLen ?? 255;
    const reader =
      name === 'mirror'
        ? new VslReader({
            ...common,
            args: mirrorTransactionArgs(),
            onTransaction: (tx) => {
              for (const req of mirrorRequests(tx, recLen)) {
                // A transaction of a config that is no longer live may name a Service that
                // is no longer a mirror target.
                if (this.config.mirrorServices.has(req.service)) this.replayer.replay(req);
              }
              this.m.mirrorsInFlight.set(this.replayer.inFlight);
            },
          })
        : new VslReader({ ...common, args: rawRecordArgs(), onRecord: (r) => this.records.count(r.payload) });
    reader.start();
    this.log.info({ event: 'vsl-reader-started', reader: name, instanceDir: dir, args: reader.args }, `${name} log reader started`);
    return reader;
  }
}
