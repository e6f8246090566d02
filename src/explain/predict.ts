// What the routing IR says should happen to one request: the translator's view, computed from
// the IR the VCL is generated from, step by step as the generated VCL routes (normalisation,
// socket, virtual host, routes in precedence order, action). Pure. `vgw explain` puts it beside
// what varnishd really did with the request (replay.ts); a disagreement is a bug in one of them.
import { specificityDifference } from '../gatewayapi/precedence.ts';
import { serviceKey, type EndpointMap, type IRAction, type IRMatch, type IRRoute, type IRSocket, type IRValueMatch, type IRVirtualHost, type RoutingIR } from '../ir/types.ts';
import { normalizePath } from '../vcl/normalize.ts';
import type { ExplainRequest } from './request.ts';

export interface CandidateVerdict {
  id: string;
  /** The match, in words. */
  match: string;
  matched: boolean;
  /** For a route that does not match: the first condition that fails. */
  failed?: string;
}

export interface BackendChoice {
  /** "namespace/name:port", or null for a backendRef that cannot be used. */
  service: string | null;
  weight: number;
  /** Share of requests, 0-1. */
  share: number;
  /** Ready endpoints of the Service; 0 answers 500 for this share. */
  endpoints: number;
  /** A BackendTLSPolicy applies: the data plane speaks TLS to the endpoints (SNI given here). */
  tls?: { sni: string };
}

export type Outcome =
  | { kind: 'refused'; status: 400; why: string }
  | { kind: 'not-found'; status: 404; why: string }
  | { kind: 'redirect'; status: number; location: string }
  | { kind: 'preflight'; status: 204; why: string }
  | { kind: 'error'; status: 500; why: string }
  | { kind: 'backend'; choices: BackendChoice[] };

export interface Prediction {
  /** `tls`: an HTTPS socket (the replay still speaks clear text to varnishd). */
  socket?: { name: string; port: number; tls?: boolean };
  /** Host and path as the router compares them. */
  host: string;
  path: string;
  query: string;
  vhost?: { hostname: string; listener: string; how: string };
  /** Every route of the virtual host, in precedence order. */
  candidates: CandidateVerdict[];
  winner?: { id: string; action: IRAction; over: { id: string; rule: string }[] };
  outcome: Outcome;
}

export type SocketChoice = { ok: true; socket: IRSocket } | { ok: false; why: string };

/** The sockets of one Gateway's listeners only (standalone mode serves every Gateway together). */
export function onlyGateway(ir: RoutingIR, gateway: string): RoutingIR {
  const prefix = `${gateway}/`;
  const sockets = ir.sockets
    .map((s) => ({ ...s, vhosts: s.vhosts.filter((v) => v.listener.startsWith(prefix)) }))
    .filter((s) => s.vhosts.length > 0);
  return { ...ir, sockets };
}

/** The socket a request arrives on: by listener name, by port, or the only one. */
export function chooseSocket(ir: RoutingIR, req: Pick<ExplainRequest, 'listener' | 'port'>): SocketChoice {
  const all = ir.sockets;
  const list = () => all.map((s) => `${s.name} (port ${s.port}: ${[...new Set(s.vhosts.map((v) => v.listener))].join(', ') || 'no listener'})`).join('; ');
  let found = all;
  if (req.port !== undefined) found = found.filter((s) => s.port === req.port);
  if (req.listener !== undefined) {
    const l = req.listener;
    found = found.filter((s) => s.vhosts.some((v) => v.listener === l || v.listener.endsWith(`/${l}`)));
  }
  if (found.length === 1) return { ok: true, socket: found[0] };
  if (all.length === 0) return { ok: false, why: 'the config has no listener' };
  if (found.length === 0) return { ok: false, why: `no listener matches ${req.listener !== undefined ? `--listener ${req.listener}` : ''}${req.port !== undefined ? ` --port ${req.port}` : ''}; there are: ${list()}` };
  return { ok: false, why: `several listeners could take the request; pick one with --listener or --port: ${list()}` };
}

