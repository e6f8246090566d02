// Publishing a Gateway's certificates: the operator's side of src/ir/certificate-secret.ts.
// One Opaque Secret per Gateway with HTTPS listeners, in the Gateway's namespace, owned by it,
// holding exactly the certificates and client CA bundles its routing IR names. Written only when its content
// changes (compared by hash with what this term wrote, and with the live object once per term
// or resync), deleted when the Gateway has no HTTPS listener any more or is gone.
import { CoreV1Api, type KubeConfig, type V1Secret } from '@kubernetes/client-node';
import { condition, mergeConditions } from '../gatewayapi/conditions.ts';
import type { GatewayStatus } from '../gatewayapi/status.ts';
import { secretValue, tlsSecretProblem, TLS_CERT_KEY, TLS_KEY_KEY } from '../gatewayapi/certificates.ts';
import { caBundlePem, caBundleProblem, frontendConfigFor } from '../gatewayapi/frontend-tls.ts';
import type { ConfigMap, Gateway, Secret } from '../gatewayapi/types.ts';
import { backendCaBundleId, backendClientId, caBundleId, certificateId, certificateSecretHash, CERTIFICATES_ROLE_LABEL, encodeCertificateSecret, type EncodedCertificates } from '../ir/certificate-secret.ts';
import { GATEWAY_LABEL } from '../ir/configmap.ts';
import type { RoutingIR } from '../ir/types.ts';
import { apiStatusCode } from '../providers/kubernetes/errors.ts';
import { retryConflicts, type ApplyAction } from './apply.ts';
import { certificateSecretName, MANAGED_BY, MANAGED_BY_LABEL } from './infrastructure.ts';

export interface CertificatePublication {
  /** Certificate and CA bundle ids the IR names that the Secret does not hold, and why. */
  omitted: EncodedCertificates['omitted'];
}

export class CertificatePublisher {
  private readonly core: CoreV1Api;
  private readonly onAction: (action: ApplyAction, namespace: string, name: string) => void;
  /** Hash of the Secret last written or found, by "namespace/gateway". */
  private readonly known = new Map<string, string>();

  constructor(kubeConfig: KubeConfig, onAction: (action: ApplyAction, namespace: string, name: string) => void) {
    this.core = kubeConfig.makeApiClient(CoreV1Api);
    this.onAction = onAction;
  }

  /** Forgets what was written: the next publish compares with the live Secret (new term, resync). */
  clear(): void {
    this.known.clear();
  }

