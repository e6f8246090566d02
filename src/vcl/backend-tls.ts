// Endpoints of a Service the gateway speaks TLS to: varnishd cannot, so each endpoint is
// reached through the TLS proxy's loopback port for it (src/varnish/stunnel.ts). The backend
// the compiler declares is that port; the Host header and everything else stay as they are.
import { TLS_PROXY_ADDRESS, tlsProxyKey } from '../ir/backend-tls.ts';
import type { IREndpoint, IRService } from '../ir/types.ts';

/**
 * `endpoints` of `svc` as varnishd must connect to them: unchanged for a plain service; for a
 * TLS service the proxy's port of each, leaving out any without one (never clear text).
 */
export function viaTlsProxy(svc: IRService, endpoints: readonly IREndpoint[], ports: ReadonlyMap<string, number> | undefined): IREndpoint[] {
  if (!svc.tls) return [...endpoints];
  const out: IREndpoint[] = [];
  for (const ep of endpoints) {
    const port = ports?.get(tlsProxyKey(svc, ep));
    if (port !== undefined) out.push({ address: TLS_PROXY_ADDRESS, port });
  }
  return out;
}
