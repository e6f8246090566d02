// Binding a published routing IR to the address a gateway pod actually has.
//
// The operator's IR names the addresses the translator chose (its default address or the
// Gateway's spec.addresses); inside a pod those mean nothing, and varnishd must listen on the
// pod's own address (or all addresses). The VCL routes by socket NAME (local.socket), so every
// socket keeps its IR name and only its bind address changes.
//
// Two IR sockets on the same port (a Gateway with two addresses) would then be the same
// address:port: they become one socket, named like the first of them in IR order, whose vhost
// table is theirs concatenated in IR order. The translator builds the same listeners on every
// address of a Gateway, so the tables normally repeat each other and a hostname already present
// is kept once. A hostname the sockets route DIFFERENTLY cannot be served from one address (the
// address was what told the requests apart): that IR is refused rather than one side dropped.
import { isDeepStrictEqual } from 'node:util';
import { mergeTls } from './merge.ts';
import type { IRSocket, IRVirtualHost, RoutingIR } from './types.ts';

export type BindResult = { ok: true; ir: RoutingIR } | { ok: false; error: string };

/** `ir` with every socket bound on `address` at its own port, same-port sockets merged. */
export function bindSocketsTo(ir: RoutingIR, address: string): BindResult {
  const byPort = new Map<number, { socket: IRSocket; from: string[]; hosts: Map<string, { vhost: IRVirtualHost; socket: string }>; parts: IRSocket[] }>();
  for (const socket of ir.sockets) {
    let entry = byPort.get(socket.port);
    if (!entry) {
      entry = { socket: { name: socket.name, address, port: socket.port, vhosts: [] }, from: [], hosts: new Map(), parts: [] };
      byPort.set(socket.port, entry);
    }
    if (socket.tls) {
      // One port speaks TLS or not on every address (the translator refuses mixing), so the
      // merged socket's certificates are theirs together, first socket's default first; its
      // client validation and options are the first socket's (a Gateway's frontend TLS
      // settings are per port, the same on each of its addresses). Dropping them would serve
      // the port without the client validation its Gateway asks for.
      entry.parts.push(socket);
      const tls = mergeTls(entry.parts);
      if (tls) entry.socket.tls = tls;
    }
    entry.from.push(socket.name);
    for (const vhost of socket.vhosts) {
      const seen = entry.hosts.get(vhost.hostname);
      if (seen === undefined) {
        entry.hosts.set(vhost.hostname, { vhost, socket: socket.name });
        entry.socket.vhosts.push(vhost);
      } else if (!isDeepStrictEqual(seen.vhost, vhost)) {
        return {
          ok: false,
          error:
            `sockets ${seen.socket} and ${socket.name} share port ${socket.port} but route hostname ${JSON.stringify(vhost.hostname)} differently; ` +
            `bound on the one listen address ${address} they cannot be told apart`,
        };
      }
    }
  }
  return { ok: true, ir: { ...ir, sockets: [...byPort.values()].map((e) => e.socket) } };
}
