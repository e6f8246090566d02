// Routing IR + endpoints -> VCL. Pure and deterministic: the same input gives byte-identical
// output, so callers can skip reloads when nothing changed.
//
// Cost model (see docs/architecture.md): VCC is superlinear in the number of subs and `new`
// objects, so vhosts are not one sub each. A vmod_selector set maps "socket=host" to a vhost
// number in one trie lookup, and a balanced tree of integer comparisons inside a few chunk
// subs reaches that vhost's routes: O(log n) per request, O(n) to compile.
import { MAX_RETRY_ATTEMPTS } from '../ir/limits.ts';
import type { EndpointMap, IRAction, IRBackendRef, IRCors, IRHeaderModifier, IRMatch, IRPathModifier, IRRedirect, IRRetry, IRRoute, IRSocket, IRVirtualHost, IRValueMatch, RoutingIR } from '../ir/types.ts';
import { serviceKey } from '../ir/types.ts';
import { endpointBackend } from './backend-names.ts';
import { viaTlsProxy } from './backend-tls.ts';
import { headerRef, regexLiteral, VclValueError, vclDurationMs, vclIdent, vclInt, vclName, vclPort, vclReal, vclRegex, vclStatus, vclString } from './escape.ts';
import { LOG_FILTER_FAILURE, LOG_FILTERS, LOG_MIRROR, LOG_RETRY, LOG_TIMEOUT } from './log-records.ts';
import { misdirectedRequestVcl } from './misdirected.ts';
import { absoluteFormVcl, hostValidationVcl, normalizePath, pathNormalizationVcl, stripInternalHeadersVcl } from './normalize.ts';

/** Vhosts per chunk sub: keeps each generated function small and the sub count low. */
const VHOSTS_PER_SUB = 128;

// Headers the router uses to carry state through one request. A client's copies are removed
// on arrival and ours are removed before the backend request.
const H_HOST = 'req.http.x-vgw-host';
const H_PATH = 'req.http.x-vgw-path';
const H_ROUTE = 'req.http.x-vgw-route';
const H_RANDOM = 'req.http.x-vgw-random';
const H_LOCATION = 'req.http.x-vgw-location';
// Response-side work decided in vcl_recv and done in vcl_deliver / vcl_synth.
const H_RESP_RULE = 'req.http.x-vgw-rh';
const H_RESP_BACKEND = 'req.http.x-vgw-rhb';
const H_RESP_CURRENT = 'req.http.x-vgw-rh-cur';
const H_CORS_ORIGIN = 'req.http.x-vgw-cors';
const H_CORS_CREDENTIALS = 'req.http.x-vgw-cors-credentials';
const H_CORS_EXPOSE = 'req.http.x-vgw-cors-expose';
const H_PREFLIGHT = 'req.http.x-vgw-preflight';
const H_CORS_METHODS = 'req.http.x-vgw-cors-methods';
const H_CORS_HEADERS = 'req.http.x-vgw-cors-headers';
const H_CORS_MAX_AGE = 'req.http.x-vgw-cors-max-age';
// Backend-side policy, read once per backend task in vcl_backend_fetch (see BACKEND_VCL).
const H_TIMEOUT_REQUEST = 'req.http.x-vgw-treq';
const H_TIMEOUT_BACKEND = 'req.http.x-vgw-tbe';
const H_RETRY = 'req.http.x-vgw-retry';
const queryHeader = (i: number) => `req.http.x-vgw-q${i}`;
/** Set when path normalisation changed the path, so req.url is rewritten only then. */
const H_PATH_CHANGED = 'req.http.x-vgw-pn';
/** The IR socket (listener address:port) the request arrived on: local.socket, or for TLS the
 *  socket the terminator's frontend stands for. */
const H_SOCKET = 'req.http.x-vgw-socket';

/**
 * varnishd's socket for TLS connections: the TLS terminator (hitch) connects here with PROXY v2
 * for every HTTPS listener. IR socket names start with "a", so this name never collides.
 */
export const TLS_PROXY_SOCKET = 'vgw_tls';


/** A disabled ("0s") timeout still has to override varnishd's defaults: one day stands for "none". */
const NO_TIMEOUT = '86400s';
/** varnishd's defaults for the first_byte_timeout and connect_timeout parameters. */
const DEFAULT_FIRST_BYTE_TIMEOUT = '60s';
const DEFAULT_CONNECT_TIMEOUT = '3.5s';
/** Bounds of IR numbers, as the translator produces them (src/ir/limits.ts). */
const MAX_WEIGHT = 1_000_000;
const MAX_TIMEOUT_MS = 86_400_000;
const MAX_CORS_MAX_AGE = 86_400 * 365;
/** Tells an HTTP/1.1 client to close its connection after this response (see CompileVclOptions.draining). */
export const DRAINING_CLOSE = `set resp.http.Connection = ${vclString('close')};`;
/** Request bodies kept in memory so a retry can send them again. */
const RETRY_BODY_LIMIT = '1MB';

export interface CompileStats {
  vhosts: number;
  routes: number;
  backends: number;
}

export interface CompileVclOptions {
  /**
   * The VCL of a data plane that is going away (a gateway pod draining): every response,
   * synthetic ones included, carries `Connection: close`, so an HTTP/1.1 client ends its
   * keep-alive connection after the request in flight and opens its next one to a pod that
   * stays. varnishd closes the session after a response that says so. Routing is unchanged:
   * requests still arriving (endpoint removal takes time to propagate) are served as before.
   */
  draining?: boolean;
  /**
   * Loopback ports of the backend TLS proxy, by tlsProxyKey(service, endpoint). An endpoint of
   * a TLS service (IRService.tls) is reached through its port; one without a port is left out,
   * so a TLS backend is never spoken to in clear text.
   */
  tlsProxyPorts?: ReadonlyMap<string, number>;
}

