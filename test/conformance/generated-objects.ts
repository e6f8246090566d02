// The Secrets and ConfigMaps upstream's suite Setup creates before any test (conformance README
// §1 "Setup"): self-signed server certificates for the HTTPS listeners, CAs as ConfigMaps, and
// certificates signed by those CAs for backend TLS and client-certificate tests. Generated once
// per run into the run's folder, as plain Kubernetes objects that a serve folder or an API server
// takes alike. node:crypto makes the RSA keys (in parallel, on libuv's thread pool); it cannot
// sign certificates, so the openssl command line does that.
import { generateKeyPair, randomInt } from 'node:crypto';
import { execFile } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import type { K8sObject } from './world.ts';

const run = promisify(execFile);
const generateRsa = promisify(generateKeyPair);

export const INFRA_NS = 'gateway-conformance-infra';
export const APP_NS = 'gateway-conformance-app-backend';
export const WEB_NS = 'gateway-conformance-web-backend';

/** A certificate and its key, PEM (the key as `RSA PRIVATE KEY`, as upstream writes it). */
export interface KeyPair {
  cert: string;
  key: string;
}

export interface ConformanceObjects {
  /** Every generated Secret and ConfigMap, in a fixed order. */
  objects: K8sObject[];
  /** "namespace/name" of a generated kubernetes.io/tls Secret -> its certificate and key. */
  secrets: ReadonlyMap<string, KeyPair>;
  /** "namespace/name" of a generated CA ConfigMap -> the CA certificate and key. */
  cas: ReadonlyMap<string, KeyPair>;
}

type Usage = 'server' | 'client';

interface CaSpec {
  namespace: string;
  name: string;
}

interface CertSpec {
  namespace: string;
  name: string;
  /** Subject alternative names, typed as upstream's generateRSACert types them. */
  hosts: readonly string[];
  usage: Usage;
  /** "namespace/name" of the CA ConfigMap that signs it; absent = self-signed. */
  signedBy?: string;
}

const CAS: readonly CaSpec[] = [
  { namespace: WEB_NS, name: 'web-backend-cm' },
  { namespace: INFRA_NS, name: 'tls-validity-checks-ca-certificate' },
  { namespace: INFRA_NS, name: 'tls-validity-checks-per-port-ca-certificate' },
  { namespace: INFRA_NS, name: 'tls-checks-ca-certificate' },
  { namespace: INFRA_NS, name: 'mismatch-ca-certificate' },
];

const CA_A = `${INFRA_NS}/tls-checks-ca-certificate`;

const CERTS: readonly CertSpec[] = [
  { namespace: WEB_NS, name: 'certificate', hosts: ['*'], usage: 'server' },
  { namespace: INFRA_NS, name: 'tls-validity-checks-certificate', hosts: ['*', '*.org', '*.wildcard.org'], usage: 'server' },
  { namespace: INFRA_NS, name: 'tls-validity-checks-client-certificate', hosts: [], usage: 'client', signedBy: `${INFRA_NS}/tls-validity-checks-ca-certificate` },
  { namespace: INFRA_NS, name: 'tls-validity-checks-per-port-client-certificate', hosts: [], usage: 'client', signedBy: `${INFRA_NS}/tls-validity-checks-per-port-ca-certificate` },
  { namespace: INFRA_NS, name: 'tls-checks-certificate', hosts: ['abc.example.com', 'other.example.com', 'spiffe://abc.example.com/test-identity'], usage: 'server', signedBy: CA_A },
  { namespace: INFRA_NS, name: 'tls-checks-client-certificate', hosts: [], usage: 'client', signedBy: CA_A },
  { namespace: INFRA_NS, name: 'tls-passthrough-checks-certificate', hosts: ['abc.example.com'], usage: 'server', signedBy: CA_A },
  { namespace: APP_NS, name: 'tls-passthrough-checks-certificate', hosts: ['abc.example.com'], usage: 'server', signedBy: CA_A },
  { namespace: INFRA_NS, name: 'tls-terminate-checks-certificate', hosts: ['tls.example.com'], usage: 'server', signedBy: CA_A },
];

const DNS_NAME = /^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** upstream generateRSACert: an IP literal is an IP SAN, a DNS-1123 name (optionally `*.`) a DNS SAN, anything else a URI SAN. */
export function subjectAltName(hosts: readonly string[]): string | undefined {
  const entries = hosts.map((h) => {
    if (/^[0-9.]+$/.test(h) || h.includes(':') && /^[0-9a-f:]+$/i.test(h)) return `IP:${h}`;
    if (DNS_NAME.test(h)) return `DNS:${h}`;
    return `URI:${h}`;
  });
  return entries.length ? entries.join(',') : undefined;
}

/**
 * Generates every object of the setup table below `dir` (created if missing). Takes about a
 * second: the RSA-2048 keys are made in parallel.
 */
