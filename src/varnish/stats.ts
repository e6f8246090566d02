// Counters of one varnishd (its -n directory), read with `varnishstat -n DIR -j -1`.
//
// One varnishstat process per poll, and polls never overlap: get(), watch() and the background
// loop of start() all queue on one chain. Scrapes read `latest` and never start a process.
// A failed poll is counted, logged and emitted as 'poll-failed'; it never ends the loop.
//
// Per-backend counters (VBE.<vcl>.<backend>.<field>) are also summed per backend over the
// loaded VCLs (`snapshot.backends`), so that a reload, which loads a new VCL with new backend
// objects and discards the old one, neither makes a new series nor makes a counter go back:
// the last value seen of a backend object that went away is kept in the sum for as long as a
// backend with the same label is still loaded. Our backends are named after their address
// (src/vcl/backend-names.ts), so the label `address:port` comes from the name alone, the same
// in every VCL and shard; other backends are labelled by name.
import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino, type Logger } from 'pino';
import { backendLabel } from '../vcl/backend-names.ts';
import { CommandLoop } from './command-loop.ts';
import type { Varnishd } from './varnishd.ts';

export type CounterType = 'counter' | 'gauge' | 'bitmap';

export interface StatsCounter {
  readonly value: number;
  readonly type: CounterType;
  readonly description: string;
  /** varnishstat's format: i (integer), B (bytes), d (duration, seconds), b (bitmap). */
  readonly format: string;
}

export interface StatsSnapshot {
  /** When varnishstat returned. */
  readonly time: Date;
  /** Every counter by its varnishstat name, e.g. `MAIN.client_req`. */
  readonly counters: ReadonlyMap<string, StatsCounter>;
  /** The value of one counter, undefined when varnishd has no such counter. */
  counter(name: string): number | undefined;
  /**
   * Per-backend counters (bitmaps left out), keyed by backend label (`address:port` decoded
   * from the name of one of our backends, `[address]:port` for IPv6, or the name of any
   * other backend), then by field (`req`, `conn`, `fail_econnrefused`...), summed over the
   * loaded VCLs.
   */
  readonly backends: ReadonlyMap<string, ReadonlyMap<string, StatsCounter>>;
}

const TYPES: Record<string, CounterType> = { c: 'counter', g: 'gauge', b: 'bitmap' };

/**
 * The loops of start() and watch() wait at least this many times the last poll's duration:
 * a poll is about 6 ms with one backend but 100 ms with 1 000 (17 counters each, per loaded
 * VCL), so polling stays under a tenth of a CPU whatever the interval asked for.
 */
const POLL_SPACING = 10;

/** Counters out of varnishstat's JSON (7.x nests them under "counters"; 6.x did not). */
export function parseCounters(json: string): Map<string, StatsCounter> {
  const parsed = JSON.parse(json) as Record<string, unknown>;
  const src = (typeof parsed.counters === 'object' && parsed.counters !== null ? parsed.counters : parsed) as Record<string, unknown>;
  const out = new Map<string, StatsCounter>();
  for (const [name, raw] of Object.entries(src)) {
    if (typeof raw !== 'object' || raw === null) continue;
    const c = raw as Record<string, unknown>;
    const type = TYPES[String(c.flag)];
    if (!type || typeof c.value !== 'number') continue;
    out.set(name, Object.freeze({ value: c.value, type, description: String(c.description ?? ''), format: String(c.format ?? '') }));
  }
  return out;
}

/** A stateless snapshot of one varnishstat output (no counts kept from earlier polls). */
export function parseVarnishstat(json: string, time = new Date()): StatsSnapshot {
  return new SnapshotBuilder().build(parseCounters(json), time);
}

/**
 * Open client connections (sessions), or undefined if the counters needed are missing.
 *
 * Varnish 7.1 has no gauge of sessions, but every session is allocated from a per-thread-pool
 * memory pool, `MEMPOOL.sess<N>`, whose `live` gauge ("In use") is updated at each allocation
 * and free. Their sum is the number of open sessions: idle keep-alive ones, ones with a
 * request in progress and piped ones alike.
 *
 * The other candidate, `MAIN.sess_conn` minus the sum of the `MAIN.sc_*` close-reason
 * counters, agrees once traffic stops (`MAIN.sess_closed` and `sess_closed_err` do not: they
 * miss sessions the client closed). But MAIN counters are kept per worker thread and only
 * added to the shared ones when the thread goes idle: measured with 50 connections under
 * constant load, the difference stayed at 0 (and MAIN.client_req did not move) until the run
 * ended, while the mempool gauge said 50. It is only the fallback when no mempool is seen.
 */