export function compileVcl(ir: RoutingIR, endpoints: EndpointMap, options: CompileVclOptions = {}): { vcl: string; stats: CompileStats } {
  const out = new Writer();
  const normalize = ir.pathNormalization !== 'Off';
  const vhosts = ir.sockets.flatMap((s) => s.vhosts.map((v) => ({ socket: s, vhost: normalize ? withNormalPaths(v) : v })));
  let routeCount = 0;
  let maxQueryHeaders = 0;
  for (const { vhost } of vhosts) {
    routeCount += vhost.routes.length;
    maxQueryHeaders = Math.max(maxQueryHeaders, queryNames(vhost).length);
  }
  const sleeps = vhosts.some(({ vhost }) => vhost.routes.some((r) => r.action.retry?.backoffMs));
  const tlsSockets = ir.sockets.filter((s) => s.tls);

  out.line('vcl 4.1;');
  out.line('# Generated by vgw from the routing IR. Do not edit: changes are overwritten.');
  out.line('import std;');
  out.line('import directors;');
  out.line('import header;');
  out.line('import selector;');
  out.line('import var;');
  // vmod_vtc's sleep is the only way to wait in VCL; it is loaded only for retry backoff.
  if (sleeps) out.line('import vtc;');
  // vmod_proxy reads what the terminator sent in the PROXY v2 header (TLS, SNI).
  if (tlsSockets.length) out.line('import proxy;');
  out.line();
  // Requests that reach no route never need a backend; `none` keeps VCL valid without one.
  out.line('backend vgw_none none;');

  // One backend per distinct endpoint, shared by every Service that lists it. A shard holds
  // only the Services its routes use, so an endpoint change recompiles only those shards.
  // Backends are named after their address (backend-names.ts), so a name means the same
  // endpoint in every VCL and the stats collector labels counters from the name alone; two
  // spellings of one IPv6 address are one backend. Anything else (EndpointSlices of type FQDN
  // are skipped upstream, so this should not happen) is numbered in order of appearance.
  const used = usedServices(vhosts.map((v) => v.vhost));
  const endpointNames = new Map<string, string>();
  const declared = new Set<string>();
  let unnamed = 0;
  // A TLS service's endpoints are the proxy's loopback ports (backend-tls.ts).
  const serviceEndpoints = ir.services.map((svc, i) => (used.has(i) ? viaTlsProxy(svc, endpoints.get(serviceKey(svc)) ?? [], options.tlsProxyPorts) : []));
  const ctx: EmitContext = { responses: new ResponseModifiers(), services: ir.services, hasEndpoints: (i) => serviceEndpoints[i].length > 0 };
  for (const list of serviceEndpoints) {
    for (const ep of list) {
      const id = `${ep.address}|${ep.port}`;
      if (endpointNames.has(id)) continue;
      const named = endpointBackend(ep.address, ep.port);
      const name = named?.name ?? `vgw_e${unnamed++}`;
      endpointNames.set(id, name);
      if (declared.has(name)) continue;
      declared.add(name);
      out.line(`backend ${vclName(name)} { .host = ${vclString(named?.host ?? ep.address)}; .port = ${vclString(vclPort(ep.port))}; }`);
    }
  }
  out.line();

  out.open('sub vcl_init {');
  ir.services.forEach((svc, i) => {
    if (!used.has(i)) return;
    out.line(`# ${comment(serviceKey(svc))}`);
    out.line(`new ${vclIdent('vgw_s', i)} = directors.round_robin();`);
    // Once per backend: two spellings of one address must not double its share.
    const added = new Set<string>();
    for (const ep of serviceEndpoints[i]) {
      const name = endpointNames.get(`${ep.address}|${ep.port}`)!;
      if (added.has(name)) continue;
      added.add(name);
      out.line(`${vclIdent('vgw_s', i)}.add_backend(${vclName(name)});`);
    }
  });
  out.line('new vgw_hosts = selector.set(case_sensitive = true);');
  vhosts.forEach(({ socket, vhost }, id) => out.line(`vgw_hosts.add(${vclString(vhostKey(socket, vhost))}, integer = ${vclInt(id, 0, Number.MAX_SAFE_INTEGER)});`));
  if (vhosts.length === 0) out.line('vgw_hosts.add("", integer = -1);');
  out.close();
  out.line();

  out.open('sub vcl_recv {');
  // Requests are put in canonical form (or refused) before anything reads them: see normalize.ts.
  for (const l of stripInternalHeadersVcl('req')) out.line(l);
  for (const l of absoluteFormVcl()) out.line(l);
  for (const l of hostValidationVcl()) out.line(l);
  out.line(`set ${H_HOST} = std.tolower(regsub(req.http.host, ":[0-9]*$", ""));`);
  if (normalize) {
    out.line(`set ${H_PATH} = regsub(req.url, "\\?.*$", "");`);
    for (const l of pathNormalizationVcl(H_PATH, H_PATH_CHANGED)) out.line(l);
    // The backend gets the normalised path; the query stays byte for byte.
    out.line(`if (${H_PATH_CHANGED}) { set req.url = ${H_PATH} + regsub(req.url, "^[^?]*", ""); }`);
  } else {
    out.line(`set ${H_PATH} = regsub(req.url, "[?#].*$", "");`);
  }
  emitSocketLookup(out, tlsSockets);
  for (const l of misdirectedRequestVcl(tlsSockets, TLS_PROXY_SOCKET, H_SOCKET, H_HOST)) out.line(l);
  emitHostLookup(out, ir.sockets);
  out.line('call vgw_dispatch;');
  // Every route's branch sets the route header first; a client's copy was removed on arrival.
  out.line(`if (!${H_ROUTE}) { return (synth(404)); }`);
  // WebSocket needs the connection handed over: pipe, after routing, request filters and the
  // backend choice are done. Only a GET asking for the upgrade in Connection qualifies
  // (RFC 6455 4.1); vcl_pipe asks the backend to close unless it switches protocols, so a
  // refused upgrade cannot leave a raw tunnel behind for later requests.
  out.open(`if (req.method == "GET" && req.http.Upgrade ~ "(?i)^\\s*websocket\\s*$" && req.http.Connection ~ ${vclRegex('(?i)(?:^|,)\\s*upgrade\\s*(?:,|$)')}) {`);
  // bereq cannot be rewritten header by header in vcl_pipe, and it is copied from req: the
  // router's state goes now, it is not needed once the tunnel is decided.
  for (const l of stripInternalHeadersVcl('req')) out.line(l);
  out.line('return (pipe);');
  out.close();
  // Anything else is plain HTTP: no backend may switch protocols on a pooled connection.
  out.line('unset req.http.Upgrade;');
  out.line('if (req.method != "GET" && req.method != "HEAD") { return (pass); }');
  out.line('if (req.http.Authorization || req.http.Cookie) { return (pass); }');
  out.line('return (hash);');
  out.close();
  out.line();

  // Routing decisions depend on more than host and URL (headers, method, query), so the
  // route is part of the cache key.
  out.open('sub vcl_hash {');
  out.line(`hash_data(${H_ROUTE});`);
  out.close();
  out.line();

  out.open('sub vcl_pipe {');
  out.line('set bereq.http.Upgrade = req.http.Upgrade;');
  // A backend that answers 101 switches protocols; one that refuses the upgrade answers once
  // and closes (RFC 9112 9.6), which ends the pipe. Keep-alive would let the client's next
  // requests through the tunnel, unrouted.
  out.line('set bereq.http.Connection = "Upgrade, close";');
  out.close();
  out.line();

  emitBackendSubs(out, sleeps);

  out.open('sub vcl_deliver {');
  out.line('call vgw_response;');
  for (const l of stripInternalHeadersVcl('resp')) out.line(l);
  // Last, so that no response header modifier can take it back.
  if (options.draining) out.line(DRAINING_CLOSE);
  out.close();
  out.line();

  // The response is complete before vgw_response runs, so a route's ResponseHeaderModifier
  // has the last word here as it has on backend responses.
  out.open('sub vcl_synth {');
  out.open(`if (${H_LOCATION}) {`);
  out.line(`set resp.http.Location = ${H_LOCATION};`);
  out.line('set resp.body = "";');
  out.reopen(`} elsif (${H_PREFLIGHT}) {`);
  out.line('set resp.body = "";');
  out.reopen('} else {');
  out.line('set resp.http.Content-Type = "text/plain; charset=utf-8";');
  out.line('set resp.body = "" + resp.status + " " + resp.reason + {"\n"};');
  out.close();
  out.line('call vgw_response;');
  for (const l of stripInternalHeadersVcl('resp')) out.line(l);
  if (options.draining) out.line(DRAINING_CLOSE);
  out.line('return (deliver);');
  out.close();
  out.line();

  emitDispatch(out, vhosts, ctx);
  out.line();
  emitResponseSub(out, ctx.responses);
  return { vcl: out.text(), stats: { vhosts: vhosts.length, routes: routeCount, backends: declared.size } };
}

