// Runs a task now, or once more after the running one when asked again meanwhile: a burst of
// changes collapses into at most one extra run that sees the newest state.
export class Coalescer {
  private readonly task: () => Promise<void>;
  private readonly onError: (err: unknown) => void;
  private running: Promise<void> | null = null;
  private again = false;
  private stopped = false;

  constructor(task: () => Promise<void>, onError: (err: unknown) => void) {
    this.task = task;
    this.onError = onError;
  }

  /** Resolves when a run that started after this call has finished. */
  run(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        await this.task().catch(this.onError);
      } while (this.again && !this.stopped);
      this.running = null;
    })();
    return this.running;
  }

  /** No new runs; resolves when the current one (if any) has finished. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.running?.catch(() => undefined);
  }
}

export interface SettleOptions {
  /** Quiet time that ends a lone change: a few keys after the source was quiet for `burstQuietMs`. */
  quietMs: number;
  /** Quiet time that ends a burst (more keys than `loneLimit`, or changes close behind earlier ones). */
  burstQuietMs: number;
  /** A batch is handed over at most this long after its first key, however busy the source. */
  maxDelayMs: number;
  /** Distinct keys a lone change may name. */
  loneLimit: number;
}

/**
 * An editor's save (one to a few files) goes through after 5 ms; a `cp -r` of thousands of
 * files waits for 100 ms of quiet, so that it becomes one or two applies instead of one per
 * pause of the writer, but never more than a second, so that a directory that keeps changing
 * is still applied about once a second.
 */
export const DEFAULT_SETTLE: SettleOptions = { quietMs: 5, burstQuietMs: 100, maxDelayMs: 1_000, loneLimit: 4 };

/** What changed since the last batch: keys, or `all` when the source could not say. */
export interface SettledBatch {
  keys: Set<string>;
  all: boolean;
}

/**
 * Gathers keys (changed paths) and hands them over in batches once the source has settled
 * (see SettleOptions). One timer at a time: it is armed for the earliest possible deadline
 * and, when it fires early because more keys came, re-armed for the new one, so that a burst
 * of thousands of events costs a Set insertion each, not a timer each.
 */
export class SettleWindow {
  private readonly opts: SettleOptions;
  private readonly deliver: (batch: SettledBatch) => void;
  private readonly now: () => number;
  private keys = new Set<string>();
  private all = false;
  /** When the pending batch got its first key; null when nothing is pending. */
  private firstAt: number | null = null;
  private lastAt = Number.NEGATIVE_INFINITY;
  /** The pending batch started after a quiet spell: it may be a lone change. */
  private loneCandidate = false;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(opts: Partial<SettleOptions>, deliver: (batch: SettledBatch) => void, now: () => number = () => performance.now()) {
    this.opts = { ...DEFAULT_SETTLE, ...opts };
    this.deliver = deliver;
    this.now = now;
  }

  /** Records a changed key; null means "something changed, unknown what". */
  add(key: string | null): void {
    if (this.closed) return;
    const now = this.now();
    if (this.firstAt === null) {
      this.firstAt = now;
      this.loneCandidate = now - this.lastAt >= this.opts.burstQuietMs;
    }
    this.lastAt = now;
    if (key === null) this.all = true;
    else this.keys.add(key);
    if (!this.timer) this.arm(now);
  }

  /** Keys gathered and not handed over yet. */
  get pending(): number {
    return this.keys.size;
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private deadline(): number {
    const lone = this.loneCandidate && !this.all && this.keys.size <= this.opts.loneLimit;
    const quiet = lone ? this.opts.quietMs : this.opts.burstQuietMs;
    return Math.min(this.lastAt + quiet, (this.firstAt as number) + this.opts.maxDelayMs);
  }

  private arm(now: number): void {
    this.timer = setTimeout(() => this.expire(), Math.max(0, this.deadline() - now));
  }

  private expire(): void {
    this.timer = null;
    if (this.closed || this.firstAt === null) return;
    const now = this.now();
    if (now < this.deadline()) {
      this.arm(now);
      return;
    }
    const batch = { keys: this.keys, all: this.all };
    this.keys = new Set();
    this.all = false;
    this.firstAt = null;
    this.deliver(batch);
  }
}
