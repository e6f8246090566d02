// A reference evaluator of the routing IR: which route a request reaches, decided in plain
// TypeScript from the documented semantics instead of from the generated VCL. The fuzz tests
// send the same requests to varnishd and require the same answer, so the compiler and this
// file keep each other honest. Pure: no I/O.
import type { IRMatch, IRRoute, IRSocket, IRValueMatch, IRVirtualHost, RoutingIR } from './types.ts';

export interface RequestToRoute {
  /** Host header as sent (any case, with or without a port). */
  host: string;
  /** Request target as sent: path, optionally followed by "?" and the query. */
  target: string;
  method: string;
  /** Header lines in order; names are compared case-insensitively, the first line counts. */
  headers: [string, string][];
}

export type RoutingDecision =
  | { kind: 'route'; id: string; route: IRRoute; vhost: IRVirtualHost }
  | { kind: 'status'; status: 400 | 404; reason: string };

/** Choices in request path normalisation where more than one reading is defensible. */
export interface NormalizeOptions {
  /** Merge runs of "/" before removing dot segments ("/a//../b" -> "/b"), not after ("/a/b"). */
  mergeSlashesBeforeDotSegments: boolean;
  /** Rewrite the hex digits of percent-encodings that stay encoded to upper case ("%3a" -> "%3A"). */
  uppercaseEncodedHex: boolean;
  /** A "%" not followed by two hex digits: kept as it is, or the request is refused with 400. */
  malformedPercent: 'keep' | 'reject';
}

export const DEFAULT_NORMALIZE: NormalizeOptions = {
  mergeSlashesBeforeDotSegments: true,
  uppercaseEncodedHex: true,
  malformedPercent: 'reject',
};

export type NormalizedPath = { ok: true; path: string } | { ok: false; reason: string };

// RFC 3986 section 2.3: decoding these never changes what a URI means.
const UNRESERVED = /^[A-Za-z0-9\-._~]$/;

/**
 * The request path as routing sees it: encodings of separators and NUL are refused (a "/" or
 * "\" hidden in an encoding is how path-based rules get bypassed behind other proxies), encoded
 * unreserved characters decoded, repeated slashes merged and "." / ".." segments removed
 * (RFC 3986 section 5.2.4; ".." never climbs above the root).
 */
export function normalizePath(path: string, options: NormalizeOptions = DEFAULT_NORMALIZE): NormalizedPath {
  if (!path.startsWith('/')) return { ok: false, reason: 'path is not absolute' };
  if (path.includes('\\')) return { ok: false, reason: 'backslash in path' };
  // Clients never send a fragment; one in the request-target is refused, not guessed at.
  if (path.includes('#')) return { ok: false, reason: 'fragment in request-target' };
  const forbidden = /%(?:2f|5c|00)/i.exec(path);
  if (forbidden) return { ok: false, reason: `encoded separator or NUL ${forbidden[0]}` };
  let decoded = '';
  for (let i = 0; i < path.length; i++) {
    const c = path[i];
    if (c !== '%') {
      decoded += c;
      continue;
    }
    const hex = path.slice(i + 1, i + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) {
      if (options.malformedPercent === 'reject') return { ok: false, reason: 'malformed percent-encoding' };
      decoded += c;
      continue;
    }
    const ch = String.fromCharCode(parseInt(hex, 16));
    decoded += UNRESERVED.test(ch) ? ch : `%${options.uppercaseEncodedHex ? hex.toUpperCase() : hex}`;
    i += 2;
  }
  const merge = (p: string) => p.replace(/\/{2,}/g, '/');
  const out = options.mergeSlashesBeforeDotSegments ? removeDotSegments(merge(decoded)) : merge(removeDotSegments(decoded));
  return { ok: true, path: out };
}

/** RFC 3986 section 5.2.4, for an absolute path. */
export function removeDotSegments(path: string): string {
  const segments = path.split('/').slice(1);
  const out: string[] = [];
  segments.forEach((s, i) => {
    const last = i === segments.length - 1;
    if (s === '.' || s === '..') {
      if (s === '..') out.pop();
      // A trailing "." or ".." leaves the path ending in "/".
      if (last) out.push('');
      return;
    }
    out.push(s);
  });
  return `/${out.join('/')}`;
}

export interface RouteRequestOptions {
  /** Normalise the path before routing (the data plane does); false routes the raw path. */
  normalize: NormalizeOptions | false;
}

