// HTTPRoute match precedence, in the order the HTTPRoute spec lists its criteria. It is a
// lexicographic comparison, never an additive score: a longer prefix always beats any number
// of header matches.
import type { IRMatch } from '../ir/types.ts';

export interface RankedMatch {
  match: IRMatch;
  routeCreated: string;
  routeKey: string;
  ruleIndex: number;
  matchIndex: number;
}

// Regexes rank between exact paths and prefixes: a catch-all "/" prefix must not shadow them.
const PATH_RANK = { Exact: 0, RegularExpression: 1, PathPrefix: 2 } as const;

/**
 * The first of the spec's specificity criteria on which two matches differ, as the order
 * (negative: `a` first) and the rule that decided; undefined when they tie on all of them and
 * only the tie-breakers (route age, name, rule and match order) remain. `vgw explain` shows the
 * rule; compareMatches orders by it.
 */
export function specificityDifference(a: IRMatch, b: IRMatch): { order: number; rule: string } | undefined {
  const pa = a.path;
  const pb = b.path;
  // 1. Exact path, then regex (longer pattern first), then prefix by length.
  if (pa.type !== pb.type) return { order: PATH_RANK[pa.type] - PATH_RANK[pb.type], rule: 'path match type: Exact, then RegularExpression, then PathPrefix' };
  if (pa.value.length !== pb.value.length) return { order: pb.value.length - pa.value.length, rule: `longer ${pa.type === 'PathPrefix' ? 'prefix' : pa.type === 'Exact' ? 'path' : 'pattern'} first` };
  // 2. A method match beats none.
  const ma = a.method ? 1 : 0;
  const mb = b.method ? 1 : 0;
  if (ma !== mb) return { order: mb - ma, rule: 'a method match beats none' };
  // 3. More header matches, 4. more query param matches.
  if (a.headers.length !== b.headers.length) return { order: b.headers.length - a.headers.length, rule: 'more header matches first' };
  if (a.queryParams.length !== b.queryParams.length) return { order: b.queryParams.length - a.queryParams.length, rule: 'more query parameter matches first' };
  return undefined;
}

export function compareMatches(a: RankedMatch, b: RankedMatch): number {
  const specific = specificityDifference(a.match, b.match);
  if (specific) return specific.order;
  // Tie-breakers: oldest route, then namespace/name alphabetically, then rule and match order.
  if (a.routeCreated !== b.routeCreated) {
    if (!a.routeCreated) return 1;
    if (!b.routeCreated) return -1;
    return Date.parse(a.routeCreated) - Date.parse(b.routeCreated) || (a.routeCreated < b.routeCreated ? -1 : 1);
  }
  if (a.routeKey !== b.routeKey) return a.routeKey < b.routeKey ? -1 : 1;
  if (a.ruleIndex !== b.ruleIndex) return a.ruleIndex - b.ruleIndex;
  return a.matchIndex - b.matchIndex;
}
