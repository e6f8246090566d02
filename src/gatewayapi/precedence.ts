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

export function compareMatches(a: RankedMatch, b: RankedMatch): number {
  const pa = a.match.path;
  const pb = b.match.path;
  // 1. Exact path, then regex (longer pattern first), then prefix by length.
  if (pa.type !== pb.type) return PATH_RANK[pa.type] - PATH_RANK[pb.type];
  if (pa.value.length !== pb.value.length) return pb.value.length - pa.value.length;
  // 2. A method match beats none.
  const ma = a.match.method ? 1 : 0;
  const mb = b.match.method ? 1 : 0;
  if (ma !== mb) return mb - ma;
  // 3. More header matches, 4. more query param matches.
  if (a.match.headers.length !== b.match.headers.length) return b.match.headers.length - a.match.headers.length;
  if (a.match.queryParams.length !== b.match.queryParams.length) return b.match.queryParams.length - a.match.queryParams.length;
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
