// Objects the loader rejected (they failed their schema) reported where their authors look:
// a problem for each, status on Gateways and HTTPRoutes that can still be attributed to us,
// and unresolvable backends for routes that use a rejected Service or EndpointSlice.
import { condition, mergeConditions, programmed } from './conditions.ts';
import { CONTROLLER_NAME } from './features.ts';
import { previousParent, type GatewayObjectStatus, type HTTPRouteObjectStatus, type PreviousStatuses } from './status.ts';
import type { Condition, ParentReference, RejectedObject } from './types.ts';
import { GATEWAY_GROUP } from './types.ts';

const apiVersion = `${GATEWAY_GROUP}/v1`;

/** The status of a rejected object of ours (namespaced: Gateways and HTTPRoutes only). */
export type RejectedReport = (GatewayObjectStatus | HTTPRouteObjectStatus) & { metadata: { namespace: string } };

/** "routes.yaml:12: spec.hostnames: expected array, received string". */
export function rejectedMessage(r: RejectedObject): string {
  return `invalid (${r.file}:${r.line}): ${r.message}`;
}

/**
 * Service key ("namespace/name") -> why its backends cannot be used: the Service itself or
 * one of its EndpointSlices was rejected. A route using it gets ResolvedRefs=False naming the
 * field, and its share of traffic fails, instead of the whole config.
 */
export function rejectedBackends(rejected: RejectedObject[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const r of rejected) {
    if (r.namespace === undefined) continue;
    const service = r.kind === 'Service' ? r.name : r.kind === 'EndpointSlice' ? r.serviceName : undefined;
    if (service === undefined) continue;
    const key = `${r.namespace}/${service}`;
    if (!out.has(key)) out.set(key, `${r.kind} ${r.display} is ${rejectedMessage(r)}`);
  }
  return out;
}

/**
 * Status for rejected Gateways of our classes and rejected HTTPRoutes whose parentRefs name our
 * Gateways: Accepted=False naming the field. Gateways: reason ListenersNotValid (a listener
 * field), UnsupportedAddress (an address field) or InvalidParameters (anything else);
 * HTTPRoutes: UnsupportedValue on each of our parents.
 */
export function rejectedStatuses(
  rejected: RejectedObject[],
  ourClass: (name: string) => boolean,
  ourGateway: (namespace: string, name: string) => boolean,
  now: string,
  previous?: PreviousStatuses,
): RejectedReport[] {
  const out: RejectedReport[] = [];
  for (const r of rejected) {
    if (r.name === undefined || r.namespace === undefined) continue;
    const metadata = { name: r.name, namespace: r.namespace, generation: r.generation ?? 1 };
    const gen = metadata.generation;
    const message = rejectedMessage(r);
    if (r.kind === 'Gateway' && r.gatewayClassName !== undefined && ourClass(r.gatewayClassName)) {
      const reason = r.path[1] === 'listeners' ? 'ListenersNotValid' : r.path[1] === 'addresses' ? 'UnsupportedAddress' : 'InvalidParameters';
      const conditions: Condition[] = [condition('Accepted', false, reason, message, gen), programmed(false, 'Gateway', 'Gateway is not accepted', gen)];
      const before = previous?.gateway(metadata.namespace, metadata.name);
      out.push({ apiVersion, kind: 'Gateway', metadata, status: { conditions: mergeConditions(before?.conditions, conditions, now), listeners: [] } });
    } else if (r.kind === 'HTTPRoute' && r.parentRefs) {
      const parents = r.parentRefs
        .map((p): ParentReference => ({ ...p, group: p.group ?? GATEWAY_GROUP, kind: p.kind ?? 'Gateway', namespace: p.namespace ?? r.namespace }))
        .filter((p) => p.group === GATEWAY_GROUP && p.kind === 'Gateway' && ourGateway(p.namespace as string, p.name))
        .map((parentRef) => ({
          parentRef,
          controllerName: CONTROLLER_NAME,
          conditions: mergeConditions(
            previousParent(previous?.httpRoute(metadata.namespace, metadata.name), parentRef)?.conditions,
            [condition('Accepted', false, 'UnsupportedValue', message, gen)],
            now,
          ),
        }));
      if (parents.length) out.push({ apiVersion, kind: 'HTTPRoute', metadata, status: { parents } });
    }
  }
  return out;
}