/** Indexes of the Services that the routes of these vhosts send traffic to. */
export function usedServices(vhosts: IRVirtualHost[]): Set<number> {
  const used = new Set<number>();
  for (const v of vhosts) for (const r of v.routes) for (const b of r.action.backends) if (b.service !== null) used.add(b.service);
  return used;
}

/**
 * Requests are routed on their normalised path, so Exact and PathPrefix values (and the prefix a
 * ReplacePrefixMatch replaces) are normalised the same way: "/a//b/./c" matches what "/a/b/c"
 * matches. A value that cannot be normalised (an encoded "/", say) is kept: requests spelled
 * that way are refused with 400, so it matches nothing. RegularExpression values are used as
 * written, against the normalised path.
 */
function withNormalPaths(vhost: IRVirtualHost): IRVirtualHost {
  const normal = (value: string, prefix: boolean) => {
    const n = normalizePath(value);
    if (!n.ok) return value;
    return prefix && n.path !== '/' ? n.path.replace(/\/+$/, '') : n.path;
  };
  const routes = vhost.routes.map((r) => {
    const p = r.match.path;
    const match = p.type === 'RegularExpression' ? r.match : { ...r.match, path: { type: p.type, value: normal(p.value, p.type === 'PathPrefix') } };
    const modifier = (m: IRPathModifier | undefined) => (m?.type === 'ReplacePrefixMatch' ? { ...m, prefix: normal(m.prefix, true) } : m);
    const a = r.action;
    const action: IRAction = {
      ...a,
      ...(a.rewrite ? { rewrite: { ...a.rewrite, path: modifier(a.rewrite.path) } } : {}),
      ...(a.redirect ? { redirect: { ...a.redirect, path: modifier(a.redirect.path) } } : {}),
    };
    return { ...r, match, action };
  });
  return { ...vhost, routes };
}

function vhostKey(socket: IRSocket, vhost: IRVirtualHost): string {
  if (vhost.hostname === '*') return `${socket.name}*`;
  if (vhost.hostname.startsWith('*.')) return `${socket.name}*${vhost.hostname.slice(2)}`;
  return `${socket.name}=${vhost.hostname}`;
}

/**
 * Exact host first, then wildcard suffixes from the longest, then the socket's catch-all.
 * Each wildcard depth in use costs one regsub + trie lookup, whatever the number of hosts.
 */
function emitHostLookup(out: Writer, sockets: IRSocket[]): void {
  const depths = new Set<number>();
  for (const s of sockets) {
    for (const v of s.vhosts) if (v.hostname.startsWith('*.')) depths.add(v.hostname.split('.').length - 1);
  }
  const key = `${H_SOCKET} + "=" + ${H_HOST}`;
  out.open(`if (vgw_hosts.match(${key})) {`);
  for (const d of [...depths].sort((a, b) => b - a)) {
    // On no match regsub returns the exact key again, which already failed above.
    const re = `^([^=]*)=.+?\\.((?:[^.]+\\.){${vclInt(d - 1, 0, 127)}}[^.]+)$`;
    out.reopen(`} elsif (vgw_hosts.match(regsub(${key}, "${re}", "\\1*\\2"))) {`);
  }
  out.reopen(`} elsif (vgw_hosts.match(${H_SOCKET} + "*")) {`);
  out.reopen('} else {');
  out.line('return (synth(404));');
  out.close();
}