/** The route `request`, arriving on `socketName`, reaches in `ir`, or the status it gets. */
export function routeRequest(ir: RoutingIR, socketName: string, request: RequestToRoute, options: RouteRequestOptions = { normalize: DEFAULT_NORMALIZE }): RoutingDecision {
  const normalize = ir.pathNormalization !== 'Off' ? options.normalize : false;
  let path = request.target.replace(/[?#].*$/s, '');
  if (normalize) {
    const rawPath = request.target.replace(/\?.*$/s, '');
    const n = normalizePath(rawPath, normalize);
    if (!n.ok) return { kind: 'status', status: 400, reason: n.reason };
    path = n.path;
  }
  const vhost = lookupVhost(ir.sockets, socketName, request.host);
  if (!vhost) return { kind: 'status', status: 404, reason: 'no virtual host' };
  const query = queryOf(request.target);
  for (const route of vhost.routes) {
    if (matches(route.match, path, request, query, normalize)) return { kind: 'route', id: route.id, route, vhost };
  }
  return { kind: 'status', status: 404, reason: 'no route matched' };
}

/**
 * Exact "socket=host" first, then wildcard vhosts from the longest suffix (counted in labels),
 * then the socket's catch-all "*". Hosts are lower-cased (ASCII only) and lose their port.
 */
export function lookupVhost(sockets: IRSocket[], socketName: string, hostHeader: string): IRVirtualHost | undefined {
  const table = new Map<string, IRVirtualHost>();
  const depths = new Set<number>();
  for (const s of sockets) {
    for (const v of s.vhosts) {
      table.set(vhostKey(s.name, v.hostname), v);
      if (v.hostname.startsWith('*.')) depths.add(v.hostname.split('.').length - 1);
    }
  }
  const host = asciiLower(hostHeader.replace(/:[0-9]*$/, ''));
  const exact = table.get(`${socketName}=${host}`);
  if (exact) return exact;
  const labels = host.split('.');
  for (const d of [...depths].sort((a, b) => b - a)) {
    // The wildcard stands for at least one character before the suffix's d labels, and every
    // label of the suffix is non-empty.
    if (labels.length < d + 1) continue;
    const suffix = labels.slice(-d);
    const before = labels.slice(0, -d).join('.');
    if (before === '' || suffix.some((l) => l === '')) continue;
    const v = table.get(`${socketName}*${suffix.join('.')}`);
    if (v) return v;
  }
  return table.get(`${socketName}*`);
}

function vhostKey(socket: string, hostname: string): string {
  if (hostname === '*') return `${socket}*`;
  if (hostname.startsWith('*.')) return `${socket}*${hostname.slice(2)}`;
  return `${socket}=${hostname}`;
}

const asciiLower = (s: string) => s.replace(/[A-Z]/g, (c) => c.toLowerCase());

/** Query parameters in order, as raw (still encoded) name/value pairs; "a" without "=" has no value. */
function queryOf(target: string): [string, string | undefined][] {
  const q = target.indexOf('?');
  if (q < 0) return [];
  return target
    .slice(q + 1)
    .replace(/#.*$/s, '')
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      return eq < 0 ? [pair, undefined] : [pair.slice(0, eq), pair.slice(eq + 1)];
    });
}

function matches(m: IRMatch, path: string, request: RequestToRoute, query: [string, string | undefined][], normalize: NormalizeOptions | false): boolean {
  if (!pathMatches(routePath(m.path, normalize), path)) return false;
  if (m.method !== undefined && m.method !== request.method) return false;
  for (const h of m.headers) {
    const line = request.headers.find(([name]) => name.toLowerCase() === h.name.toLowerCase());
    if (!line || !valueMatches(h, line[1])) return false;
  }
  for (const q of m.queryParams) {
    // The first occurrence of the parameter counts.
    const param = query.find(([name, value]) => name === q.name && value !== undefined);
    if (!param || !valueMatches(q, param[1] as string)) return false;
  }
  return true;
}

/**
 * Exact and PathPrefix values are compared with normalised request paths, so they are
 * normalised too ("/a//b" matches what "/a/b" matches). One that cannot be normalised (an
 * encoded "/") matches nothing: requests spelled that way are refused.
 */
function routePath(p: IRMatch['path'], normalize: NormalizeOptions | false): IRMatch['path'] | null {
  if (!normalize || p.type === 'RegularExpression') return p;
  const n = normalizePath(p.value, normalize);
  if (!n.ok) return null;
  return { type: p.type, value: p.type === 'PathPrefix' && n.path !== '/' ? n.path.replace(/\/+$/, '') : n.path };
}

function pathMatches(p: IRMatch['path'] | null, path: string): boolean {
  if (p === null) return false;
  if (p.type === 'Exact') return path === p.value;
  if (p.type === 'PathPrefix') {
    // Segment-aware: "/foo" matches "/foo" and "/foo/bar", never "/foobar".
    if (p.value === '/') return true;
    return path === p.value || path.startsWith(`${p.value}/`);
  }
  return anchored(p.value).test(path);
}

function valueMatches(v: IRValueMatch, actual: string): boolean {
  return v.type === 'Exact' ? actual === v.value : anchored(v.value).test(actual);
}

const compiled = new Map<string, RegExp>();
/** `^(?:pattern)$`; the patterns the fuzzers route with mean the same in JavaScript and PCRE2. */
function anchored(pattern: string): RegExp {
  let re = compiled.get(pattern);
  if (!re) {
    re = new RegExp(`^(?:${pattern})$`);
    if (compiled.size > 10_000) compiled.clear();
    compiled.set(pattern, re);
  }
  return re;
}
