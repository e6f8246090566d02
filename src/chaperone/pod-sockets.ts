// The sockets a gateway pod listens on, from the published config and the pod's own ports.
//
// The pod's ports are fixed for its life (its Deployment names them; a change of ports is a
// new pod), and varnishd can change its sockets only by restarting, which cuts every open
// connection. So the pod listens on exactly its ports whatever the config says:
// - a socket of the config on another port is left out (a listener added: the pods rolled out
//   for the new ports serve it);
// - a port of the pod with no socket in the config keeps a socket that routes nothing (a
//   listener removed: requests there get 404, as for an unknown host, until the roll replaces
//   the pod). It keeps the name it had, since the VCL and the restart check know sockets by name.
// The sockets are in the order of the pod's ports, so the same ports are the same listener set
// whatever order the config lists them in.
import type { IRSocket, RoutingIR } from '../ir/types.ts';

export interface PodSockets {
  ir: RoutingIR;
  /** Ports of the config this pod does not listen on. */
  leftOut: number[];
  /** Ports of the pod the config has no listener on: their sockets route nothing. */
  unrouted: number[];
}

/** Name of an unrouted socket for a port this pod never served a listener on. */
export const unroutedSocketName = (port: number) => `vgw_unrouted_${port}`;

/**
 * `bound`: the config with its sockets bound on the pod's `address` (bindSocketsTo);
 * `names`: the socket name this pod last used for each port.
 */
export function podSockets(bound: RoutingIR, ports: readonly number[], address: string, names: ReadonlyMap<number, string>): PodSockets {
  const byPort = new Map(bound.sockets.map((s) => [s.port, s]));
  const leftOut = bound.sockets.filter((s) => !ports.includes(s.port)).map((s) => s.port);
  const unrouted: number[] = [];
  const sockets: IRSocket[] = [];
  for (const port of new Set(ports)) {
    const socket = byPort.get(port);
    if (socket) {
      sockets.push(socket);
      continue;
    }
    unrouted.push(port);
    sockets.push({ name: names.get(port) ?? unroutedSocketName(port), address, port, vhosts: [] });
  }
  return { ir: { ...bound, sockets }, leftOut, unrouted };
}
