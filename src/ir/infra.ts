// What one Gateway needs from the infrastructure, next to its routing IR: the ports its pods
// listen on, the addresses it binds, and the labels and annotations its generated objects carry
// (Gateway spec.infrastructure). The operator renders Deployments and Services from it; the
// standalone server binds the routing IR's sockets and needs none of it.
import type { RoutingIR } from './types.ts';

/** A namespaced object reference, e.g. a Gateway or a TLS certificate Secret. */
export interface ObjectRef {
  namespace: string;
  name: string;
}

export interface InfraListener {
  name: string;
  /** "HTTP" today; "HTTPS" / "TLS" once termination exists. */
  protocol: string;
  port: number;
  /** Listener hostname pattern, "*" when the listener names none. */
  hostname: string;
  /** Secrets holding the listener's certificates (spec.listeners[].tls.certificateRefs). */
  certificateRefs: ObjectRef[];
}

export interface GatewayInfra {
  /** The listeners that carry traffic (accepted, not conflicted), in spec order. */
  listeners: InfraListener[];
  /** IP addresses the Gateway binds: spec.addresses, or the default address. */
  addresses: string[];
  /** spec.infrastructure.labels / annotations, validated as Kubernetes labels and annotations. */
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

/** One accepted Gateway: what to deploy for it and what its data plane routes. */
export interface GatewayIR {
  gateway: ObjectRef;
  infra: GatewayInfra;
  /** The Gateway's routing on its own, as if no other Gateway shared its addresses. */
  routing: RoutingIR;
}
