/**
 * Hot VCL reloads with coalescing.
 *
 * At most one compile runs at a time. While it runs, new submissions wait in
 * a single pending slot: a newer submission replaces the pending one, whose
 * promise resolves as `superseded`. So a burst of N changes costs at most two
 * compiles, and the last submission always ends up compiled.
 *
 * A compile is `vcl.inline vgw_<n>` (here-document) followed by `vcl.use`.
 * On failure the active VCL stays, and the result carries varnishd's message
 * (the VCC error with line and position). On success the text becomes the
 * Varnishd's last good VCL (a manager restart boots with it) and every other
 * VCL named vgw_* or boot that is not active is discarded; a discard that
 * varnishd refuses (label reference, still in use) is retried after the next
 * reload.
 *
 * A submission may also be a VCL set: shard VCLs loaded under labels plus a
 * main VCL that dispatches to them with return (vcl(label)). Only shards whose
 * text changed since the last deploy are compiled; once every changed one has
 * compiled, the labels are moved, then the main VCL is used if it changed. A
 * failed compile moves nothing. After a manager restart (which boots with a
 * placeholder, as labels do not survive it) the last good set is deployed again.
 *
 * Each result is returned from submit() and also emitted as `'result'`.
 */
import { EventEmitter } from 'node:events';
import { pino, type Logger } from 'pino';
import { isCcFailure } from './cc.ts';
import { CliStatus, VarnishCliError } from './cli.ts';
import { parseVclList } from './vcl-list.ts';
import type { Varnishd } from './varnishd.ts';

export type ReloadStatus = 'active' | 'failed' | 'superseded';

export interface ReloadResult {
  status: ReloadStatus;
  /** Submission number, increasing from 1. */
  seq: number;
  /** VCL name in varnishd, when a compile was attempted. */
  name?: string;
  /** varnishd's reply on failure: VCC or C compiler message. */
  error?: string;
  /** First "Line L Pos P" of a VCC error. */
  errorLocation?: { line: number; column: number };
  /** vcl.inline: VCL to C, C compiler, load into the child. */
  compileMs?: number;
  /** vcl.use */
  useMs?: number;
  /** From submit() to the result, waiting included. */
  totalMs?: number;
  /** VCLs compiled for this result (a VCL set compiles only what changed). */
  compiled?: number;
  meta?: unknown;
}

export type VclReloaderEventMap = { result: [ReloadResult] };

export interface VclReloaderOptions {
  /** Prefix of generated VCL names; default "vgw_". */
  prefix?: string;
  /** Attempts for a compile that hit a CLI transport failure (e.g. manager restart); default 3. */
  transportAttempts?: number;
  logger?: Logger;
}

/** Shard VCLs under labels plus the main VCL that dispatches to them. */
export interface VclSet {
  main: string;
  shards: readonly string[];
  /** Label of shard i. */
  label: (i: number) => string;
}

/** What a manager restart boots with while a sharded set is redeployed. */
const PLACEHOLDER_VCL = `vcl 4.1;
backend vgw_none none;
sub vcl_recv { return (synth(503, "Reloading")); }
`;

interface Job {
  seq: number;
  vcl: string | VclSet;
  meta: unknown;
  submittedAt: number;
  resolve: (r: ReloadResult) => void;
}

export class VclReloader extends EventEmitter<VclReloaderEventMap> {
  private readonly varnishd: Varnishd;
  private readonly log: Logger;
  private readonly prefix: string;
  private readonly transportAttempts: number;
  private submitted = 0;
  private nameSeq: number | null = null;
  private pending: Job | null = null;
  private running: Promise<void> | null = null;
  private discardBacklog = false;
  /** close() was called: no more compiles. */
  private closed = false;
  /** Texts now live: the used VCL and each label's target; null = unknown. */
  private liveMain: string | null = null;
  private liveShards: (string | null)[] = [];
  private lastGoodSet: VclSet | null = null;
  private liveLabels: string[] = [];
  private readonly staleLabels = new Set<string>();

  constructor(varnishd: Varnishd, opts: VclReloaderOptions = {}) {
    super();
    this.varnishd = varnishd;
    this.log = (opts.logger ?? pino({ level: 'silent' })).child({ component: 'vcl-reloader' });
    this.prefix = opts.prefix ?? 'vgw_';
    this.transportAttempts = opts.transportAttempts ?? 3;
    varnishd.on('event', (e) => {
      if (e.type !== 'manager-started' || !e.restart) return;
      // A new manager has only its boot VCL: names restart and labels are gone.
      this.nameSeq = null;
      this.liveShards = [];
      this.liveLabels = [];
      this.staleLabels.clear();
      this.liveMain = this.varnishd.lastGoodVcl;
      if (this.lastGoodSet && !this.pending) void this.submit(this.lastGoodSet, { redeploy: true });
    });
  }

