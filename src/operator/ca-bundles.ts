// The CA bundle ConfigMaps our Gateways' client certificate validation names (spec.tls.frontend
// caCertificateRefs), kept like the certificate Secrets (referenced-objects.ts). The operator's
// own routing ConfigMaps (large, rewritten on every publish) are not watched at all.
import { CoreV1Api, type V1ConfigMap } from '@kubernetes/client-node';
import type { BackendTLSPolicy, ConfigMap, Gateway } from '../gatewayapi/types.ts';
import { ROLE_LABEL } from '../ir/configmap.ts';
import { ReferencedObjects, type ReferencedObjectsOptions } from './referenced-objects.ts';

/** Data kept for referenced ConfigMaps, at most (bytes of values); above it a ConfigMap reads as absent. */
export const REFERENCED_CONFIGMAP_BYTES = 64 * 1024 * 1024;

/** The CA bundle ConfigMaps our Gateways' client certificate validation names. */
export class CaBundleConfigMaps extends ReferencedObjects<V1ConfigMap, ConfigMap> {
  constructor(opts: ReferencedObjectsOptions) {
    const core = opts.kubeConfig.makeApiClient(CoreV1Api);
    const labelSelector = `!${ROLE_LABEL}`;
    super(opts, {
      kind: 'ConfigMap',
      path: '/api/v1/configmaps',
      labelSelector,
      list: () => core.listConfigMapForAllNamespaces({ labelSelector }),
      read: (namespace, name) => core.readNamespacedConfigMap({ namespace, name }),
      stripData: (obj) => {
        obj.data = undefined;
        obj.binaryData = undefined;
      },
      snapshot: (namespace, name, obj) => {
        const data = { ...(obj.data ?? {}) };
        return {
          value: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { namespace, name }, data },
          bytes: Object.values(data).reduce((n, v) => n + Buffer.byteLength(v), 0),
        };
      },
      referenced: referencedCaConfigMaps,
      maxBytes: REFERENCED_CONFIGMAP_BYTES,
    });
  }
}

/**
 * "namespace/name" of every core ConfigMap a Gateway's frontend client validation names, and
 * every one a BackendTLSPolicy trusts (local references: the policy's namespace). Policies are
 * not narrowed to our Gateways' backends: which apply is the translator's to decide.
 */
export function referencedCaConfigMaps(gateways: readonly Gateway[], policies: readonly BackendTLSPolicy[] = []): Set<string> {
  const out = new Set<string>();
  for (const p of policies) {
    for (const ref of p.spec.validation.caCertificateRefs ?? []) {
      if ((ref.group ?? '') !== '' || ref.kind !== 'ConfigMap') continue;
      out.add(`${p.metadata.namespace}/${ref.name}`);
    }
  }
  for (const g of gateways) {
    const frontend = g.spec.tls?.frontend;
    if (!frontend) continue;
    for (const tls of [frontend.default, ...(frontend.perPort ?? []).map((p) => p.tls)]) {
      for (const ref of tls?.validation?.caCertificateRefs ?? []) {
        if ((ref.group ?? '') !== '' || ref.kind !== 'ConfigMap') continue;
        out.add(`${ref.namespace ?? g.metadata.namespace}/${ref.name}`);
      }
    }
  }
  return out;
}
