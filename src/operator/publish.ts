// Publishing a Gateway's routing config: the operator's side of src/ir/configmap.ts. Parts
// are written before the head and stale parts deleted after it, so a reader that sees a head
// either finds all its parts or waits for the next change (it never mixes two configs).
import { CoreV1Api, type KubeConfig, type V1ConfigMap } from '@kubernetes/client-node';
import { encodeRoutingConfig, GATEWAY_LABEL, ROLE_LABEL, type ConfigMapObject } from '../ir/configmap.ts';
import type { RoutingIR } from '../ir/types.ts';
import { apiStatusCode } from '../providers/kubernetes/errors.ts';
import { retryConflicts } from './apply.ts';

export interface PublishResult {
  /** ConfigMaps written (parts then head). */
  written: string[];
  /** Parts of an older, longer config that were removed. */
  deleted: string[];
  sha256: string;
}

export async function publishRoutingConfig(kubeConfig: KubeConfig, namespace: string, gateway: string, ir: RoutingIR, partBytes?: number): Promise<PublishResult> {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const objects = encodeRoutingConfig(ir, namespace, gateway, partBytes, new Date());
  // A conflict (the ConfigMap created by someone else between our replace and create) is
  // settled by trying again, not reported as a failed publish.
  for (const cm of objects) await retryConflicts(() => upsert(core, cm));
  const keep = new Set(objects.map((o) => o.metadata.name));
  const existing = await core.listNamespacedConfigMap({ namespace, labelSelector: `${GATEWAY_LABEL}=${gateway},${ROLE_LABEL}=part` });
  const deleted: string[] = [];
  for (const cm of existing.items) {
    const name = cm.metadata?.name;
    if (!name || keep.has(name)) continue;
    await core.deleteNamespacedConfigMap({ namespace, name }).catch((err: unknown) => {
      if (apiStatusCode(err) !== 404) throw err;
    });
    deleted.push(name);
  }
  const head = objects[objects.length - 1];
  return { written: objects.map((o) => o.metadata.name), deleted, sha256: head.data.sha256 };
}

async function upsert(core: CoreV1Api, cm: ConfigMapObject): Promise<void> {
  const { namespace, name } = cm.metadata;
  const body = cm as unknown as V1ConfigMap;
  try {
    await core.replaceNamespacedConfigMap({ namespace, name, body });
  } catch (err) {
    if (apiStatusCode(err) !== 404) throw err;
    await core.createNamespacedConfigMap({ namespace, body });
  }
}
