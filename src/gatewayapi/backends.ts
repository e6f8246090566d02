// backendRef resolution: which Service port a reference names, whether the route may use it
// (ReferenceGrant), and the ResolvedRefs reason when it may not.
import { MAX_WEIGHT } from '../ir/limits.ts';
import type { HTTPBackendRef, HTTPRoute, ReferenceGrant, Service } from './types.ts';
import { GATEWAY_GROUP } from './types.ts';

export type BackendResolution =
  | { ok: true; namespace: string; name: string; port: number; weight: number }
  | { ok: false; weight: number; reason: 'InvalidKind' | 'RefNotPermitted' | 'BackendNotFound' | 'UnsupportedValue' | 'UnsupportedProtocol'; message: string };

// Varnish speaks HTTP/1.1 (and WebSocket through pipe) to backends, without TLS. Other
// protocols would be spoken wrongly, so such a backendRef is refused instead.
const UNSUPPORTED_APP_PROTOCOLS = new Set(['kubernetes.io/h2c', 'kubernetes.io/wss', 'https', 'h2', 'h2c', 'grpc']);

export interface BackendIndex {
  services: Map<string, Service>;
  grants: ReferenceGrant[];
  /** Services made unusable by a rejected Service or EndpointSlice manifest: key -> why. */
  invalid?: ReadonlyMap<string, string>;
  /** Whether a BackendTLSPolicy targets the Service: the gateway then speaks TLS to it. */
  tlsTargets?: (namespace: string, name: string) => boolean;
}

export function resolveBackendRef(route: HTTPRoute, ref: HTTPBackendRef, index: BackendIndex): BackendResolution {
  const weight = ref.weight ?? 1;
  const routeNs = route.metadata.namespace as string;
  const group = ref.group ?? '';
  const kind = ref.kind ?? 'Service';
  const namespace = ref.namespace ?? routeNs;
  const what = `${group ? `${group}/` : ''}${kind} ${namespace}/${ref.name}`;
  if (!Number.isInteger(weight) || weight < 0 || weight > MAX_WEIGHT) {
    return { ok: false, weight: 0, reason: 'UnsupportedValue', message: `backendRef ${what}: weight must be 0-${MAX_WEIGHT}` };
  }
  if (group !== '' || kind !== 'Service') {
    return { ok: false, weight, reason: 'InvalidKind', message: `backendRef ${what}: only core Services are supported` };
  }
  if (namespace !== routeNs && !referenceGranted(index.grants, routeNs, namespace, ref.name)) {
    return { ok: false, weight, reason: 'RefNotPermitted', message: `backendRef ${what}: no ReferenceGrant in ${namespace} allows HTTPRoutes from ${routeNs}` };
  }
  const invalid = index.invalid?.get(`${namespace}/${ref.name}`);
  if (invalid !== undefined) return { ok: false, weight, reason: 'BackendNotFound', message: `backendRef ${what}: ${invalid}` };
  const svc = index.services.get(`${namespace}/${ref.name}`);
  if (!svc) return { ok: false, weight, reason: 'BackendNotFound', message: `backendRef ${what}: Service not found` };
  if (ref.port === undefined) return { ok: false, weight, reason: 'UnsupportedValue', message: `backendRef ${what}: port is required` };
  const port = (svc.spec.ports ?? []).find((p) => p.port === ref.port);
  if (!port) {
    return { ok: false, weight, reason: 'BackendNotFound', message: `backendRef ${what}: Service has no port ${ref.port}` };
  }
  const tls = port.appProtocol === 'https' && index.tlsTargets?.(namespace, ref.name) === true;
  if (port.appProtocol !== undefined && UNSUPPORTED_APP_PROTOCOLS.has(port.appProtocol) && !tls) {
    return {
      ok: false,
      weight,
      reason: 'UnsupportedProtocol',
      message: `backendRef ${what}: port ${ref.port} has appProtocol ${port.appProtocol}, which Varnish cannot speak to a backend`,
    };
  }
  return { ok: true, namespace, name: ref.name, port: ref.port, weight };
}

export function referenceGranted(grants: ReferenceGrant[], fromNs: string, toNs: string, serviceName: string): boolean {
  return grants.some(
    (g) =>
      g.metadata.namespace === toNs &&
      (g.spec.from ?? []).some((f) => f.group === GATEWAY_GROUP && f.kind === 'HTTPRoute' && f.namespace === fromNs) &&
      (g.spec.to ?? []).some((t) => (t.group ?? '') === '' && t.kind === 'Service' && (t.name === undefined || t.name === '' || t.name === serviceName)),
  );
}
