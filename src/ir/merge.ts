// One routing IR from several: standalone mode serves every Gateway from one varnishd, the
// operator gives each Gateway its own data plane. The translator builds each Gateway's routing
// on its own; merging them reproduces what one data plane serving all of them must route.
//
// Gateways may share an address:port. A request on such a socket first picks the most specific
// listener hostname matching it across ALL the Gateways there (listener isolation), so a vhost a
// Gateway built for its own listener is kept only when no other Gateway's listener on that
// socket is more specific for that hostname. Listener hostnames are distinct on one socket (the
// translator marks duplicates Conflicted), and two distinct patterns covering one hostname never
// have equal specificity, so the owner of every hostname is unique and order-independent.
import { patternCovers, specificity } from './hostname-patterns.ts';
import { IR_VERSION, serviceKey, socketKey, type IRRoute, type IRService, type IRSocket, type IRSocketTLS, type IRVirtualHost, type RoutingIR } from './types.ts';

/** Socket order: by address (string order), then port. */
export function compareSocketAddresses(a: { address: string; port: number }, b: { address: string; port: number }): number {
  return a.address === b.address ? a.port - b.port : a.address < b.address ? -1 : 1;
}

/**
 * Names for sockets already in compareSocketAddresses order: `a<address, non-hex as "_">_<port>`,
 * "_"-suffixed when two addresses map to the same characters (e.g. "::ffff:1.2.3.4" and
 * "::ffff:1:2:3:4").
 */
export function socketNames(sorted: readonly { address: string; port: number }[]): string[] {
  const names = new Set<string>();
  return sorted.map((s) => {
    let name = `a${s.address.replace(/[^0-9a-fA-F]/g, '_')}_${s.port}`;
    while (names.has(name)) name += '_';
    names.add(name);
    return name;
  });
}

/**
 * A renumbering in order of first use: `id(old)` gives old index `old` the next new index the
 * first time it is asked, and `next` lists the services in their new order.
 */
export function serviceNumbering(services: readonly IRService[]): { id: (old: number) => number; next: IRService[]; ids: ReadonlyMap<number, number> } {
  const next: IRService[] = [];
  const ids = new Map<number, number>();
  const id = (old: number): number => {
    let n = ids.get(old);
    if (n === undefined) {
      n = next.length;
      const svc = services[old];
      if (svc === undefined) throw new Error(`service index ${old} is out of range (${services.length} services)`);
      next.push(svc);
      ids.set(old, n);
    }
    return n;
  };
  return { id, next, ids };
}

/**
 * Renumbers services in the order routes first use them (sockets, vhosts and routes in IR
 * order; backends before mirrors), dropping unused ones. The order then depends only on the
 * routing table, so merged and per-Gateway IRs number alike. `services[i]` is old index i.
 */
export function reindexServices(sockets: IRSocket[], services: readonly IRService[]): { sockets: IRSocket[]; services: IRService[] } {
  const { id, next } = serviceNumbering(services);
  const out = sockets.map((s) => ({ ...s, vhosts: s.vhosts.map((v) => ({ ...v, routes: v.routes.map((r) => mapServices(r, id)) })) }));
  return { sockets: out, services: next };
}

/**
 * The single IR one data plane serves for all `irs` (each one Gateway's routing): sockets with
 * the same address:port merged with cross-Gateway listener isolation, services de-duplicated
 * by namespace/name:port and renumbered (reindexServices), route generations united.
 * pathNormalization is 'Off' only when every input says so: one Gateway cannot switch
 * normalisation off for the others.
 */
