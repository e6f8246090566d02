// Backend TLS in a gateway pod: the material the operator published in the Gateway's certificate
// Secret (src/ir/certificate-secret.ts, "backend-ca." and "backend-client." entries), read as
// the backend TLS proxy's configuration takes it. The proxy's configuration itself is built by
// the same functions as in standalone mode (src/pipeline/backend-tls-proxy.ts); only the
// material's source differs, and it is checked again here, as anything read from the Secret is.
import { backendTlsMaterial, type BackendTlsMaterial } from '../pipeline/backend-tls-proxy.ts';
import { decodeCertificateSecret } from '../ir/certificate-secret.ts';

export function podBackendTlsMaterial(published: { data?: Record<string, string> | null } | undefined): BackendTlsMaterial {
  const decoded = decodeCertificateSecret(published);
  return backendTlsMaterial([...decoded.backendConfigMaps.values()], [...decoded.backendSecrets.values()]);
}
