// The one place where input values become VCL source. Everything the compiler emits from
// Gateway API input, the routing IR or endpoints goes through vclString(), vclRegex() or
// headerRef() (strings) or the typed emitters below (numbers, ports, generated names); nothing
// else interpolates such data into VCL (test/unit/vcl-emitters.test.ts scans the compiler).
// test/unit/vcl-escape.test.ts fuzzes the string functions.
//
// VCL has no escape sequences in string literals. "..." strings cannot hold `"` or newlines;
// long strings {"..."} can hold anything except the terminator `"}` and NUL. So a value is
// emitted as one or more long strings joined with `+`, split wherever `"` is followed by `}`.
import { controlCharacterProblem, headerNameProblem } from '../ir/limits.ts';

export class VclValueError extends Error {
  override name = 'VclValueError';
}

// The value rules (control characters, header names) are the ones the translator and the IR
// schema apply (src/ir/limits.ts), so a validated value never fails here.
export { headerNameProblem };

/** Why `value` cannot be used in VCL (NUL and other control characters), or null when it can. */
export const vclStringProblem: (value: string) => string | null = controlCharacterProblem;

/** A VCL STRING expression whose value is exactly `value`. */
export function vclString(value: string): string {
  if (typeof value !== 'string') throw new VclValueError(`expected a string, got ${typeof value}`);
  const problem = vclStringProblem(value);
  if (problem) throw new VclValueError(`cannot use ${JSON.stringify(value.slice(0, 80))} in VCL: ${problem}`);
  if (value === '') return '""';
  if (!value.includes('"') && !value.includes('\\') && !value.includes('{') && !value.includes('}')) {
    return `"${value}"`;
  }
  const parts: string[] = [];
  let start = 0;
  for (let i = 0; i < value.length - 1; i++) {
    if (value[i] === '"' && value[i + 1] === '}') {
      parts.push(value.slice(start, i + 1));
      start = i + 1;
    }
  }
  parts.push(value.slice(start));
  return parts.map((p) => `{"${p}"}`).join(' + ');
}

/** A PCRE pattern that matches `literal` character for character. */
export function regexLiteral(literal: string): string {
  return literal.replace(/[\\^$.|?*+()[\]{}\-/#\s]/g, (c) => {
    if (c === ' ') return '\\x20';
    if (c === '\t') return '\\t';
    return `\\${c}`;
  });
}

/**
 * VCL regex literal. VCC accepts only a single CSTR/long-string token after `~`, not an
 * expression, so the pattern must fit in one token: split patterns would not compile.
 */
export function vclRegex(pattern: string): string {
  if (typeof pattern !== 'string') throw new VclValueError(`expected a regex string, got ${typeof pattern}`);
  const problem = vclStringProblem(pattern);
  if (problem) throw new VclValueError(`cannot use regex ${JSON.stringify(pattern.slice(0, 80))}: ${problem}`);
  if (!pattern.includes('"}')) return pattern.includes('"') || pattern.includes('{') || pattern.includes('}') ? `{"${pattern}"}` : `"${pattern}"`;
  // `"}` can be written as `"\}` inside a regex without changing what it matches.
  return `{"${pattern.replaceAll('"}', '"\\}')}"}`;
}

/** `req.http.NAME`-style reference; the name is validated, never escaped. */
export function headerRef(object: 'req' | 'bereq' | 'resp' | 'beresp', name: string): string {
  const problem = headerNameProblem(name);
  if (problem) throw new VclValueError(problem);
  return `${object}.http.${name}`;
}

// Typed emitters: the only way a number or a generated name reaches VCL. Each accepts exactly
// its type (a JavaScript number of the right kind within bounds, or a name of the generated
// shape) and throws VclValueError on anything else, so a value that slipped past a schema
// (a string, NaN, Infinity, a fraction where an integer belongs) can never become VCL text.

function describe(value: unknown): string {
  if (typeof value === 'string') return `string ${JSON.stringify(value.slice(0, 80))}`;
  if (typeof value === 'number') return String(value);
  return typeof value;
}

/** A VCL INT literal: `n` must be a safe integer in [min, max]. */
export function vclInt(n: unknown, min: number, max: number): string {
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new VclValueError(`expected an integer ${min}-${max}, got ${describe(n)}`);
  }
  return String(n);
}

/** Durations above this are refused: VCL has no use for them and they hint at a unit mistake. */
export const MAX_VCL_DURATION_MS = 7 * 86_400_000;

/** A VCL DURATION literal in milliseconds ("1500ms"): an integer 0 to MAX_VCL_DURATION_MS. */
export function vclDurationMs(ms: unknown): string {
  return `${vclInt(ms, 0, MAX_VCL_DURATION_MS)}ms`;
}

/**
 * A VCL REAL literal: a finite number in [min, max], written with at most 6 decimals and never
 * in exponent notation (VCC reads digits and one dot only).
 */
export function vclReal(x: unknown, min: number, max: number): string {
  if (typeof x !== 'number' || !Number.isFinite(x) || x < min || x > max) {
    throw new VclValueError(`expected a number ${min}-${max}, got ${describe(x)}`);
  }
  // VCC accepts at most three decimals in a REAL literal ("Too many digits for real").
  const fixed = x.toFixed(3).replace(/\.?0+$/, '');
  return fixed === '' || fixed === '-0' ? '0' : fixed;
}

/** A TCP port as VCL text (digits only): an integer 1-65535. */
export function vclPort(port: unknown): string {
  return vclInt(port, 1, 65535);
}

/** An HTTP status code as a VCL INT literal, within [min, max] (e.g. 300-399 for redirects). */
export function vclStatus(code: unknown, min = 100, max = 599): string {
  return vclInt(code, Math.max(100, min), Math.min(999, max));
}

const GENERATED_PREFIX = /^vgw_[a-z][a-z0-9_]*$/;

/** A numbered generated identifier, `${prefix}${index}` (vgw_s3, vgw_vhosts_0). */
export function vclIdent(prefix: string, index: unknown): string {
  if (!GENERATED_PREFIX.test(prefix)) throw new VclValueError(`${JSON.stringify(prefix)} is not a generated identifier prefix`);
  return `${prefix}${vclInt(index, 0, Number.MAX_SAFE_INTEGER)}`;
}

// VCL identifiers: a letter, then letters, digits, "_" and "-". Generated names are bounded so a
// hostile value cannot make a huge symbol either.
const IDENTIFIER = /^[A-Za-z][A-Za-z0-9_-]{0,127}$/;

/** A name emitted as a VCL symbol (backend names, VCL labels): checked, never escaped. */
export function vclName(name: unknown): string {
  if (typeof name !== 'string' || !IDENTIFIER.test(name)) throw new VclValueError(`${describe(name)} is not a VCL identifier`);
  return name;
}
