// EndpointSlices -> ready endpoints per Service port. Several slices per Service are merged,
// not-ready endpoints are skipped, and named target ports resolve through the slice's ports.
import type { EndpointMap, IREndpoint, IRService } from '../ir/types.ts';
import { serviceKey } from '../ir/types.ts';
import type { EndpointSlice } from './types.ts';

const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

export function resolveEndpoints(services: IRService[], slices: EndpointSlice[]): EndpointMap {
  const byService = new Map<string, EndpointSlice[]>();
  for (const s of slices) {
    const svc = s.metadata.labels?.[SERVICE_NAME_LABEL];
    if (!svc) continue;
    const key = `${s.metadata.namespace}/${svc}`;
    const list = byService.get(key) ?? [];
    list.push(s);
    byService.set(key, list);
  }
  const out: EndpointMap = new Map();
  for (const ref of services) {
    const endpoints: IREndpoint[] = [];
    const seen = new Set<string>();
    for (const slice of byService.get(`${ref.namespace}/${ref.name}`) ?? []) {
      if (slice.addressType === 'FQDN') continue;
      const slicePort = pickSlicePort(slice, ref.portName, ref.targetPort);
      if (slicePort === undefined) continue;
      for (const ep of slice.endpoints ?? []) {
        // Spec: a nil ready condition means ready.
        if (ep.conditions?.ready === false) continue;
        for (const address of ep.addresses ?? []) {
          const id = `${address}:${slicePort}`;
          if (seen.has(id)) continue;
          seen.add(id);
          endpoints.push({ address, port: slicePort });
        }
      }
    }
    endpoints.sort((a, b) => (a.address === b.address ? a.port - b.port : a.address < b.address ? -1 : 1));
    out.set(serviceKey(ref), endpoints);
  }
  return out;
}

// A slice lists ports by the Service port's name; an unnamed single-port Service uses "".
function pickSlicePort(slice: EndpointSlice, name: string, targetPort: number | string | undefined): number | undefined {
  const ports = slice.ports ?? [];
  const hit = ports.find((p) => (p.name ?? '') === name);
  if (hit?.port !== undefined) return hit.port;
  if (ports.length === 0 && typeof targetPort === 'number') return targetPort;
  return undefined;
}
