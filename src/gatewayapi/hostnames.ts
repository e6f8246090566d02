// Hostname patterns as Gateway API defines them: exact names, "*.suffix" wildcards that match
// one or more leading labels (never the apex), and "*" for "no hostname given".
import { ANY_HOST, patternCovers } from '../ir/hostname-patterns.ts';

// The hostname rule itself is shared with the IR schema (src/ir/limits.ts), the pattern
// semantics with the IR merge (src/ir/hostname-patterns.ts).
export { validHostname } from '../ir/limits.ts';
export { ANY_HOST, hostMatches, isWildcard, patternCovers, specificity } from '../ir/hostname-patterns.ts';

/**
 * Hostnames a route serves through a listener: the intersection of the route's hostnames with
 * the listener's. Empty when they share none (the route then does not attach there).
 */
export function intersectHostnames(listenerHostname: string | undefined, routeHostnames: string[]): string[] {
  const listener = listenerHostname ?? ANY_HOST;
  if (routeHostnames.length === 0) return [listener];
  const out = new Set<string>();
  for (const h of routeHostnames) {
    if (patternCovers(listener, h)) out.add(h);
    else if (patternCovers(h, listener)) out.add(listener);
  }
  return [...out];
}
