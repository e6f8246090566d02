// The regular expressions of an HTTPRoute, and PCRE2's verdict on them. The dialect check itself
// (regexProblem) is in src/ir/regex-dialect.ts, shared with the IR schema.
import type { RegexVerdicts } from '../ir/regex-dialect.ts';
import type { HTTPRoute } from './types.ts';

export type { RegexVerdicts };

/** One regex of a route, with the field it came from. */
export interface RouteRegex {
  field: string;
  pattern: string;
}

/** Every RegularExpression match value of a route (path, headers, query parameters). */
export function routeRegexes(route: HTTPRoute): RouteRegex[] {
  const out: RouteRegex[] = [];
  (route.spec.rules ?? []).forEach((rule, r) => {
    (rule.matches ?? []).forEach((m, i) => {
      const where = `spec.rules[${r}].matches[${i}]`;
      if (m.path?.type === 'RegularExpression' && typeof m.path.value === 'string') out.push({ field: `${where}.path.value`, pattern: m.path.value });
      (m.headers ?? []).forEach((h, j) => {
        if (h.type === 'RegularExpression' && typeof h.value === 'string') out.push({ field: `${where}.headers[${j}].value`, pattern: h.value });
      });
      (m.queryParams ?? []).forEach((q, j) => {
        if (q.type === 'RegularExpression' && typeof q.value === 'string') out.push({ field: `${where}.queryParams[${j}].value`, pattern: q.value });
      });
    });
  });
  return out;
}


/** The first regex of `route` that PCRE2 refused, as a message naming the field; null if none. */
export function pcreProblem(route: HTTPRoute, verdicts: RegexVerdicts, regexes: readonly RouteRegex[] = routeRegexes(route)): string | null {
  for (const { field, pattern } of regexes) {
    const problem = verdicts(pattern);
    if (problem) return `${field}: invalid regular expression: PCRE2: ${problem}`;
  }
  return null;
}