export function mergeGatewayIRs(irs: readonly RoutingIR[]): RoutingIR {
  const services: IRService[] = [];
  const serviceIds = new Map<string, number>();
  const bySocket = new Map<string, { address: string; port: number; parts: { socket: IRSocket; ids: number[] }[] }>();
  for (const ir of irs) {
    // This IR's service indexes -> indexes into the shared list.
    const ids = ir.services.map((svc) => {
      const k = serviceKey(svc);
      let n = serviceIds.get(k);
      if (n === undefined) {
        n = services.length;
        services.push(svc);
        serviceIds.set(k, n);
      }
      return n;
    });
    for (const socket of ir.sockets) {
      const k = socketKey(socket.address, socket.port);
      const entry = bySocket.get(k) ?? { address: socket.address, port: socket.port, parts: [] };
      entry.parts.push({ socket, ids });
      bySocket.set(k, entry);
    }
  }

  const sorted = [...bySocket.values()].sort(compareSocketAddresses);
  const names = socketNames(sorted);
  const sockets: IRSocket[] = sorted.map((entry, i) => {
    const socket: IRSocket = { name: names[i], address: entry.address, port: entry.port, vhosts: mergeVhosts(entry.parts) };
    const tls = mergeTls(entry.parts.map((p) => p.socket));
    if (tls) socket.tls = tls;
    return socket;
  });

  const routeGenerations: Record<string, number> = {};
  for (const ir of irs) for (const [route, gen] of Object.entries(ir.routeGenerations ?? {})) routeGenerations[route] = Math.max(gen, routeGenerations[route] ?? 0);
  const sortedGenerations = Object.fromEntries(Object.entries(routeGenerations).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

  const reindexed = reindexServices(sockets, services);
  const merged: RoutingIR = { version: IR_VERSION, routeGenerations: sortedGenerations, sockets: reindexed.sockets, services: reindexed.services };
  if (irs.length > 0 && irs.every((ir) => ir.pathNormalization === 'Off')) merged.pathNormalization = 'Off';
  return merged;
}

/**
 * The certificates of one address:port served by several Gateways, in Gateway order without
 * duplicates (the first Gateway's default stays the default), with the first Gateway's client
 * validation and options. The translator never lets a
 * TLS and a plain listener share an address:port, so either every part has TLS or none has.
 */
export function mergeTls(sockets: readonly IRSocket[]): IRSocketTLS | undefined {
  if (!sockets.some((s) => s.tls)) return undefined;
  const seen = new Set<string>();
  const certificates = [];
  for (const s of sockets) {
    for (const c of s.tls?.certificates ?? []) {
      const k = `${c.namespace}/${c.name}`;
      if (seen.has(k)) continue;
      seen.add(k);
      certificates.push(c);
    }
  }
  const merged: IRSocketTLS = { certificates };
  const listeners = mergeListenerHostnames(sockets.map((s) => s.tls?.listeners));
  if (listeners) merged.listeners = listeners;
  // The translator lets only listeners with the same TLS settings share a socket: the first
  // Gateway's settings are every part's.
  const first = sockets.find((s) => s.tls)?.tls;
  if (first?.clientValidation) merged.clientValidation = first.clientValidation;
  if (first?.options) merged.options = first.options;
  return merged;
}

/**
 * The listener hostnames of one TLS address:port, all parts together (cross-Gateway conflicts
 * keep them distinct). Unknown as soon as one part does not list them: the misdirected-request
 * check then stays off rather than judge by half the listeners.
 */
export function mergeListenerHostnames(parts: readonly (readonly string[] | undefined)[]): string[] | undefined {
  if (parts.length === 0 || parts.some((p) => p === undefined)) return undefined;
  return [...new Set(parts.flatMap((p) => p ?? []))];
}

/** One IR's service index `i` as an index into the shared list. */
function shared(ids: number[], i: number, r: IRRoute): number {
  const n = ids[i];
  if (n === undefined) throw new Error(`route ${r.id}: service index ${i} is out of range (${ids.length} services)`);
  return n;
}

/**
 * The vhosts of one address:port shared by several Gateways' IRs. Every listener's own
 * hostname is one of its vhosts and covers all its others, so it is the least specific one.
 */
function mergeVhosts(parts: { socket: IRSocket; ids: number[] }[]): IRVirtualHost[] {
  const listenerHostname = new Map<string, string>();
  for (const { socket } of parts) {
    for (const v of socket.vhosts) {
      const known = listenerHostname.get(v.listener);
      if (known === undefined || specificity(v.hostname) < specificity(known)) listenerHostname.set(v.listener, v.hostname);
    }
  }
  const owner = (hostname: string): string | undefined => {
    let best: string | undefined;
    let bestSpecificity = -1;
    for (const [listener, pattern] of listenerHostname) {
      if (!patternCovers(pattern, hostname)) continue;
      const s = specificity(pattern);
      if (s > bestSpecificity) {
        best = listener;
        bestSpecificity = s;
      }
    }
    return best;
  };
  const vhosts = new Map<string, IRVirtualHost>();
  for (const { socket, ids } of parts) {
    for (const v of socket.vhosts) {
      if (vhosts.has(v.hostname) || owner(v.hostname) !== v.listener) continue;
      vhosts.set(v.hostname, { ...v, routes: v.routes.map((r) => mapServices(r, (i) => shared(ids, i, r))) });
    }
  }
  return [...vhosts.values()].sort((a, b) => (a.hostname < b.hostname ? -1 : a.hostname > b.hostname ? 1 : 0));
}

/** `r` with every service index mapped by `id`. Spreads keep the key order, so a route whose
 *  indexes do not change serialises unchanged. */
export function mapServices(r: IRRoute, id: (index: number) => number): IRRoute {
  const action = { ...r.action, backends: r.action.backends.map((b) => (b.service === null ? b : { ...b, service: id(b.service) })) };
  if (r.action.mirrors) action.mirrors = r.action.mirrors.map((m) => ({ ...m, service: id(m.service) }));
  return { ...r, action };
}