export function activeSessions(s: StatsSnapshot): number | undefined {
  let live = 0;
  let pools = 0;
  for (const [name, c] of s.counters) {
    if (/^MEMPOOL\.sess\d+\.live$/.test(name)) {
      live += c.value;
      pools++;
    }
  }
  if (pools > 0) return live;
  const conn = s.counter('MAIN.sess_conn');
  if (conn === undefined) return undefined;
  let closed = 0;
  for (const [name, c] of s.counters) if (name.startsWith('MAIN.sc_')) closed += c.value;
  return Math.max(0, conn - closed);
}

/** VBE.<vcl>.<backend>.<field>; a backend name may hold dots (dynamic backends: `d(1.2.3.4:80)`). */
export function splitVbe(name: string): { vcl: string; backend: string; field: string } | null {
  if (!name.startsWith('VBE.')) return null;
  const first = name.indexOf('.', 4);
  const last = name.lastIndexOf('.');
  if (first < 0 || last <= first) return null;
  return { vcl: name.slice(4, first), backend: name.slice(first + 1, last), field: name.slice(last + 1) };
}

/** One backend object's counter as last seen. */
interface VbeSeen {
  label: string;
  field: string;
  value: number;
}

/**
 * Turns successive varnishstat outputs of one varnishd into snapshots, keeping what the
 * per-backend sums need across polls. Exported for tests; StatsCollector owns one.
 */
export class SnapshotBuilder {
  /** Counter values of backend objects seen in the previous poll, by varnishstat name. */
  private seen = new Map<string, VbeSeen>();
  /** Per label and field: last values of backend objects that are gone. */
  private retired = new Map<string, Map<string, number>>();
  private epoch: { childStarts?: number; mgtUptime?: number; uptime?: number } = {};

  /**
   * True when the counters come from a new child or manager (counters start again at 0, and
   * VCL names may be reused by a new manager). Records the new epoch.
   */
  private restarted(counters: ReadonlyMap<string, StatsCounter>): boolean {
    const now = {
      childStarts: counters.get('MGT.child_start')?.value,
      mgtUptime: counters.get('MGT.uptime')?.value,
      uptime: counters.get('MAIN.uptime')?.value,
    };
    const prev = this.epoch;
    this.epoch = now;
    const back = (a: number | undefined, b: number | undefined) => a !== undefined && b !== undefined && b < a;
    return (
      (prev.childStarts !== undefined && now.childStarts !== prev.childStarts) ||
      back(prev.mgtUptime, now.mgtUptime) ||
      back(prev.uptime, now.uptime)
    );
  }

  /** The snapshot of one poll's counters; the polls of one varnishd go through one builder, in order. */
  build(counters: ReadonlyMap<string, StatsCounter>, time: Date): StatsSnapshot {
    if (this.restarted(counters)) {
      this.seen.clear();
      this.retired.clear();
    }
    // One pass over the counters: sums per label and field, and what to remember for the next
    // poll (this runs on every poll, over 17 counters per backend and loaded VCL).
    type Sum = { value: number; type: CounterType; description: string; format: string };
    const sums = new Map<string, Map<string, Sum>>();
    const seen = new Map<string, VbeSeen>();
    // Each backend name has about 17 counters per loaded VCL: decode it once.
    const labelOf = new Map<string, string>();
    for (const [name, c] of counters) {
      if (c.type === 'bitmap' || !name.startsWith('VBE.')) continue;
      const vbe = splitVbe(name);
      if (!vbe) continue;
      let label = labelOf.get(vbe.backend);
      if (label === undefined) labelOf.set(vbe.backend, (label = backendLabel(vbe.backend) ?? vbe.backend));
      let fields = sums.get(label);
      if (!fields) sums.set(label, (fields = new Map()));
      const sum = fields.get(vbe.field);
      if (sum) sum.value += c.value;
      else fields.set(vbe.field, { value: c.value, type: c.type, description: c.description, format: c.format });
      if (c.type === 'counter') seen.set(name, { label, field: vbe.field, value: c.value });
    }
    // Backend objects gone since the last poll (their VCL was discarded): keep their counts.
    for (const [name, old] of this.seen) {
      if (seen.has(name)) continue;
      let fields = this.retired.get(old.label);
      if (!fields) this.retired.set(old.label, (fields = new Map()));
      fields.set(old.field, (fields.get(old.field) ?? 0) + old.value);
    }
    this.seen = seen;
    // A label no longer loaded at all (endpoint removed) takes its kept counts along, so
    // series do not pile up as endpoints come and go.
    for (const [label, fields] of this.retired) {
      const live = sums.get(label);
      if (!live) {
        this.retired.delete(label);
        continue;
      }
      for (const [field, value] of fields) {
        const c = live.get(field);
        if (c && c.type === 'counter') c.value += value;
      }
    }
    for (const fields of sums.values()) for (const c of fields.values()) Object.freeze(c);
    const backends: ReadonlyMap<string, ReadonlyMap<string, StatsCounter>> = sums;
    return Object.freeze({
      time,
      counters,
      backends,
      counter: (name: string) => counters.get(name)?.value,
    });
  }
}

