// What a Gateway's own objects say about it: its addresses come from its Service, and it is
// Programmed only once pods serve it and it has an address to be reached at.
import type { V1Deployment, V1Service } from '@kubernetes/client-node';
import { condition } from '../gatewayapi/conditions.ts';
import type { GatewayStatusAddress } from '../gatewayapi/status.ts';
import type { Condition } from '../gatewayapi/types.ts';

/** Load-balancer ingress addresses, else the cluster IP (none for a headless Service). */
export function serviceAddresses(service: V1Service | undefined): GatewayStatusAddress[] {
  const ingress = service?.status?.loadBalancer?.ingress ?? [];
  const out: GatewayStatusAddress[] = [];
  for (const i of ingress) {
    if (i.ip) out.push({ type: 'IPAddress', value: i.ip });
    else if (i.hostname) out.push({ type: 'Hostname', value: i.hostname });
  }
  if (out.length > 0) return out;
  const clusterIP = service?.spec?.clusterIP;
  return clusterIP && clusterIP !== 'None' ? [{ type: 'IPAddress', value: clusterIP }] : [];
}

/**
 * Programmed for an accepted Gateway whose listeners are all usable (the translator said
 * True): NoResources while no pod of its Deployment is ready, AddressNotAssigned while its
 * Service has no address, True once both hold (Gateway API GatewayConditionReason values).
 */
export function infraProgrammed(deployment: V1Deployment | undefined, addresses: readonly GatewayStatusAddress[], generation: number): Condition {
  const ready = deployment?.status?.readyReplicas ?? 0;
  if (ready < 1) return condition('Programmed', false, 'NoResources', 'no gateway pod is ready yet', generation);
  if (addresses.length === 0) return condition('Programmed', false, 'AddressNotAssigned', 'the Gateway Service has no address yet', generation);
  // A constant message: a change of the pod count is not a transition.
  return condition('Programmed', true, 'Programmed', 'Gateway is programmed', generation);
}
