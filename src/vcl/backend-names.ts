// Names of endpoint backends in the generated VCL, and back.
//
// A backend is named after the address it connects to, so that its name alone says which
// endpoint it is, in whichever VCL or shard it appears: the stats collector labels the
// per-backend counters (VBE.<vcl>.<backend>.<field>) by decoding the name, without reading
// the VCL back from varnishd.
//
//   10.1.2.3, port 8080  -> vgw_e4_10_1_2_3_8080    -> 10.1.2.3:8080
//   fd00::1,  port 80    -> vgw_e6_fd00__1_80       -> [fd00::1]:80
//
// VCL identifiers allow [A-Za-z0-9_-] only, so '.' and ':' both become '_'; the version
// digit after `vgw_e` says which one to put back, and the port is always the last part.
// IPv6 addresses are written in their canonical form (WHATWG URL serialization: lower case,
// longest run of zero groups as `::`, IPv4-mapped tails in hex), so two spellings of one
// address give one name, and the decoder accepts only canonical names so that
// name -> label -> name is one-to-one.
import { isIPv4, isIPv6 } from 'node:net';
import { vclInt, vclName } from './escape.ts';

const PREFIX = 'vgw_e';

/**
 * The canonical text of an IP literal, or null if `address` is not one. IPv4 is kept as
 * given (Node's isIPv4 already refuses leading zeros and short forms). IPv6 with a zone
 * (`fe80::1%eth0`) has no canonical form here and is refused.
 */
export function canonicalAddress(address: string): string | null {
  if (isIPv4(address)) return address;
  if (!isIPv6(address)) return null;
  try {
    return new URL(`http://[${address}]/`).hostname.slice(1, -1);
  } catch {
    return null;
  }
}

function validPort(port: number): boolean {
  return Number.isInteger(port) && port >= 0 && port <= 65535;
}

/**
 * The backend name for an endpoint, and the host to declare for it (the canonical address),
 * or null when the address is not an IP literal or the port is out of range: the compiler
 * then numbers the backend itself (vgw_e<n>).
 */
export function endpointBackend(address: string, port: number): { name: string; host: string } | null {
  const host = canonicalAddress(address);
  if (host === null || !validPort(port)) return null;
  const version = isIPv4(host) ? 4 : 6;
  return { name: vclName(`${PREFIX}${version}_${host.replace(/[.:]/g, '_')}_${vclInt(port, 0, 65535)}`), host };
}

/** The backend name for an endpoint; null as for endpointBackend(). */
export function backendName(address: string, port: number): string | null {
  return endpointBackend(address, port)?.name ?? null;
}

/**
 * `address:port` of a backend named by endpointBackend() (`[address]:port` for IPv6), or null
 * for any other name: the numbered fallback, `vgw_none`, backends of hand-written VCL,
 * non-canonical spellings.
 */
export function backendLabel(name: string): string | null {
  const m = /^vgw_e([46])_([0-9a-f_]+)_(0|[1-9][0-9]{0,4})$/.exec(name);
  if (!m) return null;
  const address = m[2].replace(/_/g, m[1] === '4' ? '.' : ':');
  const port = Number(m[3]);
  // Re-encoding refuses what endpointBackend() would never write: the wrong version digit,
  // a non-canonical IPv6 spelling, a port above 65535.
  if (endpointBackend(address, port)?.name !== name) return null;
  return m[1] === '4' ? `${address}:${port}` : `[${address}]:${port}`;
}
