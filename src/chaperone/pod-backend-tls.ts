// Backend TLS in a gateway pod: the backend TLS proxy's configuration built from the routing IR's
// TLS services and the material the operator published in the Gateway's certificate Secret
// (src/ir/certificate-secret.ts, "backend-ca." and "backend-client." entries). The same function
// as standalone mode builds it (src/pipeline/backend-tls-proxy.ts); only the material's source
// differs, and it is checked again here, as anything read from the Secret is.
import { backendTlsMaterial, backendTlsProxy, type BackendTlsProxy } from '../pipeline/backend-tls-proxy.ts';
import { decodeCertificateSecret } from '../ir/certificate-secret.ts';
import type { EndpointMap, RoutingIR } from '../ir/types.ts';

/** null when no service of the IR speaks TLS to its backends. */
export function podBackendTls(
  ir: RoutingIR,
  endpoints: EndpointMap,
  ports: ReadonlyMap<string, number>,
  published: { data?: Record<string, string> | null } | undefined,
): BackendTlsProxy | null {
  if (!ir.services.some((s) => s.tls)) return null;
  const decoded = decodeCertificateSecret(published);
  return backendTlsProxy(ir, endpoints, ports, backendTlsMaterial([...decoded.backendConfigMaps.values()], [...decoded.backendSecrets.values()]));
}
