// User regexes run inside varnishd (PCRE2, bounded by pcre2_match_limit / pcre2_depth_limit,
// which the runtime sets). We accept the RE2-compatible subset that Gateway API users expect:
// no backreferences and no lookaround, which are also what makes backtracking explode.

const MAX_REGEX_LENGTH = 1024;

export function regexProblem(pattern: string): string | null {
  if (pattern.length === 0) return 'must not be empty';
  if (pattern.length > MAX_REGEX_LENGTH) return `longer than ${MAX_REGEX_LENGTH} characters`;
  if (/\\[1-9]|\\k</.test(pattern)) return 'backreferences are not supported';
  if (/\(\?<?[=!]/.test(pattern)) return 'lookahead and lookbehind are not supported';
  if (/\(\?[^:)]/.test(pattern.replace(/\(\?P?<[A-Za-z_]\w*>/g, '('))) return 'inline flags and other (?...) groups are not supported';
  try {
    new RegExp(pattern);
  } catch (err) {
    return (err as Error).message.replace(/^Invalid regular expression: /, '');
  }
  return null;
}
