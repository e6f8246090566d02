// User regexes run inside varnishd: PCRE2 (no UTF mode, so patterns match bytes), bounded by
// pcre2_match_limit, and always wrapped by the VCL compiler as `^(?:PATTERN)$`. Gateway API
// users write them expecting RE2/ECMAScript-like syntax, and several constructs mean different
// things in PCRE2 or make it refuse the pattern. So a pattern is read token by token against an
// allow-list of constructs that mean the same in PCRE2 and ECMAScript, cannot escape the group
// the compiler wraps them in, and cannot make backtracking explode (no backreferences, no
// lookaround). Anything not on the list is rejected with the construct and its position.
// docs/regex.md lists the dialect. PCRE2 itself has the last word: src/varnish/regex-check.ts
// compiles accepted patterns with varnishd before a config is built. The dialect lives with the
// IR because both the translator and the IR schema apply it.
import { controlCharacterProblem, MAX_REGEX_LENGTH } from './limits.ts';

/** PCRE2's own limit for {n,m} counts. */
const MAX_REPEAT = 65535;
/** PCRE2 names: at most 32 characters, a letter or underscore first. */
const GROUP_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,31}$/;
const POSIX_CLASSES = new Set(['alnum', 'alpha', 'ascii', 'blank', 'cntrl', 'digit', 'graph', 'lower', 'print', 'punct', 'space', 'upper', 'word', 'xdigit']);
/** Escapes that stand for a set of characters, the same in both dialects. */
const CLASS_ESCAPES = new Set(['d', 'D', 'w', 'W', 's', 'S']);
/** Escapes for one control character, the same in both dialects. */
const CHAR_ESCAPES: Record<string, number> = { t: 9, n: 10, f: 12, r: 13 };

/** Why a letter or digit escape is refused: what it means in PCRE2 that it does not elsewhere. */
const ESCAPE_REASONS: [RegExp, string][] = [
  [/^[1-9]$/, 'backreferences are not supported'],
  [/^0$/, 'octal escapes are not supported (use \\xHH)'],
  [/^[gk]$/, 'backreferences are not supported'],
  [/^[QE]$/, '\\Q...\\E quoting is not supported (escape each character)'],
  [/^c$/, '\\c control escapes are not supported'],
  [/^o$/, 'octal escapes are not supported (use \\xHH)'],
  [/^[LlUuN]$/, 'PCRE2 does not support this escape'],
  [/^[pP]$/, 'Unicode property escapes are not supported (patterns match bytes)'],
  [/^[vhVHRX]$/, 'PCRE2-only character type escapes are not supported'],
  [/^[AzZGKC]$/, 'PCRE2-only assertions and escapes are not supported'],
  [/^[ae]$/, 'PCRE2-only character escapes are not supported (use \\xHH)'],
];

class Reject extends Error {}

/** Why `pattern` is not accepted, or null when it is. */
export function regexProblem(pattern: string): string | null {
  if (pattern.length === 0) return 'must not be empty';
  if (pattern.length > MAX_REGEX_LENGTH) return `longer than ${MAX_REGEX_LENGTH} characters`;
  if (controlCharacterProblem(pattern)) return 'contains control characters';
  try {
    new PatternReader(pattern).read();
    return null;
  } catch (err) {
    if (err instanceof Reject) return err.message;
    throw err;
  }
}

/** What the previous token was, for deciding whether a quantifier may follow. */
type Last = 'none' | 'atom' | 'byte-of-multibyte' | 'quantifier' | 'assertion';

class PatternReader {
  private readonly p: string;
  private i = 0;
  private depth = 0;
  private readonly names = new Set<string>();

  constructor(pattern: string) {
    this.p = pattern;
  }

  private fail(at: number, construct: string, reason: string): never {
    // Control characters never get here (refused before the pattern is read), so the
    // construct can be quoted as is: users see \Q, not a JSON-escaped \\Q.
    throw new Reject(`"${construct}" at character ${at + 1}: ${reason}`);
  }

  read(): void {
    let last: Last = 'none';
    const groupStarts: number[] = [];
    while (this.i < this.p.length) {
      const at = this.i;
      const c = this.p[at];
      if (c === '(') {
        this.group(at);
        groupStarts.push(at);
        this.depth++;
        last = 'none';
      } else if (c === ')') {
        if (this.depth === 0) this.fail(at, ')', 'unmatched closing parenthesis');
        this.depth--;
        groupStarts.pop();
        this.i++;
        last = 'atom';
      } else if (c === '|') {
        this.i++;
        last = 'none';
      } else if (c === '*' || c === '+' || c === '?' || c === '{') {
        this.quantifier(at, last);
        last = 'quantifier';
      } else if (c === '^' || c === '$') {
        this.i++;
        last = 'assertion';
      } else if (c === '[') {
        this.charClass(at);
        last = 'atom';
      } else if (c === '\\') {
        last = this.escape(at);
      } else {
        this.i++;
        last = c.charCodeAt(0) > 0x7f ? 'byte-of-multibyte' : 'atom';
      }
    }
    if (this.depth > 0) this.fail(groupStarts[groupStarts.length - 1], '(', 'unclosed group');
  }

