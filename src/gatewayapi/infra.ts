// A Gateway's infrastructure needs (src/ir/infra.ts) from its evaluated state.
import type { GatewayInfra, InfraListener } from '../ir/infra.ts';
import type { GatewayState } from './listeners.ts';

export function gatewayInfra(g: GatewayState): GatewayInfra {
  const listeners: InfraListener[] = g.listeners
    // A listener without a resolved certificate is not served: nothing to listen on for it.
    .filter((l) => l.usable && !l.noCertificate)
    .map((l) => ({
      name: l.listener.name,
      protocol: l.listener.protocol,
      port: l.listener.port,
      hostname: l.hostname,
      // The Secrets that resolved (HTTPS listeners only): the data plane mounts or reads them.
      certificateRefs: (l.certificates ?? []).map((c) => ({ namespace: c.namespace, name: c.name })),
    }));
  const infrastructure = g.gateway.spec.infrastructure;
  return {
    listeners,
    addresses: [...g.addresses],
    labels: { ...(infrastructure?.labels ?? {}) },
    annotations: { ...(infrastructure?.annotations ?? {}) },
  };
}
