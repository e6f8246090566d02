// The certificate Secrets the operator's Gateways reference, kept from a watch of every
// kubernetes.io/tls Secret in the cluster without keeping them all in memory (how: see
// referenced-objects.ts).
import { CoreV1Api, type V1Secret } from '@kubernetes/client-node';
import { TLS_SECRET_TYPE } from '../gatewayapi/certificates.ts';
import type { Gateway, Secret } from '../gatewayapi/types.ts';
import { ReferencedObjects, type ReferencedObjectsOptions } from './referenced-objects.ts';

/** Data kept for referenced Secrets, at most (bytes of base64 values); above it a Secret reads as absent. */
export const REFERENCED_SECRET_BYTES = 64 * 1024 * 1024;

/** The certificate Secrets HTTPS listeners of our Gateways name (kubernetes.io/tls only). */
export class CertificateSecrets extends ReferencedObjects<V1Secret, Secret> {
  constructor(opts: ReferencedObjectsOptions) {
    const core = opts.kubeConfig.makeApiClient(CoreV1Api);
    const fieldSelector = `type=${TLS_SECRET_TYPE}`;
    super(opts, {
      kind: 'Secret',
      path: '/api/v1/secrets',
      fieldSelector,
      list: () => core.listSecretForAllNamespaces({ fieldSelector }),
      read: (namespace, name) => core.readNamespacedSecret({ namespace, name }),
      stripData: (obj) => {
        obj.data = undefined;
        obj.stringData = undefined;
      },
      snapshot: (namespace, name, obj) => {
        const data = { ...(obj.data ?? {}) };
        return {
          value: { apiVersion: 'v1', kind: 'Secret', metadata: { namespace, name }, type: obj.type, data },
          bytes: Object.values(data).reduce((n, v) => n + v.length, 0),
        };
      },
      referenced: referencedSecrets,
      maxBytes: REFERENCED_SECRET_BYTES,
    });
  }
}

/** "namespace/name" of every core Secret an HTTPS listener of `gateways` names. */
export function referencedSecrets(gateways: readonly Gateway[]): Set<string> {
  const out = new Set<string>();
  for (const g of gateways) {
    // The client certificate presented to backends (spec.tls.backend), published like a listener's.
    const client = g.spec.tls?.backend?.clientCertificateRef;
    if (client && (client.group ?? '') === '' && (client.kind ?? 'Secret') === 'Secret') out.add(`${client.namespace ?? g.metadata.namespace}/${client.name}`);
    for (const l of g.spec.listeners ?? []) {
      if (l.protocol !== 'HTTPS') continue;
      for (const ref of l.tls?.certificateRefs ?? []) {
        if ((ref.group ?? '') !== '' || (ref.kind ?? 'Secret') !== 'Secret') continue;
        out.add(`${ref.namespace ?? g.metadata.namespace}/${ref.name}`);
      }
    }
  }
  return out;
}
