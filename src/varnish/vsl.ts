/**
 * Reading the Varnish shared-memory log (VSL) with `varnishlog`.
 *
 * VSL is a ring buffer in shared memory: varnishd never waits for readers, so a reader that
 * falls behind loses records ("Log overrun") but cannot slow varnishd down. The cost to the
 * machine is the reader itself, so each reader asks varnishlog for as little as possible:
 *
 *  - `rawRecordArgs`: `-g raw -I 'VCL_Log:^vgw-'`, our own VCL_Log records, one line each, no
 *    grouping (varnishlog keeps no transaction state). Used for filter/timeout/retry metrics.
 *  - `mirrorTransactionArgs`: `-g vxid -c -q 'VCL_Log ~ "^vgw-mirror "'`, only client
 *    transactions that carry a mirror record, and of those only the records needed to rebuild
 *    the request (`-i`). varnishlog groups every client transaction to evaluate the query,
 *    mirrored or not; measured, that costs about as much varnishlog CPU as the raw reader
 *    (about 2 µs per request, bench/README.md). Either runs only while the config needs it.
 *
 * Text output is parsed, not the binary format: it is stable across 6.x/7.x and the grouping
 * and query evaluation stay in varnishlog (C). Bytes are decoded as latin1, so header bytes
 * survive the round trip to an HTTP request unchanged.
 *
 * What varnishd logs (checked with 7.1.1; see test/unit/vsl-parse.test.ts for captures):
 *  - the request as received: ReqMethod, ReqURL, ReqProtocol, then one ReqHeader per line;
 *  - `set req.http.X = v`: ReqUnset for each existing X line, then ReqHeader `X: v`;
 *  - `unset req.http.X`: one ReqUnset per X line, with the stored text;
 *  - `set req.url`/`req.method`: a new ReqURL/ReqMethod record;
 *  - `std.collect(req.http.X)` logs nothing, so after it the stored line is `X: a, b` while the
 *    log still shows `X: a` and `X: b`; a later ReqUnset names the joined text. varnishd itself
 *    collects X-Forwarded-For this way before appending the client address;
 *  - `return (restart)` starts a new vxid that logs the whole request again;
 *  - records longer than the vsl_reclen parameter are cut to vsl_reclen - 1 bytes.
 */