  submit(vcl: string | VclSet, meta?: unknown): Promise<ReloadResult> {
    return new Promise<ReloadResult>((resolve) => {
      const job: Job = { seq: ++this.submitted, vcl, meta, submittedAt: performance.now(), resolve };
      if (this.closed) return this.finish(job, { status: 'superseded', seq: job.seq });
      const dropped = this.pending;
      this.pending = job;
      if (dropped) this.finish(dropped, { status: 'superseded', seq: dropped.seq });
      if (!this.running) {
        this.running = this.drain().finally(() => {
          this.running = null;
        });
      }
    });
  }

  /**
   * No more compiles: the pending submission and any later one resolve as superseded, and a
   * set being deployed stops after the VCL being compiled (its labels and main VCL untouched),
   * so that stopping does not wait for dozens of shard VCLs.
   */
  close(): void {
    this.closed = true;
    const dropped = this.pending;
    this.pending = null;
    if (dropped) this.finish(dropped, { status: 'superseded', seq: dropped.seq });
  }

  /** Resolves once no compile is running or pending. */
  async waitIdle(): Promise<void> {
    while (this.running) await this.running;
  }

  private async drain(): Promise<void> {
    while (this.pending) {
      const job = this.pending;
      this.pending = null;
      let result: ReloadResult;
      try {
        result = await this.compileWithRetry(job);
      } catch (err) {
        result = { status: 'failed', seq: job.seq, error: (err as Error).message };
      }
      this.finish(job, result);
      if (result.status === 'active' || this.discardBacklog) await this.discardInactive();
    }
  }