/**
 * Which IR socket a request belongs to, and X-Forwarded-Proto. Plain sockets are varnishd's own
 * (local.socket). Every HTTPS listener reaches varnishd through the one PROXY socket; the PROXY
 * header carries the address:port the client connected to (server.ip), which names the
 * listener's socket. A TLS connection to an address:port no HTTPS socket has (a terminator still
 * running an older config) finds no routes. X-Forwarded-Proto follows the connection; a client's
 * own value is replaced, since backends may trust it for security decisions.
 */
function emitSocketLookup(out: Writer, tlsSockets: IRSocket[]): void {
  out.line(`set ${H_SOCKET} = local.socket;`);
  out.line('set req.http.X-Forwarded-Proto = "http";');
  if (tlsSockets.length === 0) return;
  out.open(`if (local.socket == ${vclString(TLS_PROXY_SOCKET)}) {`);
  out.line('set req.http.X-Forwarded-Proto = "https";');
  // A listener on an unspecified address (0.0.0.0, ::) takes the port for every address, so
  // sockets with a concrete address are tried first.
  const ordered = [...tlsSockets.filter((s) => !unspecified(s.address)), ...tlsSockets.filter((s) => unspecified(s.address))];
  ordered.forEach((s, i) => {
    const conditions = [`std.port(server.ip) == ${vclPort(s.port)}`];
    if (!unspecified(s.address)) conditions.push(`server.ip == std.ip(${vclString(s.address)}, "0.0.0.0")`);
    const head = `if (${conditions.join(' && ')}) {`;
    if (i === 0) out.open(head);
    else out.reopen(`} els${head}`);
    out.line(`set ${H_SOCKET} = ${vclString(s.name)};`);
  });
  out.reopen('} else {');
  out.line('return (synth(404));');
  out.close();
  out.close();
}

function unspecified(address: string): boolean {
  return address === '0.0.0.0' || address === '::';
}

type VhostEntry = { socket: IRSocket; vhost: IRVirtualHost };

function emitDispatch(out: Writer, vhosts: VhostEntry[], ctx: EmitContext): void {
  const id = 'vgw_hosts.integer()';
  const chunks = Math.max(1, Math.ceil(vhosts.length / VHOSTS_PER_SUB));
  out.open('sub vgw_dispatch {');
  emitSwitch(out, id, 0, chunks, (c) => out.line(`call ${vclIdent('vgw_vhosts_', c)};`), VHOSTS_PER_SUB);
  out.close();
  for (let c = 0; c < chunks; c++) {
    out.line();
    out.open(`sub ${vclIdent('vgw_vhosts_', c)} {`);
    const lo = c * VHOSTS_PER_SUB;
    const hi = Math.min(vhosts.length, lo + VHOSTS_PER_SUB);
    if (hi > lo) emitSwitch(out, id, lo, hi, (i) => emitVhost(out, vhosts[i].socket, vhosts[i].vhost, ctx), 1);
    else out.line('return (synth(404));');
    out.close();
  }
}

/**
 * A two-level switch over [lo, hi) (not empty) on an integer expression; leaf(k) emits bucket k.
 * Groups of about sqrt(n) buckets are chosen by an if/elsif chain, then the bucket within its
 * group by a second one. VCC indents every nested block of its C output, and the C is what the
 * compiler reads: a balanced binary search nests each leaf 7 deep at 128 buckets, which made the
 * C of a 250-vhost shard 30 % larger and its vcl.inline about 10 % slower (measured in a bare
 * varnishd, bench/scale-analysis.md). Two levels cost about 11 tests at 128 buckets against 7,
 * some 0.1 µs a request.
 */
function emitSwitch(out: Writer, expr: string, lo: number, hi: number, leaf: (k: number) => void, scale: number): void {
  if (hi <= lo) throw new Error(`emitSwitch: empty range [${lo}, ${hi})`);
  const size = Math.ceil(Math.sqrt(hi - lo));
  const groups: [number, number][] = [];
  for (let from = lo; from < hi; from += size) groups.push([from, Math.min(hi, from + size)]);
  emitChain(out, expr, groups, scale, ([from, to]) => {
    const buckets: [number, number][] = [];
    for (let k = from; k < to; k++) buckets.push([k, k + 1]);
    emitChain(out, expr, buckets, scale, ([k]) => leaf(k));
  });
}

/** if/elsif over consecutive ranges [from, to): each range is told by `expr < to`, the last by else. */
function emitChain(out: Writer, expr: string, ranges: [number, number][], scale: number, body: (range: [number, number]) => void): void {
  if (ranges.length === 1) {
    body(ranges[0]);
    return;
  }
  ranges.forEach((range, i) => {
    const head = `(${expr} < ${vclInt(range[1] * scale, 0, Number.MAX_SAFE_INTEGER)}) {`;
    if (i === 0) out.open(`if ${head}`);
    else if (i < ranges.length - 1) out.reopen(`} elsif ${head}`);
    else out.reopen('} else {');
    body(range);
  });
  out.close();
}

function queryNames(vhost: IRVirtualHost): string[] {
  const names = new Set<string>();
  for (const r of vhost.routes) for (const q of r.match.queryParams) names.add(q.name);
  return [...names];
}