  /**
   * Brings the Gateway's certificate Secret to what `ir` names, from `secrets` (the referenced
   * kubernetes.io/tls Secrets) and `configMaps` (the referenced CA bundles). Returns null when
   * the IR has no TLS socket and no TLS service (no Secret wanted).
   */
  async publish(gateway: { namespace: string; name: string; uid: string }, ir: RoutingIR, secrets: readonly Secret[], configMaps: readonly ConfigMap[] = []): Promise<CertificatePublication | null> {
    if (!wantsCertificateSecret(ir)) return null;
    const pems = certificatePems(ir, secrets, configMaps);
    const name = certificateSecretName(gateway.namespace, gateway.name);
    const encoded = encodeCertificateSecret(pems, gateway.namespace, gateway.name, name);
    const key = `${gateway.namespace}/${gateway.name}`;
    if (this.known.get(key) === encoded.sha256) return { omitted: encoded.omitted };
    const body: V1Secret = {
      ...encoded.secret,
      metadata: {
        ...encoded.secret.metadata,
        labels: { ...encoded.secret.metadata.labels, [MANAGED_BY_LABEL]: MANAGED_BY },
        ownerReferences: [{ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', name: gateway.name, uid: gateway.uid, controller: true, blockOwnerDeletion: true }],
      },
    };
    await retryConflicts(async () => {
      const live = await this.core.readNamespacedSecret({ namespace: gateway.namespace, name }).catch((err: unknown) => {
        if (apiStatusCode(err) === 404) return undefined;
        throw err;
      });
      if (!live) {
        await this.core.createNamespacedSecret({ namespace: gateway.namespace, body });
        this.onAction('created', gateway.namespace, name);
        return;
      }
      const owned = live.metadata?.ownerReferences?.some((o) => o.uid === gateway.uid) === true;
      if (owned && live.type === 'Opaque' && certificateSecretHash(live) === encoded.sha256) {
        this.onAction('unchanged', gateway.namespace, name);
        return;
      }
      await this.core.replaceNamespacedSecret({
        namespace: gateway.namespace,
        name,
        body: { ...body, metadata: { ...body.metadata, resourceVersion: live.metadata?.resourceVersion } },
      });
      this.onAction('updated', gateway.namespace, name);
    });
    this.known.set(key, encoded.sha256);
    return { omitted: encoded.omitted };
  }

  /** Deletes the certificate Secrets of Gateways not in `keep` ("namespace/gateway"). */
  async sweep(keep: ReadonlySet<string>): Promise<void> {
    const list = await this.core.listSecretForAllNamespaces({ labelSelector: `${CERTIFICATES_ROLE_LABEL},${MANAGED_BY_LABEL}=${MANAGED_BY}` });
    for (const s of list.items) {
      const namespace = s.metadata?.namespace as string;
      const name = s.metadata?.name as string;
      const key = `${namespace}/${s.metadata?.labels?.[GATEWAY_LABEL] ?? ''}`;
      if (keep.has(key)) continue;
      await this.core.deleteNamespacedSecret({ namespace, name }).catch((err: unknown) => {
        if (apiStatusCode(err) !== 404) throw err;
      });
      this.known.delete(key);
      this.onAction('deleted', namespace, name);
    }
  }
}

/** Whether the IR names any TLS material: listener certificates or backend TLS. */
export function wantsCertificateSecret(ir: RoutingIR): boolean {
  return ir.sockets.some((s) => s.tls) || ir.services.some((s) => s.tls);
}

/**
 * id -> PEM chain + key of every certificate the IR's TLS sockets name, and caBundleId() -> PEM
 * certificates of every CA bundle their client validation names, in socket order, each socket's
 * certificates before its CA bundles (the order the size bound keeps them in). A Secret or
 * ConfigMap that is gone or no longer usable since the translation is left out: the pods report
 * it missing.
 */
export function certificatePems(ir: RoutingIR, secrets: readonly Secret[], configMaps: readonly ConfigMap[] = []): Map<string, Buffer> {
  const byKey = new Map(secrets.map((s) => [`${s.metadata.namespace}/${s.metadata.name}`, s]));
  const caByKey = new Map(configMaps.map((c) => [`${c.metadata.namespace}/${c.metadata.name}`, c]));
  const pems = new Map<string, Buffer>();
  for (const socket of ir.sockets) {
    for (const c of socket.tls?.certificates ?? []) {
      const id = certificateId(c.namespace, c.name);
      const secret = byKey.get(`${c.namespace}/${c.name}`);
      if (pems.has(id) || !secret || tlsSecretProblem(secret) !== null) continue;
      const cert = secretValue(secret, TLS_CERT_KEY) as Buffer;
      const key = secretValue(secret, TLS_KEY_KEY) as Buffer;
      pems.set(id, Buffer.concat([cert, Buffer.from(cert.at(-1) === 0x0a ? '' : '\n'), key]));
    }
    for (const c of socket.tls?.clientValidation?.caCertificates ?? []) {
      const id = caBundleId(c.namespace, c.name);
      const cm = caByKey.get(`${c.namespace}/${c.name}`);
      if (pems.has(id) || !cm || caBundleProblem(cm) !== null) continue;
      pems.set(id, caBundlePem(cm));
    }
  }
  // Backend material after all listener material: the size bound keeps serving first.
  for (const svc of ir.services) {
    for (const c of svc.tls && 'caCertificates' in svc.tls.verify ? svc.tls.verify.caCertificates : []) {
      const id = backendCaBundleId(c.namespace, c.name);
      const cm = caByKey.get(`${c.namespace}/${c.name}`);
      if (pems.has(id) || !cm || caBundleProblem(cm) !== null) continue;
      pems.set(id, caBundlePem(cm));
    }
    const client = svc.tls?.clientCertificate;
    if (!client) continue;
    const id = backendClientId(client.namespace, client.name);
    const secret = byKey.get(`${client.namespace}/${client.name}`);
    if (pems.has(id) || !secret || tlsSecretProblem(secret) !== null) continue;
    const cert = secretValue(secret, TLS_CERT_KEY) as Buffer;
    pems.set(id, Buffer.concat([cert, Buffer.from(cert.at(-1) === 0x0a ? '' : '\n'), secretValue(secret, TLS_KEY_KEY) as Buffer]));
  }
  return pems;
}

/**
 * Listeners whose certificates the Secret left out get ResolvedRefs=False (InvalidCertificateRef)
 * naming them and why; the listener keeps serving with the certificates that fit, and the other
 * listeners are untouched. Likewise for left-out CA bundles (InvalidCACertificateRef): a socket
 * left with none of its CA bundles is not served at all, never without its client validation.
 */
export function markOmittedCertificates(status: GatewayStatus, gateway: Gateway, omitted: CertificatePublication['omitted'], generation: number, now: string, before: GatewayStatus | undefined): void {
  if (omitted.length === 0) return;
  const why = new Map(omitted.map((o) => [o.id, o.reason]));
  const gatewayNs = gateway.metadata.namespace as string;
  for (const l of gateway.spec.listeners ?? []) {
    if (l.protocol !== 'HTTPS') continue;
    const left = (l.tls?.certificateRefs ?? [])
      .map((ref) => ({ ref: `Secret ${ref.namespace ?? gatewayNs}/${ref.name}`, id: certificateId(ref.namespace ?? gatewayNs, ref.name) }))
      .filter((r) => why.has(r.id));
    const caLeft = (frontendConfigFor({ gateway, listener: l })?.validation?.caCertificateRefs ?? [])
      .map((ref) => ({ ref: `ConfigMap ${ref.namespace ?? gatewayNs}/${ref.name}`, id: caBundleId(ref.namespace ?? gatewayNs, ref.name) }))
      .filter((r) => why.has(r.id));
    if (left.length === 0 && caLeft.length === 0) continue;
    const ls = status.listeners.find((x) => x.name === l.name);
    if (!ls) continue;
    const message = [
      ...(left.length ? [`certificate ${left.map((r) => `${r.ref}: ${why.get(r.id)}`).join('; ')}: not served`] : []),
      ...(caLeft.length ? [`CA certificate ${caLeft.map((r) => `${r.ref}: ${why.get(r.id)}`).join('; ')}: not used for client certificate validation`] : []),
    ].join('; ');
    const c = condition('ResolvedRefs', false, left.length ? 'InvalidCertificateRef' : 'InvalidCACertificateRef', message, generation);
    const prior = before?.listeners.find((x) => x.name === l.name)?.conditions;
    const merged = mergeConditions(prior, [c], now)[0];
    ls.conditions = [...ls.conditions.filter((x) => x.type !== 'ResolvedRefs'), merged];
  }
}