  /** `(`, `(?:`, `(?<name>` and `(?P<name>`; every other `(?` or `(*` form is refused. */
  private group(at: number): void {
    const rest = this.p.slice(at);
    if (rest.startsWith('(*')) this.fail(at, '(*', 'PCRE2 verbs and start-of-pattern options are not supported');
    if (!rest.startsWith('(?')) {
      this.i = at + 1;
      return;
    }
    if (rest.startsWith('(?:')) {
      this.i = at + 3;
      return;
    }
    const named = /^\(\?P?<([^>]*)>/.exec(rest);
    if (named && !/^\(\?<[=!]/.test(rest)) {
      const name = named[1];
      if (!GROUP_NAME.test(name)) this.fail(at, named[0], 'group names need a letter or "_" first, then letters, digits or "_" (at most 32)');
      if (this.names.has(name)) this.fail(at, named[0], `group name ${JSON.stringify(name)} is used twice`);
      this.names.add(name);
      this.i = at + named[0].length;
      return;
    }
    const construct = rest.slice(0, Math.min(rest.length, /^\(\?<[=!]/.test(rest) ? 4 : 3));
    if (/^\(\?(?:[=!]|<[=!])/.test(rest)) this.fail(at, construct, 'lookahead and lookbehind are not supported');
    if (/^\(\?P[=>]/.test(rest) || /^\(\?[&R0-9+-]/.test(rest)) this.fail(at, construct, 'backreferences and recursion are not supported');
    if (rest.startsWith('(?C')) this.fail(at, construct, 'callouts are not supported');
    if (rest.startsWith('(?#')) this.fail(at, construct, 'comments are not supported');
    if (/^\(\?[a-zA-Z^]/.test(rest)) this.fail(at, construct, 'inline flags are not supported');
    this.fail(at, construct, 'only (...), (?:...) and (?<name>...) groups are supported');
  }

  /** `*`, `+`, `?` and `{n}`, `{n,}`, `{n,m}`, optionally lazy (`?`); never possessive. */
  private quantifier(at: number, last: Last): void {
    const c = this.p[at];
    let end = at + 1;
    let construct = c;
    if (c === '{') {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(this.p.slice(at));
      if (!m) this.fail(at, '{', 'a literal "{" must be written \\{ (only {n}, {n,} and {n,m} are repetitions)');
      const min = Number(m[1]);
      const max = m[3] ? Number(m[3]) : m[2] ? Infinity : min;
      if (min > MAX_REPEAT || (max !== Infinity && max > MAX_REPEAT)) this.fail(at, m[0], `repetition counts are limited to ${MAX_REPEAT}`);
      if (max < min) this.fail(at, m[0], 'repetition counts out of order');
      end = at + m[0].length;
      construct = m[0];
    }
    if (last === 'none' || last === 'assertion') this.fail(at, construct, 'nothing to repeat');
    if (last === 'quantifier') this.fail(at, construct, 'a repetition cannot be repeated (possessive and nested quantifiers are not supported)');
    if (last === 'byte-of-multibyte') this.fail(at, construct, 'a repetition after a non-ASCII character would repeat only its last byte (wrap it in (?:...))');
    if (this.p[end] === '?') end++;
    if (this.p[end] === '+') this.fail(end, '+', 'possessive quantifiers are not supported');
    this.i = end;
  }

  /** An escape outside a character class. */
  private escape(at: number): Last {
    const e = this.p[at + 1];
    if (e === undefined) this.fail(at, '\\', 'a pattern cannot end with a backslash');
    this.i = at + 2;
    if (CLASS_ESCAPES.has(e)) return 'atom';
    if (e === 'b' || e === 'B') return 'assertion';
    if (e in CHAR_ESCAPES) return 'atom';
    if (e === 'x') {
      this.hexEscape(at);
      return 'atom';
    }
    this.otherEscape(at, e);
    return 'atom';
  }

  /** `\xHH`, exactly two hex digits (PCRE2 also takes one, or braces; ECMAScript does not). */
  private hexEscape(at: number): number {
    const m = /^\\x([0-9A-Fa-f]{2})/.exec(this.p.slice(at));
    if (!m) this.fail(at, this.p.slice(at, at + 4), 'write hex escapes as \\xHH with exactly two hex digits');
    this.i = at + 4;
    return parseInt(m[1], 16);
  }

  /** Escaped ASCII punctuation is a literal in both dialects; every letter or digit not handled above is refused. */
  private otherEscape(at: number, e: string): void {
    if (/[!-/:-@[-`{-~ ]/.test(e)) return;
    for (const [re, reason] of ESCAPE_REASONS) if (re.test(e)) this.fail(at, `\\${e}`, reason);
    if (e.charCodeAt(0) > 0x7f) this.fail(at, `\\${e}`, 'only ASCII characters may be escaped');
    this.fail(at, `\\${e}`, 'unknown escape (PCRE2 rejects it; write the character without a backslash)');
  }

  /**
   * `[...]`: literal ASCII characters, escapes, ranges between two single characters, POSIX
   * classes with a valid name. A `]` first (`[]...]`, `[^]`) and a bare `[` inside are refused
   * (PCRE2 and ECMAScript read them differently), and so is a `-` that is not a range between
   * two single characters, first, or last.
   */
  private charClass(at: number): void {
    let i = at + 1;
    if (this.p[i] === '^') i++;
    if (this.p[i] === ']') this.fail(i, ']', 'an empty class or a "]" first in a class is read differently by PCRE2; write \\]');
    // Previous item: a single character code (may start a range), a set, or nothing yet.
    let prev: { code: number } | 'set' | 'none' = 'none';
    let prevStart = i;
    let afterRange = false;
    for (;;) {
      const c = this.p[i];
      if (c === undefined) this.fail(at, '[', 'unterminated character class');
      if (c === ']') {
        this.i = i + 1;
        return;
      }
      if (c === '-' && prev !== 'none' && this.p[i + 1] !== ']') {
        if (prev === 'set' || afterRange) this.fail(i, '-', 'a "-" that does not join two single characters must be first, last or written \\-');
        const right = this.classItem(i + 1);
        if (right.item === 'set') this.fail(i, '-', 'a range cannot end in a character class escape or POSIX class (write \\-)');
        if (right.item.code < prev.code) this.fail(prevStart, this.p.slice(prevStart, right.next), 'range out of order in character class');
        i = right.next;
        prev = right.item;
        afterRange = true;
        continue;
      }
      const item = this.classItem(i);
      prevStart = i;
      i = item.next;
      prev = item.item;
      afterRange = false;
    }
  }

  /** One item of a character class at `i`: a single character or a set. */
  private classItem(i: number): { item: { code: number } | 'set'; next: number } {
    const c = this.p[i];
    if (c === undefined) this.fail(i - 1, '[', 'unterminated character class');
    if (c === '[') {
      const posix = /^\[:(\^?)([a-z]+):\]/.exec(this.p.slice(i));
      if (posix) {
        if (!POSIX_CLASSES.has(posix[2])) this.fail(i, posix[0], 'unknown POSIX class name');
        return { item: 'set', next: i + posix[0].length };
      }
      if (/^\[[:.=]/.test(this.p.slice(i))) this.fail(i, this.p.slice(i, i + 2), 'POSIX class syntax must be [:name:] with a valid name');
      this.fail(i, '[', 'a "[" inside a character class must be written \\[');
    }
    if (c === '\\') {
      const e = this.p[i + 1];
      if (e === undefined) this.fail(i, '\\', 'a pattern cannot end with a backslash');
      if (CLASS_ESCAPES.has(e)) return { item: 'set', next: i + 2 };
      if (e in CHAR_ESCAPES) return { item: { code: CHAR_ESCAPES[e] }, next: i + 2 };
      if (e === 'x') {
        const code = this.hexEscape(i);
        return { item: { code }, next: i + 4 };
      }
      if (e === 'b') this.fail(i, '\\b', 'write a backspace in a class as \\x08');
      this.otherEscape(i, e);
      return { item: { code: e.charCodeAt(0) }, next: i + 2 };
    }
    if (c.charCodeAt(0) > 0x7f) this.fail(i, c, 'non-ASCII characters in a class would match each of their bytes separately (use \\xHH for bytes)');
    return { item: { code: c.charCodeAt(0) }, next: i + 1 };
  }
}

/** PCRE2's verdict on a pattern the tokenizer accepted: its error message, or null when it compiles. */
export type RegexVerdicts = (pattern: string) => string | null;
