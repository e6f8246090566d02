// The one place where user strings become VCL source. Everything the compiler emits from
// Gateway API input goes through vclString(), vclRegex() or headerRef(); nothing else
// interpolates user data into VCL. test/unit/vcl-escape.test.ts fuzzes these functions.
//
// VCL has no escape sequences in string literals. "..." strings cannot hold `"` or newlines;
// long strings {"..."} can hold anything except the terminator `"}` and NUL. So a value is
// emitted as one or more long strings joined with `+`, split wherever `"` is followed by `}`.

export class VclValueError extends Error {
  override name = 'VclValueError';
}

// NUL ends a C string inside varnishd; the other control characters cannot appear in HTTP
// header values or URLs, so a value holding them could never match and is rejected early.
const FORBIDDEN = /[\u0000-\u0008\u000a-\u001f\u007f]/;

/** Why `value` cannot be used in VCL, or null when it can. */
export function vclStringProblem(value: string): string | null {
  const m = FORBIDDEN.exec(value);
  if (m) return `contains control character U+${m[0].charCodeAt(0).toString(16).padStart(4, '0')}`;
  return null;
}

/** A VCL STRING expression whose value is exactly `value`. */
export function vclString(value: string): string {
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
  const problem = vclStringProblem(pattern);
  if (problem) throw new VclValueError(`cannot use regex ${JSON.stringify(pattern.slice(0, 80))}: ${problem}`);
  if (!pattern.includes('"}')) return pattern.includes('"') || pattern.includes('{') || pattern.includes('}') ? `{"${pattern}"}` : `"${pattern}"`;
  // `"}` can be written as `"\}` inside a regex without changing what it matches.
  return `{"${pattern.replaceAll('"}', '"\\}')}"}`;
}

// Header names become part of VCL identifiers (req.http.NAME), so only characters VCL accepts
// there may pass. HTTP tokens allow a few more (e.g. "." or "!"); those are rejected with a
// clear message rather than silently mangled.
const HEADER_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;

export function headerNameProblem(name: string): string | null {
  if (HEADER_NAME.test(name)) return null;
  return `header name ${JSON.stringify(name.slice(0, 80))} is not supported: use letters, digits, "-" and "_" (at most 128)`;
}

/** `req.http.NAME`-style reference; the name is validated, never escaped. */
export function headerRef(object: 'req' | 'bereq' | 'resp' | 'beresp', name: string): string {
  const problem = headerNameProblem(name);
  if (problem) throw new VclValueError(problem);
  return `${object}.http.${name}`;
}
