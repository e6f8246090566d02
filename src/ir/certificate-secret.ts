// A Gateway's certificates as one Kubernetes Secret: how the operator hands the key material of
// an HTTPS Gateway to its pods, and how the chaperone in each gateway pod reads it back.
//
// Gateway pods never read the Secrets that listeners reference: those may sit in any namespace
// (ReferenceGrant) and hold anything. The operator, which reads them anyway to check them,
// copies exactly the certificates its routing IR names into one Opaque Secret in the Gateway's
// namespace, and each pod may read that one Secret only (a Role limited by resourceNames).
//
// Format: one data key per certificate, the certificate id (certificateId(): "namespace_name",
// also the PEM file name in the pod), its value the PEM certificate chain followed by the
// private key, as the TLS terminator loads it. Client CA bundles (ConfigMaps' ca.crt, named by
// client certificate validation) sit beside them under caBundleId(): "ca.namespace_name", its
// value the PEM certificates; the pod never reads ConfigMaps either. Backend TLS material sits
// under its own prefixes, since a CA bundle trusted for backends is not one trusted for clients:
// backendCaBundleId() "backend-ca.namespace_name" (PEM certificates of a ConfigMap's ca.crt) and
// backendClientId() "backend-client.namespace_name" (PEM chain + key of a kubernetes.io/tls
// Secret the Gateway presents to backends). The pod treats the Secret
// as untrusted input: every entry is split, checked (certificate parses, key belongs to it) and
// bounded again.
import { createHash } from 'node:crypto';
import { GATEWAY_LABEL } from './configmap.ts';

/** A certificate's id and PEM file name: namespaces hold no "_", so the pair stays unambiguous. */
export function certificateId(namespace: string, name: string): string {
  return `${namespace}_${name}`;
}

/** A client CA bundle's data key: namespaces hold no ".", so it never reads as a certificate id. */
export function caBundleId(namespace: string, name: string): string {
  return `ca.${namespace}_${name}`;
}

/** A backend CA bundle's data key ("backend-ca." cannot start a namespace, which holds no "."). */
export function backendCaBundleId(namespace: string, name: string): string {
  return `backend-ca.${namespace}_${name}`;
}

/** The backend client certificate's data key. */
export function backendClientId(namespace: string, name: string): string {
  return `backend-client.${namespace}_${name}`;
}

/** A ConfigMap holding a CA bundle as its ca.crt, as the TLS terminator's configuration reads it. */
export interface CaBundleConfigMap {
  apiVersion: 'v1';
  kind: 'ConfigMap';
  metadata: { namespace: string; name: string };
  data: { 'ca.crt': string };
}

/** A kubernetes.io/tls Secret as the TLS terminator's configuration reads it (src/pipeline/tls-frontends.ts). */
export interface TlsSecret {
  apiVersion: 'v1';
  kind: 'Secret';
  metadata: { namespace: string; name: string };
  type: 'kubernetes.io/tls';
  stringData: { 'tls.crt': string; 'tls.key': string };
}

/** On the Secret: what it is, next to GATEWAY_LABEL (the Gateway's name, same namespace). */
export const CERTIFICATES_ROLE_LABEL = 'gateway.vgw.dev/certificates';
/** On the Secret: certificate ids the IR names that the operator left out, and why (JSON). */
export const OMITTED_ANNOTATION = 'gateway.vgw.dev/omitted-certificates';

/**
 * Bytes of PEM the Secret may hold in total. A Secret is at most 1 MiB as stored, its data
 * base64 (4/3): 700 KiB of PEM is about 933 KiB encoded, leaving room for metadata.
 */
