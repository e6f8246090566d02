// Identity of one backend TLS connection target: a Service port of the IR (with its client
// certificate) and one of its endpoints. The TLS proxy runs one service per key, accepting on a
// loopback port; the VCL compiler declares that port as the endpoint's backend.
import { serviceKey, type IREndpoint, type IRService } from './types.ts';

/** Loopback address the TLS proxy accepts on. */
export const TLS_PROXY_ADDRESS = '127.0.0.1';

export function tlsProxyKey(svc: IRService, ep: IREndpoint): string {
  const client = svc.tls?.clientCertificate;
  return `${serviceKey(svc)}|${client ? `${client.namespace}/${client.name}` : ''}|${ep.address}|${ep.port}`;
}