export interface StatsCollectorOptions {
  /** varnishd's -n directory. */
  instanceDir: string;
  varnishstatPath?: string;
  /**
   * Whether varnishd is up. The polls of start() and watch() are skipped while it is not
   * (starting, restarting, stopped), rather than counted as failures; get() always polls.
   */
  up?: () => boolean;
  /** Limit for one varnishstat run; default 10 s. */
  timeoutMs?: number;
  logger?: Logger;
}

export type StatsCollectorEventMap = {
  snapshot: [StatsSnapshot];
  'poll-failed': [Error];
};

export class StatsCollector extends EventEmitter<StatsCollectorEventMap> {
  readonly instanceDir: string;
  /** Polls that failed (varnishstat missing, varnishd not up, unreadable output). */
  failures = 0;
  private readonly opts: StatsCollectorOptions;
  private readonly log: Logger;
  private readonly builder = new SnapshotBuilder();
  private last: StatsSnapshot | null = null;
  private chain: Promise<unknown> = Promise.resolve();
  private timer: NodeJS.Timeout | null = null;
  private loop: Promise<void> | null = null;
  private running = false;
  private failing = false;
  private lastPollMs = 0;
  private commands: CommandLoop | null = null;

  constructor(opts: StatsCollectorOptions) {
    super();
    this.opts = opts;
    this.instanceDir = opts.instanceDir;
    this.log = (opts.logger ?? pino({ level: 'silent' })).child({ component: 'varnish-stats' });
  }

  /** A collector for this varnishd, whose loop pauses while varnishd is not running. */
  static forVarnishd(varnishd: Varnishd, opts: Omit<StatsCollectorOptions, 'instanceDir' | 'up'> = {}): StatsCollector {
    return new StatsCollector({ ...opts, instanceDir: varnishd.instanceDir, up: () => varnishd.running });
  }

  /** The most recent snapshot of any poll; what metric scrapes read. */
  get latest(): StatsSnapshot | null {
    return this.last;
  }

  /** A new snapshot (waits for a poll in progress, then runs its own). */
  get(): Promise<StatsSnapshot> {
    const run = this.chain.then(() => this.poll());
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** Snapshots every `intervalMs` (after the previous poll ended, see POLL_SPACING) until `signal` aborts. */
  async *watch(intervalMs: number, signal?: AbortSignal): AsyncGenerator<StatsSnapshot, void, undefined> {
    while (!signal?.aborted) {
      const snap = this.opts.up?.() === false ? null : await this.get().catch(() => null);
      if (signal?.aborted) return;
      if (snap) yield snap;
      try {
        await sleep(this.pause(intervalMs), undefined, { signal });
      } catch {
        return;
      }
    }
  }

  /** Wait between two polls of a loop. */
  private pause(intervalMs: number): number {
    return Math.max(intervalMs, POLL_SPACING * this.lastPollMs);
  }

  /** Keeps `latest` fresh: a poll now, then every `intervalMs` after each one ends. */
  start(intervalMs: number): void {
    if (this.running) return;
    this.running = true;
    const tick = () => {
      this.timer = null;
      this.loop = (this.opts.up?.() === false ? Promise.resolve() : this.get()).then(
        () => undefined,
        () => undefined,
      );
      void this.loop.then(() => {
        if (this.running) {
          this.timer = setTimeout(tick, this.pause(intervalMs));
          this.timer.unref();
        }
      });
    };
    tick();
  }

  /** Ends the background loop; resolves once a poll in progress has ended. */
  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.loop;
    await this.chain;
    this.commands?.close();
    this.commands = null;
  }

  private async poll(): Promise<StatsSnapshot> {
    const started = performance.now();
    try {
      // -t: give up quickly on a varnishd that is not (yet) there; the next poll tries again.
      // Run through a long-lived shell (launched with a parent-death signal, so that it never
      // outlives us): forking this process once a second costs more than the poll itself.
      this.commands ??= new CommandLoop(this.opts.varnishstatPath ?? 'varnishstat', ['-n', this.instanceDir, '-t', '1', '-j', '-1'], {
        timeoutMs: this.opts.timeoutMs ?? 10_000,
        maxBytes: 256 * 1024 * 1024,
      });
      const stdout = await this.commands.run();
      const time = new Date();
      const snap = this.builder.build(parseCounters(stdout), time);
      this.last = snap;
      this.lastPollMs = performance.now() - started;
      if (this.failing) this.log.info({ event: 'stats-poll-recovered', failures: this.failures }, 'varnishstat poll works again');
      this.failing = false;
      this.emit('snapshot', snap);
      return snap;
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      this.failures++;
      // The first failure of a streak is worth a warning; the next ones would repeat it.
      this.log[this.failing ? 'debug' : 'warn']({ event: 'stats-poll-failed', err: error.message, failures: this.failures }, 'varnishstat poll failed');
      this.failing = true;
      this.emit('poll-failed', error);
      throw error;
    }
  }
}
