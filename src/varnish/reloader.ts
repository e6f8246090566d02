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

interface Job {
  seq: number;
  vcl: string;
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

  constructor(varnishd: Varnishd, opts: VclReloaderOptions = {}) {
    super();
    this.varnishd = varnishd;
    this.log = (opts.logger ?? pino({ level: 'silent' })).child({ component: 'vcl-reloader' });
    this.prefix = opts.prefix ?? 'vgw_';
    this.transportAttempts = opts.transportAttempts ?? 3;
  }

  submit(vcl: string, meta?: unknown): Promise<ReloadResult> {
    return new Promise<ReloadResult>((resolve) => {
      const job: Job = { seq: ++this.submitted, vcl, meta, submittedAt: performance.now(), resolve };
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
    const name = `${this.prefix}${await this.nextNameSeq()}`;
    const t0 = performance.now();
    let loaded = await this.varnishd.cli.vclInline(name, job.vcl);
    if (
      loaded.status !== CliStatus.OK &&
      isCcFailure(loaded.body) &&
      (await this.varnishd.fallBackCc(loaded.body.trim()))
    ) {
      loaded = await this.varnishd.cli.vclInline(name, job.vcl);
    }
    const compileMs = performance.now() - t0;
    if (loaded.status !== CliStatus.OK) {
      const error = loaded.body.trim();
      return { status: 'failed', seq: job.seq, name, error, errorLocation: vccLocation(error), compileMs };
    }
    const t1 = performance.now();
    const used = await this.varnishd.cli.commandArgs(['vcl.use', name]);
    const useMs = performance.now() - t1;
    if (used.status !== CliStatus.OK) {
      await this.varnishd.cli.commandArgs(['vcl.discard', name]).catch(() => undefined);
      return { status: 'failed', seq: job.seq, name, error: used.body.trim(), compileMs, useMs };
    }
    this.varnishd.setLastGoodVcl(job.vcl);
    return { status: 'active', seq: job.seq, name, compileMs, useMs };
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