export const CERTIFICATE_SECRET_BYTES = 700 * 1024;
/** Certificates one Secret may hold (64 listeners of 64 certificateRefs, the Gateway API maxima). */
export const CERTIFICATE_SECRET_ENTRIES = 4096;
/** A Secret data key: at most 253 characters of [-._a-zA-Z0-9]. */
const DATA_KEY = /^[-._a-zA-Z0-9]{1,253}$/;
/** certificateId(): a namespace (DNS label), "_", a Secret name (DNS subdomain). */
const CERTIFICATE_ID = /^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)_([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?)$/;
/** caBundleId(): "ca.", then a certificate id. */
const CA_BUNDLE_ID = /^ca\.([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)_([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?)$/;
/** backendCaBundleId() and backendClientId(): their prefix, then a certificate id. */
const BACKEND_ID = /^backend-(ca|client)\.([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)_([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?)$/;

export interface CertificateSecretObject {
  apiVersion: 'v1';
  kind: 'Secret';
  type: 'Opaque';
  metadata: { name: string; namespace: string; labels: Record<string, string>; annotations: Record<string, string> };
  data: Record<string, string>;
}

export interface EncodedCertificates {
  secret: CertificateSecretObject;
  /** Certificate ids left out, with why (the Secret would exceed its bounds, or the id is no data key). */
  omitted: { id: string; reason: string }[];
  /** sha256 over the Secret's labels, annotations and data: equal content, equal hash. */
  sha256: string;
}

/**
 * The Secret holding `pems` (certificate id -> PEM chain + key, and caBundleId() -> PEM
 * certificates), in id order. Entries that do
 * not fit CERTIFICATE_SECRET_BYTES or CERTIFICATE_SECRET_ENTRIES are left out, in the order
 * given (the first listeners' certificates are kept), and listed in `omitted`.
 */
export function encodeCertificateSecret(pems: ReadonlyMap<string, Buffer>, namespace: string, gateway: string, name: string): EncodedCertificates {
  const data: Record<string, string> = {};
  const omitted: EncodedCertificates['omitted'] = [];
  let bytes = 0;
  let entries = 0;
  for (const [id, pem] of pems) {
    if (!DATA_KEY.test(id)) {
      omitted.push({ id, reason: 'the id is longer than a Secret data key (253 characters)' });
    } else if (entries + 1 > CERTIFICATE_SECRET_ENTRIES) {
      omitted.push({ id, reason: `the Gateway's certificates exceed ${CERTIFICATE_SECRET_ENTRIES} entries` });
    } else if (bytes + pem.length > CERTIFICATE_SECRET_BYTES) {
      omitted.push({ id, reason: `the Gateway's certificates exceed ${CERTIFICATE_SECRET_BYTES} bytes of PEM` });
    } else {
      data[id] = pem.toString('base64');
      bytes += pem.length;
      entries++;
    }
  }
  const sorted = Object.fromEntries(Object.entries(data).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  const labels = { [GATEWAY_LABEL]: gateway, [CERTIFICATES_ROLE_LABEL]: 'true' };
  const annotations: Record<string, string> = omitted.length ? { [OMITTED_ANNOTATION]: JSON.stringify(omitted.map((o) => o.id)) } : {};
  const secret: CertificateSecretObject = { apiVersion: 'v1', kind: 'Secret', type: 'Opaque', metadata: { name, namespace, labels, annotations }, data: sorted };
  return { secret, omitted, sha256: certificateSecretHash(secret) };
}

/** sha256 of what the operator writes (labels, annotations, data), to compare with a live Secret. */
export function certificateSecretHash(secret: { metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> }; data?: Record<string, string> }): string {
  const pick = (m: Record<string, string> | undefined, keys: string[]) => keys.map((k) => [k, m?.[k] ?? null]);
  const h = createHash('sha256');
  h.update(JSON.stringify(pick(secret.metadata?.labels, [GATEWAY_LABEL, CERTIFICATES_ROLE_LABEL])));
  h.update(JSON.stringify(pick(secret.metadata?.annotations, [OMITTED_ANNOTATION])));
  h.update(JSON.stringify(Object.entries(secret.data ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))));
  return h.digest('hex');
}

export interface DecodedCertificates {
  /** kubernetes.io/tls Secrets keyed by "namespace/name", as tlsFrontends() takes them. */
  secrets: Map<string, TlsSecret>;
  /** CA bundle ConfigMaps keyed by "namespace/name", as tlsFrontends() takes them. */
  configMaps: Map<string, CaBundleConfigMap>;
  /** Backend CA bundles as ConfigMaps keyed by "namespace/name", as backendTlsMaterial() takes them. */
  backendConfigMaps: Map<string, CaBundleConfigMap>;
  /** Backend client certificates as kubernetes.io/tls Secrets keyed by "namespace/name". */
  backendSecrets: Map<string, TlsSecret>;
  /** Entries that could not be read, as "key: why" (never quoting content). */
  problems: string[];
}

/**
 * The certificates of a published Secret, as the kubernetes.io/tls Secrets they came from:
 * each entry split into its certificates (tls.crt) and its one private key (tls.key).
 * Bounded like the encoder; whether each pair is usable is checked by tlsFrontends().
 */
export function decodeCertificateSecret(secret: { data?: Record<string, string> | null } | undefined): DecodedCertificates {
  const secrets = new Map<string, TlsSecret>();
  const configMaps = new Map<string, CaBundleConfigMap>();
  const backendConfigMaps = new Map<string, CaBundleConfigMap>();
  const backendSecrets = new Map<string, TlsSecret>();
  const problems: string[] = [];
  let bytes = 0;
  for (const [key, value] of Object.entries(secret?.data ?? {})) {
    const id = CERTIFICATE_ID.exec(key);
    const ca = id ? null : CA_BUNDLE_ID.exec(key);
    const backend = id || ca ? null : BACKEND_ID.exec(key);
    if (!id && !ca && !backend) {
      problems.push(`${JSON.stringify(key.slice(0, 80))}: not a certificate or CA bundle id`);
      continue;
    }
    if (secrets.size + configMaps.size + backendConfigMaps.size + backendSecrets.size >= CERTIFICATE_SECRET_ENTRIES) {
      problems.push(`${key}: more than ${CERTIFICATE_SECRET_ENTRIES} entries`);
      continue;
    }
    const pem = Buffer.from(typeof value === 'string' ? value : '', 'base64');
    bytes += pem.length;
    if (bytes > CERTIFICATE_SECRET_BYTES) {
      problems.push(`${key}: the certificates exceed ${CERTIFICATE_SECRET_BYTES} bytes of PEM`);
      continue;
    }
    if (backend) {
      const [namespace, name] = [backend[2], backend[4]];
      if (backend[1] === 'ca') {
        // Checked by backendTlsMaterial() (caBundleProblem), as a ConfigMap's ca.crt would be.
        backendConfigMaps.set(`${namespace}/${name}`, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { namespace, name }, data: { 'ca.crt': pem.toString('utf8') } });
        continue;
      }
      const split = splitPem(pem.toString('utf8'));
      if (typeof split === 'string') {
        problems.push(`${key}: ${split}`);
        continue;
      }
      backendSecrets.set(`${namespace}/${name}`, tlsSecret(namespace, name, split));
      continue;
    }
    if (ca) {
      // Parsed and bounded by tlsFrontends() (caBundleProblem), as a ConfigMap's ca.crt would be.
      const [namespace, name] = [ca[1], ca[3]];
      configMaps.set(`${namespace}/${name}`, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { namespace, name }, data: { 'ca.crt': pem.toString('utf8') } });
      continue;
    }
    if (!id) continue;
    const split = splitPem(pem.toString('utf8'));
    if (typeof split === 'string') {
      problems.push(`${key}: ${split}`);
      continue;
    }
    const [namespace, name] = [id[1], id[3]];
    secrets.set(`${namespace}/${name}`, tlsSecret(namespace, name, split));
  }
  return { secrets, configMaps, backendConfigMaps, backendSecrets, problems };
}

function tlsSecret(namespace: string, name: string, split: { certificates: string; key: string }): TlsSecret {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { namespace, name },
    type: 'kubernetes.io/tls',
    stringData: { 'tls.crt': split.certificates, 'tls.key': split.key },
  };
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]{1,40})-----\r?\n[A-Za-z0-9+/=\r\n]*?-----END \1-----\r?\n?/g;

/** A PEM chain + key: the CERTIFICATE blocks in order, and exactly one private key block. */
function splitPem(text: string): { certificates: string; key: string } | string {
  const certificates: string[] = [];
  const keys: string[] = [];
  for (const m of text.matchAll(PEM_BLOCK)) {
    const block = m[0].endsWith('\n') ? m[0] : `${m[0]}\n`;
    if (m[1] === 'CERTIFICATE') certificates.push(block);
    else if (m[1].endsWith('PRIVATE KEY')) keys.push(block);
  }
  if (certificates.length === 0) return 'no PEM certificate';
  if (keys.length !== 1) return `${keys.length} PEM private keys, want 1`;
  return { certificates: certificates.join(''), key: keys[0] };
}
