// PCRE2's verdict on user regexes, before they reach a config. The tokenizer in
// src/ir/regex-dialect.ts accepts a subset meant to be valid PCRE2; this asks PCRE2 itself, the
// way varnishd will: every pattern becomes one `if (req.url ~ "^(?:PATTERN)$")` in a throwaway
// VCL, written with the compiler's escaping (vclRegex), and `varnishd -C` compiles it. VCC
// stops at the first bad regex and names its line, so that pattern gets PCRE2's message and the
// rest are compiled again without it: N new patterns cost one run, plus one per bad pattern.
// Verdicts are cached per pattern (bounded LRU): a steady config costs no run at all.
import type { Logger } from 'pino';
import type { RegexVerdicts } from '../ir/regex-dialect.ts';
import { vclRegex, VclValueError } from '../vcl/escape.ts';
import { vccCheck, VccUnavailableError, type VccCheckOptions, type VccResult } from './vcc-check.ts';

export interface RegexCheckerOptions extends VccCheckOptions {
  /** Verdicts kept; default 10 000 patterns. */
  cacheSize?: number;
  /** Patterns per throwaway VCL; default 1 000. */
  batchSize?: number;
  logger?: Logger;
  /** Test seam: replaces `varnishd -C`. */
  compile?: (vcl: string) => Promise<VccResult>;
}

export const DEFAULT_REGEX_CACHE_SIZE = 10_000;
const DEFAULT_BATCH_SIZE = 1_000;
/** Lines before the first pattern in the throwaway VCL (see batchVcl). */
const HEADER_LINES = 3;

export interface RegexCheckResult {
  /** PCRE2's verdict for every pattern asked about whose check could run. */
  verdicts: RegexVerdicts;
  /** Set when varnishd -C could not be run: the patterns it did not decide count as valid. */
  unavailable?: string;
  /** varnishd -C runs this check took (0 when every verdict was cached). */
  runs: number;
}

export class RegexChecker {
  private readonly opts: RegexCheckerOptions;
  private readonly cache = new Map<string, string | null>();
  private readonly limit: number;

  constructor(opts: RegexCheckerOptions = {}) {
    this.opts = opts;
    this.limit = Math.max(1, opts.cacheSize ?? DEFAULT_REGEX_CACHE_SIZE);
  }

  /** Cached verdicts (a pattern never checked counts as valid). */
  get size(): number {
    return this.cache.size;
  }

  /** Decides every pattern not in the cache; the verdicts returned cover all of `patterns`. */
  async check(patterns: Iterable<string>): Promise<RegexCheckResult> {
    const asked = [...new Set(patterns)];
    const known = new Map<string, string | null>();
    const unknown: string[] = [];
    for (const p of asked) {
      const hit = this.lookup(p);
      if (hit === undefined) unknown.push(p);
      else known.set(p, hit);
    }
    const size = this.opts.batchSize ?? DEFAULT_BATCH_SIZE;
    let runs = 0;
    let unavailable: string | undefined;
    for (let i = 0; i < unknown.length && unavailable === undefined; i += size) {
      try {
        runs += await this.checkBatch(unknown.slice(i, i + size), known);
      } catch (err) {
        if (!(err instanceof VccUnavailableError)) throw err;
        unavailable = err.message;
        this.opts.logger?.warn({ event: 'regex-check-unavailable' }, `regexes not checked with PCRE2: ${err.message}`);
      }
    }
    return { verdicts: (p) => known.get(p) ?? null, runs, ...(unavailable !== undefined ? { unavailable } : {}) };
  }

  private async checkBatch(batch: string[], out: Map<string, string | null>): Promise<number> {
    let pending: string[] = [];
    for (const p of batch) {
      try {
        vclRegex(anchored(p));
        pending.push(p);
      } catch (err) {
        if (!(err instanceof VclValueError)) throw err;
        this.remember(p, err.message, out);
      }
    }
    let runs = 0;
    while (pending.length > 0) {
      runs++;
      const result = await (this.opts.compile ?? ((vcl) => vccCheck(vcl, this.opts)))(batchVcl(pending));
      if (result.ok) {
        for (const p of pending) this.remember(p, null, out);
        break;
      }
      const index = result.line === undefined ? -1 : result.line - 1 - HEADER_LINES;
      if (index < 0 || index >= pending.length) {
        throw new VccUnavailableError(`varnishd -C refused the regex check VCL for another reason: ${result.message}`);
      }
      this.remember(pending[index], pcreMessage(result.message), out);
      pending = pending.filter((_, i) => i !== index);
    }
    return runs;
  }

  private lookup(p: string): string | null | undefined {
    if (!this.cache.has(p)) return undefined;
    const v = this.cache.get(p) as string | null;
    // Most recently used last: Map keeps insertion order, so the first key is the eviction candidate.
    this.cache.delete(p);
    this.cache.set(p, v);
    return v;
  }

  private remember(p: string, verdict: string | null, out: Map<string, string | null>): void {
    out.set(p, verdict);
    this.cache.delete(p);
    this.cache.set(p, verdict);
    while (this.cache.size > this.limit) this.cache.delete(this.cache.keys().next().value as string);
  }
}

/** The compiler's wrapping of a user regex (src/vcl/compile.ts: path, header and query matches). */
function anchored(pattern: string): string {
  return `^(?:${pattern})$`;
}

/** One line per pattern, pattern i on line HEADER_LINES + 1 + i. */
function batchVcl(patterns: string[]): string {
  const lines = ['vcl 4.1;', 'backend vgw_none none;', 'sub vcl_recv {'];
  for (const p of patterns) lines.push(`  if (req.url ~ ${vclRegex(anchored(p))}) { return (synth(200)); }`);
  lines.push('}', '');
  return lines.join('\n');
}

/** "Regexp compilation error: invalid range in character class" -> "invalid range in character class". */
function pcreMessage(vccMessage: string): string {
  return vccMessage.replace(/^Regexp compilation error:\s*/, '');
}
