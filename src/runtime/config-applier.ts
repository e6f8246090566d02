// Applying configs the way every owner of a data plane does: changes coalesce into at most
// one more apply that sees the newest state, and a config that cannot be applied is
// rejected in one way everywhere: shown as the last error, counted (vgw_config_errors_total)
// and logged as `config-rejected`, while the last good config keeps serving.
import type { Logger } from 'pino';
import { Coalescer } from '../util/coalesce.ts';

/** The last error, as an owner's status shows it. */
export interface LastError {
  at: string;
  message: string;
}

export interface ConfigApplierOptions {
  /** One apply: reads the newest state and makes it live, or throws / calls reject(). */
  apply: () => Promise<void>;
  /** The owner's state object; `lastError` is set and cleared in place. */
  state: { lastError?: LastError };
  /** The config-error counter of the owner's metrics. */
  configErrors: { inc(): void };
  logger: Logger;
  /**
   * What the state shows of a message (the log always has it whole); default the message
   * itself. The agent, whose state is served over HTTP, shows a one-line summary.
   */
  summarize?: (message: string) => string;
}

export class ConfigApplier {
  private readonly opts: ConfigApplierOptions;
  private readonly coalescer: Coalescer;

  constructor(opts: ConfigApplierOptions) {
    this.opts = opts;
    this.coalescer = new Coalescer(opts.apply, (err) => this.reject(err instanceof Error ? err.message : String(err)));
  }

  /** Applies now, or once more after the running apply; resolves when that one has finished. */
  run(): Promise<void> {
    return this.coalescer.run();
  }

  /** No new applies; resolves when the current one (if any) has finished. */
  stop(): Promise<void> {
    return this.coalescer.stop();
  }

  /** The config was rejected: last error, metric and `config-rejected` log line. */
  reject(message: string): void {
    const shown = this.opts.summarize ? this.opts.summarize(message) : message;
    this.opts.state.lastError = { at: new Date().toISOString(), message: shown };
    this.opts.configErrors.inc();
    this.opts.logger.error({ event: 'config-rejected' }, message);
  }

  /** What is live is what was asked for: no error is outstanding. */
  accepted(): void {
    this.opts.state.lastError = undefined;
  }
}