import { readFile, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { SupervisedProcess } from '../util/supervised-process.ts';
import { writePidFile } from './lifeline.ts';

/** One record of `-g raw` output. */
export interface VslRecord {
  vxid: number;
  tag: string;
  /** 'c' client, 'b' backend, '-' neither (CLI and such). */
  side: string;
  payload: string;
}

export interface VslTransactionRecord {
  tag: string;
  payload: string;
}

/** One transaction of `-g vxid` output. */
export interface VslTransaction {
  vxid: number;
  /** "Request", "BeReq", "Session", ... */
  type: string;
  records: VslTransactionRecord[];
}

// ---- argument sets ------------------------------------------------------------------------

/** Our VCL_Log records, ungrouped: the cheapest way to see them. */
export function rawRecordArgs(prefix = 'vgw-'): string[] {
  return ['-g', 'raw', '-I', `VCL_Log:^${prefix}`];
}

/** Tags a mirror replay needs: the request line, header changes and our records. */
export const REQUEST_TAGS = ['ReqMethod', 'ReqURL', 'ReqProtocol', 'ReqHeader', 'ReqUnset', 'VCL_Log'];

/**
 * Client transactions that wrote a VCL_Log record starting with `recordPrefix`, reduced to
 * REQUEST_TAGS. `-L` raises the number of transactions varnishlog keeps open at once (default
 * 1000), beyond which it completes the oldest early and its mirror is lost.
 */
export function mirrorTransactionArgs(recordPrefix = 'vgw-mirror '): string[] {
  return ['-g', 'vxid', '-c', '-L', '10000', '-q', `VCL_Log ~ "^${recordPrefix}"`, '-i', REQUEST_TAGS.join(',')];
}

// ---- text parsing -------------------------------------------------------------------------

// `-g raw`: "%10u %-14s %c %s" -> the payload starts at column 28.
const RAW_LINE = /^\s*(\d+) (\S+)\s+([cb-]) (.*)$/s;
// `-g vxid`, one level: "%-3s %-14s %s" -> the payload starts at column 19.
const TX_HEADER = /^\*+\s+<< (\w+)\s*>> (\d+)/;
const TX_RECORD = /^-+\s+(\S+)(?: (.*))?$/s;

/** Parses one line of `varnishlog -g raw`; null for anything else. */
export function parseRawLine(line: string): VslRecord | null {
  // Fixed columns keep payload whitespace intact; the regex covers unusual widths.
  if (line.length >= 27 && line[10] === ' ' && line[25] === ' ' && line[27] === ' ') {
    const vxid = Number(line.slice(0, 10));
    const tag = line.slice(11, 25).trimEnd();
    if (Number.isInteger(vxid) && tag !== '' && !tag.includes(' ')) {
      return { vxid, tag, side: line[26], payload: line.slice(28) };
    }
  }
  const m = RAW_LINE.exec(line);
  return m ? { vxid: Number(m[1]), tag: m[2], side: m[3], payload: m[4] } : null;
}

/**
 * Incremental parser of `varnishlog -g vxid` text: feed lines, get a transaction back at the
 * blank line that ends it.
 */
export class VxidParser {
  private current: VslTransaction | null = null;

  push(line: string): VslTransaction | null {
    if (line === '') {
      const done = this.current;
      this.current = null;
      return done;
    }
    const c = line[0];
    if (c === '*') {
      const m = TX_HEADER.exec(line);
      // A header without the previous blank line means the output was cut: drop the partial one.
      this.current = m ? { vxid: Number(m[2]), type: m[1], records: [] } : null;
      return null;
    }
    if (c === '-' && this.current) {
      if (line.length >= 18 && line[1] === ' ' && line[3] === ' ' && line[4] !== ' ') {
        const tag = line.slice(4, 18).trimEnd();
        if (!tag.includes(' ')) {
          this.current.records.push({ tag, payload: line.slice(19) });
          return null;
        }
      }
      const m = TX_RECORD.exec(line);
      if (m) this.current.records.push({ tag: m[1], payload: m[2] ?? '' });
    }
    return null;
  }
}

// ---- request reconstruction ----------------------------------------------------------------

/** The client request as VCL had left it at some point of a transaction. */
export interface LoggedRequest {
  method: string;
  url: string;
  protocol: string;
  /** Header lines as stored by varnishd, "Name: value", in order. */
  headers: string[];
  /** The URL or a header line may have been cut at vsl_reclen. */
  truncated: boolean;
}

/**
 * Replays a transaction's Req* records to know the request at any record. `recLen` is
 * varnishd's vsl_reclen: a record of recLen - 1 bytes or more may have been cut.
 */
export class RequestState {
  method = '';
  url = '';
  protocol = '';
  readonly headers: string[] = [];
  private readonly cutAt: number;

  constructor(recLen = 255) {
    this.cutAt = recLen - 1;
  }

  /** Applies one record; returns false for tags that do not change the request. */
  apply(tag: string, payload: string): boolean {
    switch (tag) {
      case 'ReqMethod':
        this.method = payload;
        return true;
      case 'ReqURL':
        this.url = payload;
        return true;
      case 'ReqProtocol':
        this.protocol = payload;
        return true;
      case 'ReqHeader':
        this.headers.push(payload);
        return true;
      case 'ReqUnset':
        this.unset(payload);
        return true;
      default:
        return false;
    }
  }

  snapshot(): LoggedRequest {
    const truncated = this.url.length >= this.cutAt || this.headers.some((h) => h.length >= this.cutAt);
    return { method: this.method, url: this.url, protocol: this.protocol, headers: [...this.headers], truncated };
  }

  /**
   * Removes the line ReqUnset names. When no line matches exactly, the header was collected
   * into one line without a log record (std.collect, or varnishd's own X-Forwarded-For
   * handling), and the collected line is what is being removed: every line of that name goes.
   */
  private unset(line: string): void {
    const i = this.headers.indexOf(line);
    if (i >= 0) {
      this.headers.splice(i, 1);
      return;
    }
    const name = headerName(line);
    for (let j = this.headers.length - 1; j >= 0; j--) {
      if (headerName(this.headers[j]) === name) this.headers.splice(j, 1);
    }
  }
}

/** Lower-case name of a "Name: value" line. */
export function headerName(line: string): string {
  const colon = line.indexOf(':');
  return (colon < 0 ? line : line.slice(0, colon)).trim().toLowerCase();
}

// ---- the varnishlog process ---------------------------------------------------------------

export type VslReaderEvent =
  | { type: 'started'; pid: number }
  | { type: 'exited'; code: number | null; signal: string | null; restartInMs: number }
  | { type: 'overrun' };

export interface VslReaderOptions {
  /** For logs and metrics ("mirror", "records"). */
  name: string;
  /** varnishd's -n directory. */
  instanceDir: string;
  /** Grouping and filters, e.g. rawRecordArgs() or mirrorTransactionArgs(). */
  args: string[];
  /** Called for each line of `-g raw` output (give this or onTransaction, matching args). */
  onRecord?: (record: VslRecord) => void;
  /** Called for each transaction of `-g vxid` output. */
  onTransaction?: (tx: VslTransaction) => void;
  onEvent?: (event: VslReaderEvent) => void;
  logger: Logger;
  varnishlogPath?: string;
  /** First restart delay after an unexpected exit; doubles up to 10 s. Default 250 ms. */
  restartDelayMs?: number;
}

const MAX_RESTART_DELAY_MS = 10_000;
/** Longest varnishlog line passed on: a record is at most vsl_reclen (64 KiB max) plus columns. */
const MAX_LINE = 128 * 1024;
/** A run this long resets the restart backoff. */
const STABLE_RUN_MS = 10_000;

/**
 * One varnishlog process, kept running until stop(). `-t off` makes varnishlog wait for the
 * shared memory to appear and re-attach by itself when varnishd restarts in the same -n
 * directory ("Log abandoned", "Log reacquired"); if varnishlog exits anyway, it is started
 * again with backoff (SupervisedProcess). Records written while no varnishlog runs are not seen.
 */
export class VslReader {
  readonly name: string;
  readonly instanceDir: string;
  /** "Log overrun" reports so far: records were lost because the reader fell behind. */
  overruns = 0;

  private readonly opts: VslReaderOptions;
  private readonly log: Logger;
  private readonly proc: SupervisedProcess;
  private readonly pidFile: string;
  /** The exit a restart follows, for its log line and event. */
  private lastExit: { code: number | null; signal: string | null } = { code: null, signal: null };

  constructor(opts: VslReaderOptions) {
    if (!opts.onRecord === !opts.onTransaction) throw new Error('VslReader needs one of onRecord (-g raw) and onTransaction (-g vxid)');
    this.opts = opts;
    this.name = opts.name;
    this.instanceDir = opts.instanceDir;
    this.log = opts.logger.child({ component: 'vsl-reader', reader: opts.name });
    this.pidFile = join(dirname(this.instanceDir), `varnishlog-${this.name.replace(/[^A-Za-z0-9_-]/g, '_')}.pid`);
    const args = ['-n', this.instanceDir, '-t', 'off', ...opts.args];
    this.proc = new SupervisedProcess({
      command: opts.varnishlogPath ?? 'varnishlog',
      args,
      // Bytes as they were: header bytes survive the round trip to a replayed request.
      encoding: 'latin1',
      // Records are cut at vsl_reclen (at most 64 KiB) by varnishd; a longer line is not ours.
      maxLineLength: MAX_LINE,
      keepLines: 20,
      restart: { initialDelayMs: opts.restartDelayMs ?? 250, maxDelayMs: MAX_RESTART_DELAY_MS, stableRunMs: STABLE_RUN_MS },
      stopGraceMs: 2_000,
    });
    let vxid = opts.onTransaction ? new VxidParser() : null;
    this.proc.on('started', ({ pid }) => {
      // A new varnishlog starts with a new transaction: drop what the last one left half-done.
      if (vxid) vxid = new VxidParser();
      // The pid file lets the next control plane on this work directory stop it if it
      // outlived us anyway (lifeline.ts).
      writePidFile(this.pidFile, pid).catch(() => undefined);
      this.log.debug({ pid, args }, 'varnishlog started');
      opts.onEvent?.({ type: 'started', pid });
    });
    this.proc.on('line', (line) => {
      if (line.stream === 'stderr') {
        this.onStderr(line.text);
        return;
      }
      if (line.truncated) return;
      try {
        if (vxid) {
          const tx = vxid.push(line.text);
          if (tx) opts.onTransaction!(tx);
        } else if (opts.onRecord) {
          const r = parseRawLine(line.text);
          if (r) opts.onRecord(r);
        }
      } catch (err) {
        this.log.error({ err: (err as Error).message }, 'VSL consumer failed');
      }
    });
    this.proc.on('exited', ({ code, signal, error, expected }) => {
      this.lastExit = { code, signal };
      rm(this.pidFile, { force: true }).catch(() => undefined);
      if (error) this.log.error({ err: error }, 'varnishlog could not run');
      if (expected) this.log.debug({ code, signal }, 'varnishlog stopped');
    });
    this.proc.on('restarting', ({ delayMs }) => {
      const exit = this.lastExit;
      this.log.warn({ ...exit, restartInMs: delayMs }, 'varnishlog exited, restarting');
      opts.onEvent?.({ type: 'exited', code: exit.code, signal: exit.signal, restartInMs: delayMs });
    });
  }

  /** Unexpected exits so far. */
  get restarts(): number {
    return this.proc.restarts;
  }

  get running(): boolean {
    return this.proc.running;
  }

  /** The varnishlog arguments after `-n DIR -t off`. */
  get args(): readonly string[] {
    return this.opts.args;
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  start(): void {
    this.proc.start();
  }

  /**
   * Resolves once varnishlog has mapped the log segment, from when on every record written is
   * seen. varnishlog says nothing when it attaches, so this polls its memory maps (Linux);
   * tests use it to avoid racing their first request.
   */
  async attached(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const pid = this.proc.pid;
      if (pid) {
        const maps = await readFile(`/proc/${pid}/maps`, 'utf8').catch(() => '');
        if (maps.includes('/_.vsm_child/_.Log.')) return;
      }
      if (Date.now() > deadline) throw new Error(`varnishlog (${this.name}) did not attach to ${this.instanceDir} in ${timeoutMs} ms`);
      await sleep(20);
    }
  }

  /** Stops varnishlog (SIGTERM, SIGKILL after 2 s) and waits until it is gone. */
  async stop(): Promise<void> {
    const left = await this.proc.stop();
    if (left.length) this.log.error({ event: 'process-not-gone', pids: left }, 'varnishlog still running after SIGKILL');
  }

  private onStderr(line: string): void {
    if (line.trim() === '') return;
    if (/overrun/i.test(line)) {
      this.overruns++;
      this.opts.onEvent?.({ type: 'overrun' });
      // Overruns come in bursts under load: say so once per burst, the metric has the count.
      if (this.overruns === 1 || this.overruns % 100 === 0) this.log.warn({ overruns: this.overruns }, 'varnishlog fell behind, records were lost');
      return;
    }
    // "Log abandoned (vsl)" / "Log reacquired": varnishd restarted, varnishlog follows it.
    this.log.info({ line }, 'varnishlog');
  }
}
