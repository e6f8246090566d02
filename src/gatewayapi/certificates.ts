// HTTPS listener certificates: which Secrets a listener's tls.certificateRefs name, whether the
// listener may use them (ReferenceGrant), and whether each holds a usable certificate and key.
// Pure: the Secrets come from the snapshot. Key material is read here only to check that it
// parses and belongs to the certificate; nothing derived from it leaves this module except
// the verdict, and no message quotes Secret data.
import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { IR_LIMITS } from '../ir/schema.ts';
import type { IRCertificateRef } from '../ir/types.ts';
import { validHostname } from './hostnames.ts';
import { GATEWAY_GROUP, type ReferenceGrant, type Secret, type SecretObjectReference } from './types.ts';

export const TLS_SECRET_TYPE = 'kubernetes.io/tls';
export const TLS_CERT_KEY = 'tls.crt';
export const TLS_KEY_KEY = 'tls.key';

export type CertificateResolution =
  | { ok: true; ref: IRCertificateRef }
  | { ok: false; reason: 'InvalidCertificateRef' | 'RefNotPermitted'; message: string };

/** The PEM text of one Secret key: stringData wins over data, as the API server merges them. */
export function secretValue(secret: Secret, key: string): Buffer | undefined {
  const s = secret.stringData?.[key];
  if (s !== undefined) return Buffer.from(s, 'utf8');
  const d = secret.data?.[key];
  return d === undefined ? undefined : Buffer.from(d, 'base64');
}

/**
 * Resolves one certificateRef of a listener of a Gateway in `gatewayNs`. `secrets` is keyed by
 * "namespace/name".
 */
export function resolveCertificateRef(
  gatewayNs: string,
  ref: SecretObjectReference,
  secrets: ReadonlyMap<string, Secret>,
  grants: readonly ReferenceGrant[],
): CertificateResolution {
  const group = ref.group ?? '';
  const kind = ref.kind ?? 'Secret';
  const namespace = ref.namespace ?? gatewayNs;
  const what = `certificateRef ${group ? `${group}/` : ''}${kind} ${namespace}/${ref.name}`;
  const invalid = (message: string): CertificateResolution => ({ ok: false, reason: 'InvalidCertificateRef', message: `${what}: ${message}` });
  if (group !== '' || kind !== 'Secret') return invalid('only core Secrets are supported');
  if (namespace !== gatewayNs && !secretGranted(grants, gatewayNs, namespace, ref.name)) {
    return { ok: false, reason: 'RefNotPermitted', message: `${what}: no ReferenceGrant in ${namespace} allows Gateways from ${gatewayNs}` };
  }
  const secret = secrets.get(`${namespace}/${ref.name}`);
  if (!secret) return invalid('Secret not found');
  const problem = tlsSecretProblem(secret);
  if (problem) return invalid(problem);
  const cert = new X509Certificate(secretValue(secret, TLS_CERT_KEY) as Buffer);
  return { ok: true, ref: { namespace, name: ref.name, hostnames: certificateHostnames(cert) } };
}

/**
 * Why a Secret cannot serve as a listener certificate, or null. The messages name keys and
 * what is wrong with them, never their content.
 */
export function tlsSecretProblem(secret: Secret): string | null {
  if (secret.type !== TLS_SECRET_TYPE) return `Secret type must be ${TLS_SECRET_TYPE}, not ${JSON.stringify(secret.type ?? '')}`;
  const certPem = secretValue(secret, TLS_CERT_KEY);
  const keyPem = secretValue(secret, TLS_KEY_KEY);
  if (!certPem?.length) return `Secret has no ${TLS_CERT_KEY}`;
  if (!keyPem?.length) return `Secret has no ${TLS_KEY_KEY}`;
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch {
    return `${TLS_CERT_KEY} is not a PEM certificate`;
  }
  let publicFromKey: Buffer;
  try {
    publicFromKey = createPublicKey(createPrivateKey(keyPem)).export({ type: 'spki', format: 'der' });
  } catch {
    return `${TLS_KEY_KEY} is not an unencrypted PEM private key`;
  }
  const publicFromCert = cert.publicKey.export({ type: 'spki', format: 'der' });
  if (!publicFromKey.equals(publicFromCert)) return `${TLS_KEY_KEY} does not belong to the certificate in ${TLS_CERT_KEY}`;
  return null;
}

/**
 * DNS names the certificate covers, lowercase: its subjectAltName DNS entries, or its subject
 * CN when it has none (as TLS clients used to accept). Invalid names are left out; at most
 * IR_LIMITS.hostnamesPerCertificate are listed (the terminator reads the certificate itself,
 * the list is for status and logs).
 */
export function certificateHostnames(cert: X509Certificate): string[] {
  const names = new Set<string>();
  const san = cert.subjectAltName;
  if (san) {
    for (const entry of san.split(', ')) {
      if (entry.startsWith('DNS:')) names.add(entry.slice(4).toLowerCase());
    }
  } else {
    const cn = /(?:^|\n)CN=([^\n]*)/.exec(cert.subject)?.[1];
    if (cn) names.add(cn.toLowerCase());
  }
  return [...names].filter((h) => h !== '*' && validHostname(h, true) === null).slice(0, IR_LIMITS.hostnamesPerCertificate);
}

/** A ReferenceGrant in `toNs` lets Gateways of `fromNs` use the Secret `name`. */
export function secretGranted(grants: readonly ReferenceGrant[], fromNs: string, toNs: string, name: string): boolean {
  return grants.some(
    (g) =>
      g.metadata.namespace === toNs &&
      (g.spec.from ?? []).some((f) => f.group === GATEWAY_GROUP && f.kind === 'Gateway' && f.namespace === fromNs) &&
      (g.spec.to ?? []).some((t) => (t.group ?? '') === '' && t.kind === 'Secret' && (t.name === undefined || t.name === '' || t.name === name)),
  );
}
