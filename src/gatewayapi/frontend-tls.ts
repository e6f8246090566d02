// HTTPS listeners' TLS settings beyond certificates: client certificate validation (Gateway
// spec.tls.frontend, default and perPort, with CA bundles in ConfigMaps) and listener
// tls.options. The TLS terminator applies them per address:port, so every listener served on
// one socket must agree; the first listener there (the oldest Gateway, then listener order)
// decides and a listener that differs is Conflicted. Pure: ConfigMaps come from the snapshot.
import { X509Certificate } from 'node:crypto';
import { socketKey, type IRClientValidation } from '../ir/types.ts';
import { condition } from './conditions.ts';
import type { GatewayState, ListenerState } from './listeners.ts';
import { parseTlsOptions, sameTlsOptions } from './tls-options.ts';
import { GATEWAY_GROUP, type Condition, type ConfigMap, type FrontendTLSConfig, type ObjectReference, type ReferenceGrant } from './types.ts';

export const CA_CERT_KEY = 'ca.crt';
/** Bounds on one ConfigMap's ca.crt: its size and the certificates it holds. */
export const CA_BUNDLE_LIMITS = { bytes: 1024 * 1024, certificates: 1000 } as const;

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

type CaResolution = { ok: true; ref: { namespace: string; name: string } } | { ok: false; reason: string; message: string };

/** The frontend TLS config that applies to a listener's port: its perPort entry, else the default. */
export function frontendConfigFor(l: Pick<ListenerState, 'gateway' | 'listener'>): FrontendTLSConfig | undefined {
  const frontend = l.gateway.spec.tls?.frontend;
  if (!frontend) return undefined;
  return frontend.perPort?.find((p) => p.port === l.listener.port)?.tls ?? frontend.default;
}

/**
 * Sets, on every HTTPS listener, its client validation and TLS options. Spec: an invalid CA ref
 * sets ResolvedRefs=False (InvalidCACertificateRef, InvalidCACertificateKind or RefNotPermitted);
 * when none is valid the listener is not accepted (NoValidCACertificate) rather than served
 * without the validation its author asked for. Options the terminator does not know: not
 * accepted (UnsupportedValue), naming the key.
 */
export function resolveFrontendTls(listeners: ListenerState[], configMaps: readonly ConfigMap[], grants: readonly ReferenceGrant[]): void {
  const byKey = new Map(configMaps.map((c) => [`${c.metadata.namespace}/${c.metadata.name}`, c]));
  for (const l of listeners) {
    if (l.listener.protocol !== 'HTTPS' || !l.usable) continue;
    const options = parseTlsOptions(l.listener.tls?.options);
    if (!options.ok) {
      l.usable = false;
      l.acceptedReason = 'UnsupportedValue';
      l.acceptedMessage = options.message;
      continue;
    }
    if (Object.keys(options.options).length) l.tlsOptions = options.options;
    const validation = frontendConfigFor(l)?.validation;
    if (!validation) continue;
    const gatewayNs = l.gateway.metadata.namespace as string;
    const caCertificates: IRClientValidation['caCertificates'] = [];
    let failed = false;
    for (const ref of validation.caCertificateRefs) {
      const r = resolveCaCertificateRef(gatewayNs, ref, byKey, grants);
      if (r.ok) {
        if (!caCertificates.some((c) => c.namespace === r.ref.namespace && c.name === r.ref.name)) caCertificates.push(r.ref);
      } else if (!failed && l.resolvedRefsReason === 'ResolvedRefs') {
        failed = true;
        l.resolvedRefsReason = r.reason;
        l.resolvedRefsMessage = r.message;
      }
    }
    if (caCertificates.length === 0) {
      l.usable = false;
      l.acceptedReason = 'NoValidCACertificate';
      l.acceptedMessage = `no valid CA certificate for client certificate validation on port ${l.listener.port}`;
      continue;
    }
    l.clientValidation = { mode: validation.mode ?? 'AllowValidOnly', caCertificates };
  }
}

/** Resolves one caCertificateRef of a Gateway in `gatewayNs`; `configMaps` keyed by "namespace/name". */
export function resolveCaCertificateRef(
  gatewayNs: string,
  ref: ObjectReference,
  configMaps: ReadonlyMap<string, ConfigMap>,
  grants: readonly ReferenceGrant[],
): CaResolution {
  const namespace = ref.namespace ?? gatewayNs;
  const what = `caCertificateRef ${ref.group ? `${ref.group}/` : ''}${ref.kind} ${namespace}/${ref.name}`;
  if (ref.group !== '' || ref.kind !== 'ConfigMap') {
    return { ok: false, reason: 'InvalidCACertificateKind', message: `${what}: only core ConfigMaps are supported` };
  }
  if (namespace !== gatewayNs && !configMapGranted(grants, gatewayNs, namespace, ref.name)) {
    return { ok: false, reason: 'RefNotPermitted', message: `${what}: no ReferenceGrant in ${namespace} allows Gateways from ${gatewayNs}` };
  }
  const cm = configMaps.get(`${namespace}/${ref.name}`);
  const problem = cm ? caBundleProblem(cm) : 'ConfigMap not found';
  if (problem) return { ok: false, reason: 'InvalidCACertificateRef', message: `${what}: ${problem}` };
  return { ok: true, ref: { namespace, name: ref.name } };
}

