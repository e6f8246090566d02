// Hostname patterns as Gateway API defines them: exact names, "*.suffix" wildcards that match
// one or more leading labels (never the apex), and "*" for "no hostname given". Shared by the
// translator (which listener owns a route hostname) and the IR merge (which Gateway's vhost
// serves a hostname on a socket several Gateways share), so both decide ownership alike.

export const ANY_HOST = '*';

export function isWildcard(pattern: string): boolean {
  return pattern.startsWith('*.');
}

/** Does hostname pattern `pattern` match the concrete host `host`? */
export function hostMatches(pattern: string, host: string): boolean {
  if (pattern === ANY_HOST) return true;
  if (isWildcard(pattern)) return host.endsWith(pattern.slice(1)) && host.length > pattern.length - 1;
  return pattern === host;
}

/**
 * Does `outer` accept every host that `inner` accepts? Used to decide which listener owns a
 * route hostname. Both are patterns ("*", "*.x", or exact).
 */
export function patternCovers(outer: string, inner: string): boolean {
  if (outer === ANY_HOST) return true;
  if (inner === ANY_HOST) return false;
  if (!isWildcard(outer)) return outer === inner;
  if (!isWildcard(inner)) return hostMatches(outer, inner);
  // "*.a.b" covers "*.a.b" and "*.x.a.b".
  return inner === outer || inner.endsWith(outer.slice(1));
}

/**
 * Higher is more specific: exact names beat wildcards, longer wildcards beat shorter ones.
 * Two different patterns that both cover one hostname never tie, so "the most specific
 * covering pattern" does not depend on the order the patterns are looked at.
 */
export function specificity(pattern: string): number {
  if (pattern === ANY_HOST) return 0;
  if (isWildcard(pattern)) return 1 + pattern.length;
  return 1_000 + pattern.length;
}