function emitVhost(out: Writer, socket: IRSocket, vhost: IRVirtualHost, ctx: EmitContext): void {
  out.line(`# ${comment(`${socket.name} ${vhost.hostname} (${vhost.listener})`)}`);
  const qnames = queryNames(vhost);
  qnames.forEach((name, i) => {
    // The first occurrence of the parameter counts, as the HTTPRoute spec asks: right after "?",
    // else the first "&name=" of the query. strstr finds it without a regex or a copy of the URL,
    // and the anchored regsub copies only the value and never backtracks, so query strings up
    // to varnishd's request size stay far from pcre2_match_limit and the workspace limit.
    // Only the first "?" starts the query: a later "?name=" is part of some value.
    const query = 'std.strstr(req.url, "?")';
    const later = `std.strstr(${query}, ${vclString(`&${name}=`)})`;
    const value = (found: string) => `regsub(${found}, ${vclRegex(`^[?&]${regexLiteral(name)}=([^&#]*).*$`)}, "\\1")`;
    out.open(`if (${query} ~ ${vclRegex(`^\\?${regexLiteral(name)}=`)}) {`);
    out.line(`set ${queryHeader(i)} = ${value(query)};`);
    out.reopen(`} elsif (${later}) {`);
    out.line(`set ${queryHeader(i)} = ${value(later)};`);
    out.close();
  });
  // No route of the vhost matching leaves x-vgw-route unset, and vcl_recv answers 404 after
  // vgw_dispatch (one test there instead of an else branch per vhost in the C).
  vhost.routes.forEach((route, i) => {
    const cond = matchCondition(route.match, qnames);
    const head = i === 0 ? `if (${cond}) {` : `} elsif (${cond}) {`;
    if (i === 0) out.open(head);
    else out.reopen(head);
    emitAction(out, route, socket, ctx);
  });
  if (vhost.routes.length) out.close();
}

function matchCondition(m: IRMatch, qnames: string[]): string {
  const parts: string[] = [];
  const p = m.path;
  if (p.type === 'Exact') parts.push(`${H_PATH} == ${vclString(p.value)}`);
  else if (p.type === 'PathPrefix') {
    if (p.value !== '/') parts.push(`${H_PATH} ~ ${vclRegex(`^${regexLiteral(p.value)}(?:/|$)`)}`);
  } else parts.push(`${H_PATH} ~ ${vclRegex(`^(?:${p.value})$`)}`);
  if (m.method) parts.push(`req.method == ${vclString(m.method)}`);
  for (const h of m.headers) parts.push(valueCondition(headerRef('req', h.name), h));
  for (const q of m.queryParams) parts.push(valueCondition(queryHeader(qnames.indexOf(q.name)), q));
  return parts.length ? parts.join(' && ') : 'true';
}

function valueCondition(ref: string, v: IRValueMatch): string {
  // The existence test keeps an absent header from equalling "".
  if (v.type === 'Exact') return `(${ref} && ${ref} == ${vclString(v.value)})`;
  return `(${ref} && ${ref} ~ ${vclRegex(`^(?:${v.value})$`)})`;
}

function emitAction(out: Writer, route: IRRoute, socket: IRSocket, ctx: EmitContext): void {
  const a: IRAction = route.action;
  out.line(`set ${H_ROUTE} = ${vclString(route.id)};`);
  const filters = a.filters ?? [];
  if (a.cors) emitCors(out, a.cors, route.id);
  if (a.responseHeaders) out.line(`set ${H_RESP_RULE} = ${vclString(vclInt(ctx.responses.id(a.responseHeaders), 0, Number.MAX_SAFE_INTEGER))};`);
  if (a.requestHeaders) emitHeaderModifier(out, 'req', a.requestHeaders);
  if (a.redirect) {
    emitFilterLog(out, route.id, filters);
    out.line(`set ${H_LOCATION} = ${redirectLocation(a.redirect, socket)};`);
    out.line(`return (synth(${vclStatus(a.redirect.statusCode, 300, 399)}));`);
    return;
  }
  if (a.rewrite?.path) out.line(`set req.url = ${replacedPath(a.rewrite.path)} + regsub(req.url, "^[^?]*", "");`);
  if (a.rewrite?.hostname !== undefined) out.line(`set req.http.host = ${vclString(a.rewrite.hostname)};`);
  for (const m of a.mirrors ?? []) emitMirror(out, m.percent, serviceKey(ctx.services[serviceIndex(m.service, ctx)]));
  if (a.timeouts) {
    const t = a.timeouts;
    if (t.request !== undefined) out.line(`set ${H_TIMEOUT_REQUEST} = ${vclString(timeoutValue(t.request))};`);
    if (t.backendRequest !== undefined) out.line(`set ${H_TIMEOUT_BACKEND} = ${vclString(timeoutValue(t.backendRequest))};`);
  }
  if (a.retry && vclInt(a.retry.attempts, 0, MAX_RETRY_ATTEMPTS) !== '0') {
    out.line(`set ${H_RETRY} = ${vclString(retryPolicy(a.retry))};`);
    // A retried request must be sent again whole: keep its body (up to a bound) in memory.
    out.open('if (req.http.Content-Length || req.http.Transfer-Encoding) {');
    out.line(`if (std.cache_req_body(${RETRY_BODY_LIMIT})) {}`);
    out.close();
  }
  const backends = a.backends.filter((b) => weightOf(b) > 0);
  if (backends.length === 0) {
    emitFilterLog(out, route.id, filters);
    out.line('return (synth(500));');
    return;
  }
  const pick = (b: IRBackendRef) => {
    emitFilterLog(out, route.id, [...filters, ...backendFilterTypes(b)]);
    // Gateway API: a backendRef that cannot be used, including a Service without endpoints,
    // answers 500 for its share of requests.
    if (b.service === null || !ctx.hasEndpoints(serviceIndex(b.service, ctx))) {
      out.line('return (synth(500));');
      return;
    }
    if (b.requestHeaders) emitHeaderModifier(out, 'req', b.requestHeaders);
    if (b.responseHeaders) out.line(`set ${H_RESP_BACKEND} = ${vclString(vclInt(ctx.responses.id(b.responseHeaders), 0, Number.MAX_SAFE_INTEGER))};`);
    out.line(`set req.backend_hint = ${vclIdent('vgw_s', b.service)}.backend();`);
  };
  if (backends.length === 1) {
    pick(backends[0]);
    return;
  }
  const total = backends.reduce((s, b) => s + weightOf(b), 0);
  out.line(`set ${H_RANDOM} = std.random(0, ${vclInt(total, 1, Number.MAX_SAFE_INTEGER)});`);
  let acc = 0;
  backends.forEach((b, i) => {
    acc += weightOf(b);
    const bound = vclInt(acc, 0, Number.MAX_SAFE_INTEGER);
    if (i === backends.length - 1) out.reopen('} else {');
    else if (i === 0) out.open(`if (std.real(${H_RANDOM}, 0) < ${bound}) {`);
    else out.reopen(`} elsif (std.real(${H_RANDOM}, 0) < ${bound}) {`);
    pick(b);
  });
  out.close();
}

/** A backendRef's weight, checked: the sum and the bounds below are emitted as VCL numbers. */
function weightOf(b: IRBackendRef): number {
  return Number(vclInt(b.weight, 0, MAX_WEIGHT));
}

/** An index into the IR's services, checked: it names a director and selects endpoints. */
function serviceIndex(service: unknown, ctx: EmitContext): number {
  return Number(vclInt(service, 0, ctx.services.length - 1));
}

/** A timeout as the x-vgw-treq / x-vgw-tbe value: "0" disables it (one day stands for none). */
function timeoutValue(ms: number): string {
  return vclInt(ms, 0, MAX_TIMEOUT_MS) === '0' ? NO_TIMEOUT : vclDurationMs(ms);
}

/** "attempts;backoff;,code,code," as vcl_backend_fetch parses it. */
function retryPolicy(r: IRRetry): string {
  if (!Array.isArray(r.codes)) throw new VclValueError('retry codes must be a list');
  const codes = r.codes.map((c) => vclStatus(c, 400, 599));
  return `${vclInt(r.attempts, 0, MAX_RETRY_ATTEMPTS)};${vclDurationMs(r.backoffMs ?? 0)};,${codes.join(',')},`;
}

function backendFilterTypes(b: IRBackendRef): string[] {
  const types: string[] = [];
  if (b.requestHeaders) types.push('RequestHeaderModifier');
  if (b.responseHeaders) types.push('ResponseHeaderModifier');
  return types;
}

function emitFilterLog(out: Writer, routeId: string, filters: string[]): void {
  if (filters.length) out.line(`std.log(${vclString(`${LOG_FILTERS} ${routeId} ${filters.join(',')}`)});`);
}

function emitMirror(out: Writer, percent: number, key: string): void {
  // The service key is resolved to endpoints by the log reader (src/mirror), not here.
  const log = `std.log(${vclString(`${LOG_MIRROR} ${key}`)});`;
  const share = vclReal(percent, 0, 100);
  if (share === '100') out.line(log);
  else out.line(`if (std.random(0, 100) < ${share}) { ${log} }`);
}

/**
 * CORS (Gateway API HTTPCORSFilter). A preflight is answered here; for other requests the
 * headers to add are decided now and written in vgw_response, after the cache, so a cached
 * object never carries one client's CORS answer to another.
 */
function emitCors(out: Writer, c: IRCors, routeId: string): void {
  const preflight = 'req.method == "OPTIONS" && req.http.Access-Control-Request-Method';
  out.open('if (req.http.Origin) {');
  out.open(`if (${originCondition(c.allowOrigins)}) {`);
  out.line(`set ${H_CORS_ORIGIN} = req.http.Origin;`);
  if (c.allowCredentials) out.line(`set ${H_CORS_CREDENTIALS} = "true";`);
  if (c.exposeHeaders.length) out.line(`set ${H_CORS_EXPOSE} = ${vclString(c.exposeHeaders.join(', '))};`);
  out.open(`if (${preflight}) {`);
  out.line(`set ${H_PREFLIGHT} = "1";`);
  if (c.allowMethods.includes('*')) out.line(`set ${H_CORS_METHODS} = req.http.Access-Control-Request-Method;`);
  else if (c.allowMethods.length) out.line(`set ${H_CORS_METHODS} = ${vclString(c.allowMethods.join(', '))};`);
  if (c.allowHeaders.includes('*')) out.line(`set ${H_CORS_HEADERS} = req.http.Access-Control-Request-Headers;`);
  else if (c.allowHeaders.length) out.line(`set ${H_CORS_HEADERS} = ${vclString(c.allowHeaders.join(', '))};`);
  out.line(`set ${H_CORS_MAX_AGE} = ${vclString(vclInt(c.maxAge ?? 5, 0, MAX_CORS_MAX_AGE))};`);
  out.line(`std.log(${vclString(`${LOG_FILTERS} ${routeId} CORS`)});`);
  out.line('return (synth(204));');
  out.close();
  out.reopen(`} elsif (${preflight}) {`);
  // Answered without any Access-Control-Allow-* header: the browser refuses the request.
  out.line(`set ${H_PREFLIGHT} = "1";`);
  out.line(`std.log(${vclString(`${LOG_FILTER_FAILURE} ${routeId} CORS origin_not_allowed`)});`);
  out.line('return (synth(204));');
  out.close();
  out.close();
}

function originCondition(origins: string[]): string {
  if (origins.includes('*')) return 'true';
  if (origins.length === 0) return 'false';
  const alternatives = origins.map((o) => {
    const m = /^([^:]+:\/\/)\*\.(.*)$/.exec(o);
    // "https://*.example.com" matches any number of labels in place of "*", never none.
    return m ? `${regexLiteral(m[1])}[^/:]+\\.${regexLiteral(m[2])}` : regexLiteral(o);
  });
  return `req.http.Origin ~ ${vclRegex(`(?i)^(?:${alternatives.join('|')})$`)}`;
}

function emitHeaderModifier(out: Writer, object: 'req' | 'resp', m: IRHeaderModifier): void {
  for (const h of m.set) out.line(`set ${headerRef(object, h.name)} = ${vclString(h.value)};`);
  for (const h of m.add) {
    const ref = headerRef(object, h.name);
    // Fold repeated header lines first so the appended value keeps every earlier one.
    out.line(`std.collect(${ref}, ",");`);
    out.open(`if (${ref}) {`);
    out.line(`set ${ref} = ${ref} + "," + ${vclString(h.value)};`);
    out.reopen('} else {');
    out.line(`set ${ref} = ${vclString(h.value)};`);
    out.close();
  }
  for (const name of m.remove) out.line(`unset ${headerRef(object, name)};`);
}

interface EmitContext {
  responses: ResponseModifiers;
  services: RoutingIR['services'];
  /** Whether the Service has a ready endpoint in this compile. */
  hasEndpoints: (service: number) => boolean;
}

/** Distinct response header modifiers of one VCL, numbered for the vgw_response tree. */
class ResponseModifiers {
  readonly list: IRHeaderModifier[] = [];
  private ids = new Map<string, number>();
  id(m: IRHeaderModifier): number {
    const k = JSON.stringify(m);
    let id = this.ids.get(k);
    if (id === undefined) {
      id = this.list.length;
      this.list.push(m);
      this.ids.set(k, id);
    }
    return id;
  }
}

/** Called from vcl_deliver and vcl_synth: CORS headers, then rule- and backendRef-level modifiers. */
function emitResponseSub(out: Writer, rm: ResponseModifiers): void {
  out.open('sub vgw_response {');
  out.open(`if (${H_CORS_ORIGIN}) {`);
  out.line(`set resp.http.Access-Control-Allow-Origin = ${H_CORS_ORIGIN};`);
  out.line(`if (${H_CORS_CREDENTIALS}) { set resp.http.Access-Control-Allow-Credentials = ${H_CORS_CREDENTIALS}; }`);
  out.line(`if (${H_CORS_EXPOSE}) { set resp.http.Access-Control-Expose-Headers = ${H_CORS_EXPOSE}; }`);
  out.line(`if (${H_CORS_METHODS}) { set resp.http.Access-Control-Allow-Methods = ${H_CORS_METHODS}; }`);
  out.line(`if (${H_CORS_HEADERS}) { set resp.http.Access-Control-Allow-Headers = ${H_CORS_HEADERS}; }`);
  out.line(`if (${H_CORS_MAX_AGE}) { set resp.http.Access-Control-Max-Age = ${H_CORS_MAX_AGE}; }`);
  // The answer depends on the Origin: shared caches downstream must keep them apart.
  out.line('if (resp.http.Vary) { set resp.http.Vary = resp.http.Vary + ", Origin"; } else { set resp.http.Vary = "Origin"; }');
  out.close();
  if (rm.list.length) {
    out.open(`if (${H_RESP_RULE}) {`);
    out.line(`set ${H_RESP_CURRENT} = ${H_RESP_RULE};`);
    out.line('call vgw_response_headers;');
    out.close();
    out.open(`if (${H_RESP_BACKEND}) {`);
    out.line(`set ${H_RESP_CURRENT} = ${H_RESP_BACKEND};`);
    out.line('call vgw_response_headers;');
    out.close();
  }
  out.close();
  if (!rm.list.length) return;
  out.line();
  out.open('sub vgw_response_headers {');
  emitSwitch(out, `std.integer(${H_RESP_CURRENT}, -1)`, 0, rm.list.length, (i) => emitHeaderModifier(out, 'resp', rm.list[i]), 1);
  out.close();
}

/**
 * Timeouts and retries happen in the backend task, which cannot see the client request's
 * route; the route's policy travels in x-vgw-* bereq headers, is moved into task variables
 * (vmod_var, which survive retries) on the first attempt, and never reaches the backend.
 */
function emitBackendSubs(out: Writer, sleeps: boolean): void {
  out.open('sub vcl_backend_fetch {');
  out.open('if (bereq.retries == 0) {');
  out.line('var.set("route", bereq.http.x-vgw-route);');
  out.open('if (bereq.http.x-vgw-retry) {');
  out.line('var.set_int("attempts", std.integer(regsub(bereq.http.x-vgw-retry, "^([0-9]+);.*$", "\\1"), 0));');
  out.line('var.set_duration("backoff", std.duration(regsub(bereq.http.x-vgw-retry, "^[0-9]+;([^;]*);.*$", "\\1"), 0s));');
  out.line('var.set("codes", regsub(bereq.http.x-vgw-retry, "^[^;]*;[^;]*;", ""));');
  out.close();
  out.line('var.set_duration("treq", std.duration(bereq.http.x-vgw-treq, 0s));');
  out.line('if (bereq.http.x-vgw-tbe) { set bereq.first_byte_timeout = std.duration(bereq.http.x-vgw-tbe, 60s); }');
  out.close();
  for (const l of stripInternalHeadersVcl('bereq')) out.line(l);
  // Unset timeouts read as 0s (meaning "the parameter"); make them explicit to compare them.
  out.line(`if (bereq.first_byte_timeout == 0s) { set bereq.first_byte_timeout = ${DEFAULT_FIRST_BYTE_TIMEOUT}; }`);
  out.line(`if (bereq.connect_timeout == 0s) { set bereq.connect_timeout = ${DEFAULT_CONNECT_TIMEOUT}; }`);
  // timeouts.request bounds the whole exchange, retries included: each attempt gets what is left.
  out.open('if (var.get_duration("treq") > 0s) {');
  out.open('if (now - bereq.time >= var.get_duration("treq")) {');
  out.line('var.set_int("timedout", 1);');
  out.line('return (error(504));');
  out.close();
  out.open('if (bereq.first_byte_timeout > var.get_duration("treq") - (now - bereq.time)) {');
  out.line('set bereq.first_byte_timeout = var.get_duration("treq") - (now - bereq.time);');
  out.close();
  out.close();
  out.line('if (bereq.connect_timeout > bereq.first_byte_timeout) { set bereq.connect_timeout = bereq.first_byte_timeout; }');
  // Varnish's timer can fire a little before now + first_byte_timeout (it counts from an
  // earlier timestamp), so anything past 90 % of the budget counts as having used it all.
  out.line('var.set_real("deadline", std.time2real(now + bereq.first_byte_timeout * 0.9, 0));');
  out.close();
  out.line();

  out.open('sub vcl_backend_response {');
  // Router state headers are ours alone: a backend's copies are neither cached nor delivered.
  for (const l of stripInternalHeadersVcl('beresp')) out.line(l);
  out.open('if (bereq.retries < var.get_int("attempts") && std.strstr(var.get("codes"), "," + beresp.status + ",")) {');
  out.line(`std.log("${LOG_RETRY} " + var.get("route") + " " + beresp.status);`);
  out.line('call vgw_backoff;');
  out.line('return (retry);');
  out.close();
  // A gateway must not invent cache lifetimes: without explicit freshness from the origin the
  // response is passed through, not cached for the default TTL.
  out.open('if (!beresp.http.Cache-Control && !beresp.http.Expires && !beresp.http.Surrogate-Control) {');
  out.line('set beresp.ttl = 0s;');
  out.close();
  out.close();
  out.line();

  // A failed fetch that used up its first-byte budget timed out (504); a quicker failure could
  // not connect or lost the connection (503). VCL cannot see which error ended the fetch. Connection failures are retried whenever the
  // route has a retry policy; timeouts only when 504 is among its codes.
  out.open('sub vcl_backend_error {');
  out.open('if (var.get_int("timedout") == 1 || (var.get_real("deadline") > 0 && std.time2real(now, 0) >= var.get_real("deadline"))) {');
  out.line('set beresp.status = 504;');
  out.line('set beresp.reason = "Gateway Timeout";');
  out.line(`if (var.get("route")) { std.log("${LOG_TIMEOUT} " + var.get("route")); }`);
  out.open('if (var.get_int("timedout") != 1 && bereq.retries < var.get_int("attempts") && std.strstr(var.get("codes"), ",504,")) {');
  out.line(`std.log("${LOG_RETRY} " + var.get("route") + " 504");`);
  out.line('call vgw_backoff;');
  out.line('return (retry);');
  out.close();
  out.reopen('} elsif (bereq.retries < var.get_int("attempts")) {');
  out.line(`std.log("${LOG_RETRY} " + var.get("route") + " " + beresp.status);`);
  out.line('call vgw_backoff;');
  out.line('return (retry);');
  out.close();
  out.line('set beresp.ttl = 0s;');
  out.line('set beresp.http.Content-Type = "text/plain; charset=utf-8";');
  out.line('set beresp.body = "" + beresp.status + " " + beresp.reason + {"\\n"};');
  out.line('return (deliver);');
  out.close();
  out.line();

  out.open('sub vgw_backoff {');
  if (sleeps) out.line('if (var.get_duration("backoff") > 0s) { vtc.sleep(var.get_duration("backoff")); }');
  out.close();
  out.line();
}

function redirectLocation(r: IRRedirect, socket: IRSocket): string {
  // Without a scheme the redirect keeps the request's: a vhost belongs to one socket, and only
  // TLS connections reach a TLS socket's vhosts.
  const scheme = r.scheme ?? (socket.tls ? 'https' : 'http');
  const defaultPort = scheme === 'https' ? 443 : 80;
  // Spec: an explicit port wins; a scheme change implies its well-known port; otherwise the
  // listener's port. Well-known ports are left out of the Location.
  const port = vclPort(r.port ?? (r.scheme ? defaultPort : r.listenerPort || socket.port));
  const host = r.hostname !== undefined ? vclString(r.hostname) : `regsub(req.http.host, ":[0-9]*$", "")`;
  const portPart = port === String(defaultPort) ? '' : `:${port}`;
  const path = r.path ? replacedPath(r.path) : H_PATH;
  const query = 'regsub(req.url, "^[^?]*", "")';
  return `${vclString(`${scheme}://`)} + ${host} + ${vclString(portPart)} + ${path} + ${query}`;
}

/** The request path after a ReplaceFullPath / ReplacePrefixMatch modifier (query excluded). */
function replacedPath(p: IRPathModifier): string {
  if (p.type === 'ReplaceFullPath') return vclString(p.value);
  // The match guarantees the prefix ends at a segment boundary, so what follows is "" or "/...".
  const rest = p.prefix === '/' ? H_PATH : `regsub(${H_PATH}, ${vclRegex(`^${regexLiteral(p.prefix)}`)}, "")`;
  const replacement = p.value.replace(/\/+$/, '');
  // "/" + "" -> "/", "/new" + "/x" -> "/new/x", "" + "/x" -> "/x".
  return `regsub(${vclString(replacement)} + ${rest}, "^$", "/")`;
}

/** Comments may carry object names; anything unusual is replaced, never interpreted. */
const UNUSUAL = /[^A-Za-z0-9 ._:/*()=-]/;
function comment(text: string): string {
  if (!UNUSUAL.test(text) && text.length <= 200) return text;
  return text.replace(/[^A-Za-z0-9 ._:/*()=-]/g, '?').slice(0, 200);
}

class Writer {
  private lines: string[] = [];
  private depth = 0;
  line(text = ''): void {
    this.lines.push(text ? '  '.repeat(this.depth) + text : '');
  }
  open(text: string): void {
    this.line(text);
    this.depth++;
  }
  reopen(text: string): void {
    this.depth--;
    this.line(text);
    this.depth++;
  }
  close(text = '}'): void {
    this.depth--;
    this.line(text);
  }
  text(): string {
    return `${this.lines.join('\n')}\n`;
  }
}
