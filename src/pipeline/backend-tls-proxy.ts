// The backend TLS proxy's configuration for a routing IR: one service per endpoint of every TLS
// service, with the CA bundles and client certificates the IR names read from the objects at
// hand. Like tls-frontends.ts, this is where material joins the configuration on its way to
// private files. The material comes as a Map of PEM text by id, so a cluster data plane can
// feed it from what the operator publishes instead of the manifests.
import { createHash } from 'node:crypto';
import { caBundleProblem, CA_CERT_KEY } from '../gatewayapi/backend-tls.ts';
import { secretValue, tlsSecretProblem, TLS_CERT_KEY, TLS_KEY_KEY } from '../gatewayapi/certificates.ts';
import type { ConfigMap, Secret } from '../gatewayapi/types.ts';
import { tlsProxyKey } from '../ir/backend-tls.ts';
import { serviceKey, type EndpointMap, type RoutingIR } from '../ir/types.ts';
import type { StunnelConfig, StunnelService } from '../varnish/stunnel.ts';

export interface BackendTlsProxy extends StunnelConfig {
  /** CA bundles or client certificates named by the IR that cannot be used now, as "what: why".
   *  The services needing them are left out (their backends fail). */
  missing: string[];
}

/**
 * Every tlsProxyKey the IR's TLS services need, for the port allocator, with a fingerprint of
 * what its connections trust and present (the policy's settings and the PEM bytes of its CA
 * bundles and client certificate). The proxy keeps open connections on a reload, and varnishd
 * reuses them; a changed fingerprint gets a new port, so after a CA rotation or a hostname
 * change no request goes over a connection verified by the old rules (the old port's pooled
 * connections go unused and close).
 */
export function tlsProxyTargets(ir: RoutingIR, endpoints: EndpointMap, material: BackendTlsMaterial): Map<string, string> {
  const out = new Map<string, string>();
  for (const svc of ir.services) {
    if (!svc.tls) continue;
    const eps = endpoints.get(serviceKey(svc)) ?? [];
    if (eps.length === 0) continue;
    const h = createHash('sha256').update(JSON.stringify(svc.tls));
    const refs: ['ca' | 'client', { namespace: string; name: string }][] = [
      ...('caCertificates' in svc.tls.verify ? svc.tls.verify.caCertificates.map((r) => ['ca', r] as ['ca', typeof r]) : []),
      ...(svc.tls.clientCertificate ? [['client', svc.tls.clientCertificate] as ['client', { namespace: string; name: string }]] : []),
    ];
    for (const [kind, ref] of refs) h.update('\0').update(material.pem(kind, ref.namespace, ref.name));
    const fingerprint = h.digest('hex');
    for (const ep of eps) out.set(tlsProxyKey(svc, ep), fingerprint);
  }
  return out;
}

export interface BackendTlsMaterial {
  /** PEM text (a CA bundle, or a chain followed by its key), or why there is none. */
  pem(kind: 'ca' | 'client', namespace: string, name: string): Buffer | string;
}

/** PEM material by id: CA bundles from ConfigMaps, client certificates (chain + key) from Secrets. */
export function backendTlsMaterial(configMaps: readonly ConfigMap[], secrets: readonly Secret[]): BackendTlsMaterial {
  const maps = new Map(configMaps.map((c) => [`${c.metadata.namespace}/${c.metadata.name}`, c]));
  const secretMap = new Map(secrets.map((s) => [`${s.metadata.namespace}/${s.metadata.name}`, s]));
  return {
    pem(kind, namespace, name) {
      if (kind === 'ca') {
        const map = maps.get(`${namespace}/${name}`);
        const problem = caBundleProblem(map);
        return problem ?? Buffer.from(map?.data?.[CA_CERT_KEY] as string, 'utf8');
      }
      const secret = secretMap.get(`${namespace}/${name}`);
      const problem = secret ? tlsSecretProblem(secret) : 'Secret not found';
      if (problem || !secret) return problem ?? 'Secret not found';
      const cert = secretValue(secret, TLS_CERT_KEY) as Buffer;
      return Buffer.concat([cert, Buffer.from(cert.at(-1) === 0x0a ? '' : '\n'), secretValue(secret, TLS_KEY_KEY) as Buffer]);
    },
  };
}

export function backendTlsProxy(
  ir: RoutingIR,
  endpoints: EndpointMap,
  ports: ReadonlyMap<string, number>,
  material: BackendTlsMaterial,
): BackendTlsProxy {
  const pems = new Map<string, Buffer>();
  const missing = new Set<string>();
  const services: StunnelService[] = [];
  const load = (kind: 'ca' | 'client', namespace: string, name: string): string | null => {
    const id = `${kind}_${namespace}_${name}`;
    if (pems.has(id)) return id;
    const pem = material.pem(kind, namespace, name);
    if (typeof pem === 'string') {
      missing.add(`${kind === 'ca' ? 'ConfigMap' : 'Secret'} ${namespace}/${name}: ${pem}`);
      return null;
    }
    pems.set(id, pem);
    return id;
  };
  for (const svc of ir.services) {
    if (!svc.tls) continue;
    const tls = svc.tls;
    // Several CA bundles are trusted together: one file holds them all.
    let caBundle: string | null = null;
    if ('caCertificates' in tls.verify) {
      const ids = tls.verify.caCertificates.map((r) => load('ca', r.namespace, r.name)).filter((id): id is string => id !== null);
      if (ids.length === 0) continue;
      caBundle = ids.length === 1 ? ids[0] : `ca_${ids.join('+').replace(/[^a-z0-9._-]/g, '_').slice(0, 200)}`;
      if (ids.length > 1 && !pems.has(caBundle)) pems.set(caBundle, Buffer.concat(ids.flatMap((id) => [pems.get(id) as Buffer, Buffer.from('\n')])));
    }
    let clientCertificate: string | undefined;
    if (tls.clientCertificate) {
      const id = load('client', tls.clientCertificate.namespace, tls.clientCertificate.name);
      if (id === null) continue;
      clientCertificate = id;
    }
    for (const ep of endpoints.get(serviceKey(svc)) ?? []) {
      const acceptPort = ports.get(tlsProxyKey(svc, ep));
      if (acceptPort === undefined) continue;
      const s: StunnelService = { acceptPort, address: ep.address, port: ep.port, sni: tls.sni, caBundle, hostnames: tls.hostnames };
      if (clientCertificate) s.clientCertificate = clientCertificate;
      services.push(s);
    }
  }
  return { services, pems, missing: [...missing] };
}