export function predict(ir: RoutingIR, endpoints: EndpointMap, req: ExplainRequest, socket: IRSocket): Prediction {
  let host = req.host;
  let target = req.path;
  // Absolute-form: the authority replaces Host, the rest is the path (RFC 9112 3.2.2).
  const absolute = /^https?:\/\/([^/?#]*)(.*)$/i.exec(target);
  if (absolute) {
    host = absolute[1];
    target = absolute[2].startsWith('/') ? absolute[2] : `/${absolute[2]}`;
  }
  const q = target.indexOf('?');
  const rawPath = q < 0 ? target : target.slice(0, q);
  const query = q < 0 ? '' : target.slice(q);
  const routerHost = host.replace(/:[0-9]*$/, '').toLowerCase();
  const base = { socket: { name: socket.name, port: socket.port, ...(socket.tls ? { tls: true } : {}) }, host: routerHost, query, candidates: [] as CandidateVerdict[] };

  let path = rawPath.replace(/#.*$/, '');
  if (ir.pathNormalization !== 'Off') {
    const n = normalizePath(rawPath);
    if (!n.ok) return { ...base, path: rawPath, outcome: { kind: 'refused', status: 400, why: `the path cannot be normalised safely: ${n.reason}` } };
    path = n.path;
  }
  const at = { ...base, path };

  const vhost = findVhost(socket, routerHost);
  if (!vhost) return { ...at, outcome: { kind: 'not-found', status: 404, why: `no listener on ${socket.name} accepts host ${JSON.stringify(routerHost)} (no exact, wildcard or catch-all hostname matches)` } };
  const vhostInfo = { hostname: vhost.vhost.hostname, listener: vhost.vhost.listener, how: vhost.how };

  const headers = new Map<string, string>();
  for (const [name, value] of req.headers) if (!headers.has(name.toLowerCase())) headers.set(name.toLowerCase(), value);
  const candidates = vhost.vhost.routes.map((r) => verdict(r, req.method, path, query, headers));
  const winnerIndex = candidates.findIndex((c) => c.matched);
  if (winnerIndex < 0) {
    return { ...at, vhost: vhostInfo, candidates, outcome: { kind: 'not-found', status: 404, why: vhost.vhost.routes.length ? 'no route of this host matches the request' : 'no route is attached to this host' } };
  }
  const winner = vhost.vhost.routes[winnerIndex];
  const over = vhost.vhost.routes
    .slice(winnerIndex + 1)
    .filter((_, i) => candidates[winnerIndex + 1 + i].matched)
    .map((r) => ({ id: r.id, rule: specificityDifference(winner.match, r.match)?.rule ?? 'equally specific: the older route (then namespace/name, rule and match order) comes first' }));
  return { ...at, vhost: vhostInfo, candidates, winner: { id: winner.id, action: winner.action, over }, outcome: outcomeOf(ir, endpoints, winner, req, headers) };
}

function findVhost(socket: IRSocket, host: string): { vhost: IRVirtualHost; how: string } | undefined {
  const exact = socket.vhosts.find((v) => v.hostname === host);
  if (exact) return { vhost: exact, how: 'exact hostname' };
  // Wildcards from the longest suffix: "*.b.c" before "*.c"; a wildcard never matches its apex.
  const wildcards = socket.vhosts.filter((v) => v.hostname.startsWith('*.')).sort((a, b) => b.hostname.length - a.hostname.length);
  const wild = wildcards.find((v) => host.endsWith(v.hostname.slice(1)) && host.length > v.hostname.length - 1);
  if (wild) return { vhost: wild, how: `wildcard ${wild.hostname}` };
  const any = socket.vhosts.find((v) => v.hostname === '*');
  return any ? { vhost: any, how: 'the listener accepts any host' } : undefined;
}

function verdict(r: IRRoute, method: string, path: string, query: string, headers: Map<string, string>): CandidateVerdict {
  const failed = firstFailure(r.match, method, path, query, headers);
  return { id: r.id, match: describeMatch(r.match), matched: failed === undefined, ...(failed !== undefined ? { failed } : {}) };
}

function firstFailure(m: IRMatch, method: string, path: string, query: string, headers: Map<string, string>): string | undefined {
  const p = m.path;
  if (p.type === 'Exact' && path !== p.value) return `path ${JSON.stringify(path)} is not exactly ${JSON.stringify(p.value)}`;
  if (p.type === 'PathPrefix' && p.value !== '/' && !(path === p.value || path.startsWith(`${p.value}/`))) return `path ${JSON.stringify(path)} is not under the prefix ${JSON.stringify(p.value)}`;
  if (p.type === 'RegularExpression' && !new RegExp(`^(?:${p.value})$`).test(path)) return `path ${JSON.stringify(path)} does not match /${p.value}/`;
  if (m.method && m.method !== method) return `method ${method} is not ${m.method}`;
  for (const h of m.headers) {
    const failure = valueFailure(`header ${h.name}`, headers.get(h.name.toLowerCase()), h);
    if (failure) return failure;
  }
  for (const qp of m.queryParams) {
    const failure = valueFailure(`query parameter ${qp.name}`, queryValue(query, qp.name), qp);
    if (failure) return failure;
  }
  return undefined;
}

/** The first occurrence of a parameter, its value as sent (not decoded), as the VCL reads it. */
function queryValue(query: string, name: string): string | undefined {
  if (!query.startsWith('?')) return undefined;
  for (const part of query.slice(1).replace(/#.*$/, '').split('&')) {
    if (part.startsWith(`${name}=`)) return part.slice(name.length + 1);
  }
  return undefined;
}

function valueFailure(what: string, actual: string | undefined, want: IRValueMatch): string | undefined {
  if (actual === undefined) return `${what} is absent`;
  if (want.type === 'Exact') return actual === want.value ? undefined : `${what} is ${JSON.stringify(actual)}, not ${JSON.stringify(want.value)}`;
  return new RegExp(`^(?:${want.value})$`).test(actual) ? undefined : `${what} ${JSON.stringify(actual)} does not match /${want.value}/`;
}

export function describeMatch(m: IRMatch): string {
  const parts = [`${m.path.type} ${m.path.value}`];
  if (m.method) parts.push(`method ${m.method}`);
  for (const h of m.headers) parts.push(`header ${h.name} ${h.type === 'Exact' ? '=' : '~'} ${h.value}`);
  for (const q of m.queryParams) parts.push(`query ${q.name} ${q.type === 'Exact' ? '=' : '~'} ${q.value}`);
  return parts.join(', ');
}

function outcomeOf(ir: RoutingIR, endpoints: EndpointMap, route: IRRoute, req: ExplainRequest, headers: Map<string, string>): Outcome {
  const a = route.action;
  if (a.cors && headers.has('origin') && req.method === 'OPTIONS' && headers.has('access-control-request-method')) {
    return { kind: 'preflight', status: 204, why: 'a CORS preflight: the gateway answers it' };
  }
  if (a.redirect) {
    const r = a.redirect;
    const parts = [`scheme ${r.scheme ?? 'http (the default)'}`, `host ${r.hostname ?? 'of the request'}`, `port ${r.port ?? (r.scheme ? 'of the scheme' : `of the listener (${r.listenerPort})`)}`];
    if (r.path) parts.push(r.path.type === 'ReplaceFullPath' ? `path ${r.path.value}` : `path prefix ${r.path.prefix} replaced by ${r.path.value}`);
    return { kind: 'redirect', status: r.statusCode, location: parts.join(', ') };
  }
  const weighted = a.backends.filter((b) => b.weight > 0);
  if (weighted.length === 0) return { kind: 'error', status: 500, why: 'the rule has no usable backend (none given, all weights 0, or all refs invalid)' };
  const total = weighted.reduce((sum, b) => sum + b.weight, 0);
  const choices = weighted.map((b): BackendChoice => {
    const key = b.service === null ? null : serviceKey(ir.services[b.service]);
    const tls = b.service === null ? undefined : ir.services[b.service].tls;
    return { service: key, weight: b.weight, share: b.weight / total, endpoints: key === null ? 0 : (endpoints.get(key)?.length ?? 0), ...(tls ? { tls: { sni: tls.sni } } : {}) };
  });
  return { kind: 'backend', choices };
}