/** Why a ConfigMap cannot serve as a CA bundle, or null. Messages never quote its content. */
export function caBundleProblem(cm: ConfigMap): string | null {
  const text = cm.data?.[CA_CERT_KEY];
  if (!text) return `ConfigMap has no ${CA_CERT_KEY}`;
  if (Buffer.byteLength(text) > CA_BUNDLE_LIMITS.bytes) return `${CA_CERT_KEY} is larger than ${CA_BUNDLE_LIMITS.bytes} bytes`;
  const blocks = text.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) return `${CA_CERT_KEY} holds no PEM certificate`;
  if (blocks.length > CA_BUNDLE_LIMITS.certificates) return `${CA_CERT_KEY} holds more than ${CA_BUNDLE_LIMITS.certificates} certificates`;
  for (const [i, block] of blocks.entries()) {
    try {
      new X509Certificate(block);
    } catch {
      return `${CA_CERT_KEY}: certificate ${i + 1} does not parse`;
    }
  }
  return null;
}

/** The PEM certificates of a valid CA bundle, one after the other (what the terminator loads). */
export function caBundlePem(cm: ConfigMap): Buffer {
  return Buffer.from(`${(cm.data?.[CA_CERT_KEY]?.match(PEM_CERTIFICATE) ?? []).join('\n')}\n`);
}

/** A ReferenceGrant in `toNs` lets Gateways of `fromNs` use the ConfigMap `name`. */
export function configMapGranted(grants: readonly ReferenceGrant[], fromNs: string, toNs: string, name: string): boolean {
  return grants.some(
    (g) =>
      g.metadata.namespace === toNs &&
      (g.spec.from ?? []).some((f) => f.group === GATEWAY_GROUP && f.kind === 'Gateway' && f.namespace === fromNs) &&
      (g.spec.to ?? []).some((t) => (t.group ?? '') === '' && t.kind === 'ConfigMap' && (t.name === undefined || t.name === '' || t.name === name)),
  );
}

/**
 * Listeners served on one address:port get one TLS configuration. The first usable HTTPS
 * listener on a socket decides; a later one whose client validation or options differ is
 * Conflicted (ProtocolConflict) and not served. `perGateway`: each Gateway has its own data
 * plane (operator), so only listeners of one Gateway are compared.
 */
export function markTlsSettingConflicts(listeners: ListenerState[], perGateway: boolean): void {
  const first = new Map<string, ListenerState>();
  for (const l of listeners) {
    if (!l.usable || l.listener.protocol !== 'HTTPS') continue;
    for (const address of l.addresses) {
      const socket = socketKey(address, l.listener.port);
      const key = perGateway ? `${l.gateway.metadata.namespace}/${l.gateway.metadata.name} ${socket}` : socket;
      const owner = first.get(key);
      if (!owner) {
        first.set(key, l);
        continue;
      }
      const differs = !sameValidation(owner.clientValidation, l.clientValidation)
        ? 'client certificate validation'
        : !sameTlsOptions(owner.tlsOptions, l.tlsOptions)
          ? 'tls.options'
          : null;
      if (differs) {
        l.usable = false;
        l.conflictedReason = 'ProtocolConflict';
        l.conflictMessage = `${socket} is served by ${owner.id} with different ${differs}; listeners sharing an address:port must agree`;
        break;
      }
    }
  }
}

function sameValidation(a: IRClientValidation | undefined, b: IRClientValidation | undefined): boolean {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}

/**
 * Gateway InsecureFrontendValidationMode: True/ConfigurationChanged while the default or a
 * perPort validation allows insecure fallback; absent otherwise (spec: removed when changed back).
 */
export function insecureFrontendCondition(g: GatewayState, generation: number): Condition | null {
  const frontend = g.gateway.spec.tls?.frontend;
  const ports = (frontend?.perPort ?? []).filter((p) => p.tls.validation?.mode === 'AllowInsecureFallback').map((p) => p.port);
  const inDefault = frontend?.default.validation?.mode === 'AllowInsecureFallback';
  if (!inDefault && ports.length === 0) return null;
  const where = [...(inDefault ? ['the default'] : []), ...(ports.length ? [`port ${ports.join(', ')}`] : [])].join(' and ');
  return condition(
    'InsecureFrontendValidationMode',
    true,
    'ConfigurationChanged',
    `client certificate validation of ${where} is AllowInsecureFallback: clients without a certificate are served`,
    generation,
  );
}