  private async compileWithRetry(job: Job): Promise<ReloadResult> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.varnishd.whenReady();
        return await this.compile(job);
      } catch (err) {
        // A CLI error is varnishd's answer; anything else is the connection.
        if (err instanceof VarnishCliError || attempt >= this.transportAttempts) throw err;
        if (this.pending) return { status: 'superseded', seq: job.seq };
        this.log.warn({ seq: job.seq, err: (err as Error).message, attempt }, 'reload interrupted; retrying');
      }
    }
  }

  private async compile(job: Job): Promise<ReloadResult> {
    const set: VclSet = typeof job.vcl === 'string' ? { main: job.vcl, shards: [], label: () => '' } : job.vcl;
    let compileMs = 0;
    let useMs = 0;
    const timed = async <T>(into: 'compile' | 'use', fn: () => Promise<T>): Promise<T> => {
      const t = performance.now();
      try {
        return await fn();
      } finally {
        if (into === 'compile') compileMs += performance.now() - t;
        else useMs += performance.now() - t;
      }
    };
    // 1. Compile every shard whose text changed; nothing is moved until all have compiled.
    const relabel: { label: string; name: string; index: number }[] = [];
    for (let i = 0; i < set.shards.length; i++) {
      if (this.liveShards[i] === set.shards[i]) continue;
      if (this.closed) return { status: 'superseded', seq: job.seq, compileMs };
      const loaded = await timed('compile', () => this.load(set.shards[i]));
      if (!loaded.ok) {
        await this.discardNames(relabel.map((r) => r.name));
        return { status: 'failed', seq: job.seq, name: loaded.name, error: loaded.error, errorLocation: vccLocation(loaded.error), compileMs };
      }
      relabel.push({ label: set.label(i), name: loaded.name, index: i });
    }
    // 2. Move the labels, then compile the main VCL (it must find the labels it names) and
    // use it. Labels are per shard count, so a main VCL still in use never sees a shard
    // partitioned for another count.
    for (const r of relabel) {
      await timed('use', () => this.varnishd.cli.expectOk(['vcl.label', r.label, r.name]));
      this.liveShards[r.index] = set.shards[r.index];
    }
    let mainName: string | undefined;
    if (this.liveMain !== set.main) {
      const loaded = await timed('compile', () => this.load(set.main));
      if (!loaded.ok) {
        return { status: 'failed', seq: job.seq, name: loaded.name, error: loaded.error, errorLocation: vccLocation(loaded.error), compileMs };
      }
      mainName = loaded.name;
      const name = mainName;
      const used = await timed('use', () => this.varnishd.cli.commandArgs(['vcl.use', name]));
      if (used.status !== CliStatus.OK) {
        await this.discardNames([mainName]);
        return { status: 'failed', seq: job.seq, name: mainName, error: used.body.trim(), compileMs };
      }
      this.liveMain = set.main;
    }
    this.liveShards.length = set.shards.length;
    const labels = set.shards.map((_, i) => set.label(i));
    for (const l of this.liveLabels) if (!labels.includes(l)) this.staleLabels.add(l);
    this.liveLabels = labels;
    this.lastGoodSet = set.shards.length ? set : null;
    this.varnishd.setLastGoodVcl(set.shards.length ? PLACEHOLDER_VCL : set.main);
    const name = mainName ?? relabel.at(-1)?.name;
    return { status: 'active', seq: job.seq, name, compileMs, useMs, compiled: relabel.length + (mainName ? 1 : 0) };
  }

  /** vcl.inline under a fresh name, falling back from tcc to gcc when the C compiler fails. */
  private async load(vcl: string): Promise<{ ok: true; name: string } | { ok: false; name: string; error: string }> {
    const name = `${this.prefix}${await this.nextNameSeq()}`;
    let loaded = await this.varnishd.cli.vclInline(name, vcl);
    if (loaded.status !== CliStatus.OK && isCcFailure(loaded.body) && (await this.varnishd.fallBackCc(loaded.body.trim()))) {
      loaded = await this.varnishd.cli.vclInline(name, vcl);
    }
    if (loaded.status !== CliStatus.OK) return { ok: false, name, error: loaded.body.trim() };
    return { ok: true, name };
  }

  private async discardNames(names: string[]): Promise<void> {
    for (const n of names) await this.varnishd.cli.commandArgs(['vcl.discard', n]).catch(() => undefined);
  }

  /** Continues numbering after any vgw_N already loaded, so names never collide. */
  private async nextNameSeq(): Promise<number> {
    if (this.nameSeq === null) {
      let max = 0;
      const body = await this.varnishd.cli.expectOk('vcl.list -j');
      for (const e of parseVclList(body)) {
        if (e.name.startsWith(this.prefix)) {
          const n = Number(e.name.slice(this.prefix.length));
          if (Number.isInteger(n) && n > max) max = n;
        }
      }
      this.nameSeq = max;
    }
    return ++this.nameSeq;
  }

  private async discardInactive(): Promise<void> {
    try {
      const cli = this.varnishd.cli;
      const entries = parseVclList(await cli.expectOk('vcl.list -j'));
      let refused = false;
      for (const e of entries) {
        if (e.status === 'active' || e.status === 'discarded' || e.labelTarget !== undefined || e.labels > 0) continue;
        if (!(e.name.startsWith(this.prefix) || e.name === 'boot')) continue;
        const r = await cli.commandArgs(['vcl.discard', e.name]);
        if (r.status !== CliStatus.OK) {
          refused = true;
          this.log.debug({ name: e.name, status: r.status, body: r.body.trim() }, 'vcl.discard refused; retrying later');
        } else {
          this.log.debug({ name: e.name }, 'VCL discarded');
        }
      }
      // Labels of shards that no longer exist (the set shrank): removable once nothing names
      // them, which the discards above made true for the old main VCL.
      for (const label of [...this.staleLabels]) {
        const r = await cli.commandArgs(['vcl.discard', label]);
        if (r.status === CliStatus.OK) this.staleLabels.delete(label);
        else refused = true;
      }
      this.discardBacklog = refused;
    } catch (err) {
      this.discardBacklog = true;
      this.log.warn({ err: (err as Error).message }, 'discarding old VCLs failed');
    }
  }

  private finish(job: Job, result: ReloadResult): void {
    const full: ReloadResult = { ...result, totalMs: performance.now() - job.submittedAt, meta: job.meta };
    const level = full.status === 'failed' ? 'warn' : 'info';
    this.log[level](
      {
        seq: full.seq,
        status: full.status,
        name: full.name,
        compileMs: round(full.compileMs),
        useMs: round(full.useMs),
        totalMs: round(full.totalMs),
        error: full.error,
      },
      `VCL reload ${full.status}`,
    );
    job.resolve(full);
    this.emit('result', full);
  }
}

function vccLocation(body: string): { line: number; column: number } | undefined {
  const m = /Line (\d+) Pos (\d+)/.exec(body);
  return m ? { line: Number(m[1]), column: Number(m[2]) } : undefined;
}

function round(ms: number | undefined): number | undefined {
  return ms === undefined ? undefined : Math.round(ms * 10) / 10;
}