export async function generateConformanceObjects(dir: string): Promise<ConformanceObjects> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const keys = await Promise.all([...CAS, ...CERTS].map(() => rsaKey()));
  const cas = new Map<string, KeyPair>();
  await Promise.all(
    CAS.map(async (ca, i) => {
      cas.set(`${ca.namespace}/${ca.name}`, { cert: await selfSignedCa(dir, `ca-${i}`, keys[i]), key: keys[i] });
    }),
  );
  const secrets = new Map<string, KeyPair>();
  await Promise.all(
    CERTS.map(async (c, i) => {
      const key = keys[CAS.length + i];
      const issuer = c.signedBy === undefined ? undefined : cas.get(c.signedBy);
      if (c.signedBy !== undefined && !issuer) throw new Error(`${c.namespace}/${c.name}: no CA ${c.signedBy}`);
      secrets.set(`${c.namespace}/${c.name}`, { cert: await leaf(dir, `cert-${i}`, key, c, issuer), key });
    }),
  );

  const objects: K8sObject[] = [
    ...CAS.map((ca) => caConfigMap(ca, cas.get(`${ca.namespace}/${ca.name}`)!)),
    ...CERTS.map((c) => tlsSecret(c, secrets.get(`${c.namespace}/${c.name}`)!)),
  ];
  return { objects, secrets, cas };
}

function tlsSecret(c: CertSpec, pair: KeyPair): K8sObject {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: c.name, namespace: c.namespace },
    type: 'kubernetes.io/tls',
    data: { 'tls.crt': Buffer.from(pair.cert).toString('base64'), 'tls.key': Buffer.from(pair.key).toString('base64') },
  };
}

function caConfigMap(ca: CaSpec, pair: KeyPair): K8sObject {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: ca.name, namespace: ca.namespace }, data: { 'ca.crt': pair.cert, 'key.crt': pair.key } };
}

async function rsaKey(): Promise<string> {
  const { privateKey } = await generateRsa('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
  });
  return privateKey as string;
}

const VALID_DAYS = '365';

async function selfSignedCa(dir: string, base: string, key: string): Promise<string> {
  const config = ['[req]', 'distinguished_name = dn', 'prompt = no', '[dn]', 'C = US', 'O = Kubernetes Gateway API', 'CN = gatewayapi', '[ext]', 'basicConstraints = critical,CA:TRUE', 'keyUsage = critical,keyCertSign,cRLSign,digitalSignature,keyEncipherment', 'subjectKeyIdentifier = hash'];
  const files = await writeInputs(dir, base, key, config);
  await openssl('req', '-x509', '-new', '-config', files.config, '-extensions', 'ext', '-key', files.key, '-days', VALID_DAYS, '-set_serial', '2024', '-out', files.cert);
  return readFile(files.cert, 'utf8');
}

async function leaf(dir: string, base: string, key: string, c: CertSpec, issuer: KeyPair | undefined): Promise<string> {
  const san = subjectAltName(c.hosts);
  const config = [
    '[req]', 'distinguished_name = dn', 'prompt = no', '[dn]', 'O = Acme Co', 'CN = default', '[ext]',
    'basicConstraints = critical,CA:FALSE',
    // A self-signed certificate is its own trust anchor: it must be allowed to sign itself.
    `keyUsage = critical,digitalSignature,keyEncipherment${issuer ? '' : ',keyCertSign'}`,
    `extendedKeyUsage = ${c.usage === 'server' ? 'serverAuth' : 'clientAuth'}`,
    ...(san ? [`subjectAltName = ${san}`] : []),
  ];
  const files = await writeInputs(dir, base, key, config);
  const serial = String(randomInt(1, 2 ** 47));
  if (!issuer) {
    await openssl('req', '-x509', '-new', '-config', files.config, '-extensions', 'ext', '-key', files.key, '-days', VALID_DAYS, '-set_serial', serial, '-out', files.cert);
  } else {
    const csr = path.join(dir, `${base}.csr`);
    const caCert = path.join(dir, `${base}-issuer.crt`);
    const caKey = path.join(dir, `${base}-issuer.key`);
    await writeFile(caCert, issuer.cert);
    await writeFile(caKey, issuer.key, { mode: 0o600 });
    await openssl('req', '-new', '-config', files.config, '-key', files.key, '-out', csr);
    await openssl('x509', '-req', '-in', csr, '-CA', caCert, '-CAkey', caKey, '-set_serial', serial, '-days', VALID_DAYS, '-extfile', files.config, '-extensions', 'ext', '-out', files.cert);
  }
  return readFile(files.cert, 'utf8');
}

async function writeInputs(dir: string, base: string, key: string, config: string[]): Promise<{ key: string; config: string; cert: string }> {
  const files = { key: path.join(dir, `${base}.key`), config: path.join(dir, `${base}.cnf`), cert: path.join(dir, `${base}.crt`) };
  await writeFile(files.key, key, { mode: 0o600 });
  await writeFile(files.config, config.join('\n') + '\n');
  return files;
}

async function openssl(...args: string[]): Promise<void> {
  try {
    await run('openssl', args, { timeout: 30_000 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`openssl ${args[0]} failed: ${(e.stderr ?? e.message).trim().split('\n').slice(-3).join(' | ')}`);
  }
}
