// A Gateway's infrastructure needs (src/ir/infra.ts) from its evaluated state.
import type { GatewayInfra, InfraListener } from '../ir/infra.ts';
import type { GatewayState } from './listeners.ts';

export function gatewayInfra(g: GatewayState): GatewayInfra {
  const listeners: InfraListener[] = g.listeners
    .filter((l) => l.usable)
    .map((l) => ({
      name: l.listener.name,
      protocol: l.listener.protocol,
      port: l.listener.port,
      hostname: l.hostname,
      // Filled once TLS termination exists: HTTPS and TLS listeners are not usable yet.
      certificateRefs: [],
    }));
  const infrastructure = g.gateway.spec.infrastructure;
  return {
    listeners,
    addresses: [...g.addresses],
    labels: { ...(infrastructure?.labels ?? {}) },
    annotations: { ...(infrastructure?.annotations ?? {}) },
  };
}
