// The TLS terminator's configuration in a gateway pod: the routing IR's TLS sockets with the
// certificates and client CA bundles of the Gateway's published certificate Secret
// (src/ir/certificate-secret.ts).
// The Secret is read like any input: each entry split, checked and bounded again, and an
// entry that is unusable is reported and left out, the other certificates keep serving.
import { createHash } from 'node:crypto';
import type { V1Secret } from '@kubernetes/client-node';
import { caBundleId, decodeCertificateSecret, OMITTED_ANNOTATION } from '../ir/certificate-secret.ts';
import type { RoutingIR } from '../ir/types.ts';
import { certificateId, tlsFrontends } from '../pipeline/tls-frontends.ts';
import type { HitchFrontend } from '../varnish/hitch.ts';

export interface PodTls {
  frontends: HitchFrontend[];
  pems: Map<string, Buffer>;
  /** Client CA bundles by id (HitchFrontend.clientVerify.ca). */
  caBundles: Map<string, Buffer>;
  /** Certificates the IR names that cannot be served, and entries of the Secret that cannot be read. */
  problems: string[];
  /**
   * A TLS socket has no frontend yet (no certificate, or none of the CA bundles its client
   * validation names), and the operator did not say it left them out: the Secret has not caught
   * up with the routing config. A pod that is starting waits for it.
   */
  pending: boolean;
  /** sha256 over frontends and certificates: equal key, nothing for the terminator to do. */
  key: string;
}

/** Ids the operator listed as left out (bounded; anything unreadable counts as none). */
function omittedIds(secret: V1Secret | undefined): Set<string> {
  const raw = secret?.metadata?.annotations?.[OMITTED_ANNOTATION];
  if (raw === undefined || raw.length > 1024 * 1024) return new Set();
  try {
    const parsed: unknown = JSON.parse(raw);
    return new Set(Array.isArray(parsed) ? parsed.filter((x): x is string => typeof x === 'string') : []);
  } catch {
    return new Set();
  }
}

/** null when the IR has no TLS socket (no terminator needed). */
export function podTls(ir: RoutingIR, published: V1Secret | undefined): PodTls | null {
  if (!ir.sockets.some((s) => s.tls)) return null;
  const decoded = decodeCertificateSecret(published);
  const { frontends, pems, caBundles, missing } = tlsFrontends(ir, decoded.secrets, decoded.configMaps);
  const omitted = omittedIds(published);
  const served = new Set(frontends.map((f) => `${f.address}:${f.port}`));
  const pending = ir.sockets.some(
    (s) =>
      s.tls &&
      !served.has(`${s.address}:${s.port}`) &&
      s.tls.certificates.some((c) => !omitted.has(certificateId(c.namespace, c.name))) &&
      (s.tls.clientValidation?.caCertificates ?? []).every((c) => !omitted.has(caBundleId(c.namespace, c.name))),
  );
  const caRefs = new Set(ir.sockets.flatMap((s) => (s.tls?.clientValidation?.caCertificates ?? []).map((c) => `${c.namespace}/${c.name}`)));
  const problems = [
    ...(published ? [] : ['the certificate Secret is not published (yet)']),
    ...decoded.problems.map((p) => `certificate Secret entry ${p}`),
    ...missing.map((m) => m.replace(/: (Secret|ConfigMap) not found$/, ': not in the certificate Secret')).map((m) => `${caRefs.has(m.slice(0, m.indexOf(': '))) ? 'CA bundle' : 'certificate'} ${m}`),
  ];
  const hash = createHash('sha256').update(JSON.stringify(frontends));
  for (const id of [...pems.keys()].sort()) hash.update(id).update('\0').update(pems.get(id) as Buffer).update('\0');
  for (const id of [...caBundles.keys()].sort()) hash.update(id).update('\0').update(caBundles.get(id) as Buffer).update('\0');
  return { frontends, pems, caBundles, problems, pending, key: hash.digest('hex') };
}
