// EndpointSlices -> ready endpoints per Service port. Several slices per Service are merged,
// not-ready endpoints are skipped, and named target ports resolve through the slice's ports.
// Slices are schema-checked where they enter (file loader, in-pod agent); the checks here are
// defence in depth, because addresses and ports are written into VCL backend definitions: an
// address must be an IP of the slice's addressType and a port an integer 1-65535, else it is
// skipped (and reported through onInvalid), never passed on.
import { isIPv4, isIPv6 } from 'node:net';
import type { EndpointMap, IREndpoint, IRService } from '../ir/types.ts';
import { serviceKey } from '../ir/types.ts';
import type { EndpointSlice } from './types.ts';

const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

const ADDRESS_CHECK: Record<string, (a: string) => boolean> = { IPv4: isIPv4, IPv6: isIPv6 };

/** Told about each value skipped because it is not what the API allows. */
export type InvalidEndpoint = (slice: EndpointSlice, message: string) => void;

export function resolveEndpoints(services: IRService[], slices: EndpointSlice[], onInvalid: InvalidEndpoint = () => {}): EndpointMap {
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
      const validAddress = Object.hasOwn(ADDRESS_CHECK, slice.addressType ?? '') ? ADDRESS_CHECK[slice.addressType as string] : undefined;
      if (!validAddress) continue; // FQDN (unsupported) or unknown address types.
      const slicePort = pickSlicePort(slice, ref.portName, ref.targetPort);
      if (slicePort === undefined) continue;
      if (!Number.isInteger(slicePort) || slicePort < 1 || slicePort > 65535) {
        onInvalid(slice, `port ${JSON.stringify(slicePort).slice(0, 64)} is not an integer 1-65535; slice skipped`);
        continue;
      }
      for (const ep of slice.endpoints ?? []) {
        // Spec: a nil ready condition means ready.
        if (ep.conditions?.ready === false) continue;
        for (const address of ep.addresses ?? []) {
          if (typeof address !== 'string' || !validAddress(address)) {
            onInvalid(slice, `address ${JSON.stringify(address).slice(0, 64)} is not an ${slice.addressType} address; skipped`);
            continue;
          }
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
