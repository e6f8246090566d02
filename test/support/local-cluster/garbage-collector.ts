// The garbage collector stand-in: an object whose owners (every `metadata.ownerReferences`
// entry) are all gone, or replaced by a new object of the same name and another uid, is deleted
// in the background. Runs after any deletion of a kind it watches. No foreground deletion, no
// orphan propagation, no cluster-scoped dependents.
import { KubernetesObjectApi, type KubeConfig, type KubernetesObject, type V1OwnerReference } from '@kubernetes/client-node';
import { ignoreNotFound } from './deployment-controller.ts';

export interface KindRef {
  apiVersion: string;
  kind: string;
  plural: string;
}

/** Kinds whose objects are collected (and whose deletion starts a collection). */
export const GC_KINDS: KindRef[] = [
  { apiVersion: 'v1', kind: 'Pod', plural: 'pods' },
  { apiVersion: 'v1', kind: 'Service', plural: 'services' },
  { apiVersion: 'v1', kind: 'ConfigMap', plural: 'configmaps' },
  { apiVersion: 'v1', kind: 'Secret', plural: 'secrets' },
  { apiVersion: 'v1', kind: 'ServiceAccount', plural: 'serviceaccounts' },
  { apiVersion: 'apps/v1', kind: 'Deployment', plural: 'deployments' },
  { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', plural: 'endpointslices' },
  { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', plural: 'rolebindings' },
  { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', plural: 'gateways' },
];

export function collectionPath(k: KindRef): string {
  return k.apiVersion.includes('/') ? `/apis/${k.apiVersion}/${k.plural}` : `/api/${k.apiVersion}/${k.plural}`;
}

export class GarbageCollector {
  private readonly objects: KubernetesObjectApi;
  private readonly kinds: KindRef[];

  constructor(kc: KubeConfig, kinds: KindRef[] = GC_KINDS) {
    this.objects = KubernetesObjectApi.makeApiClient(kc);
    this.kinds = kinds;
  }

  async sync(): Promise<void> {
    // One lookup per owner per run: many pods share one Deployment.
    const owners = new Map<string, Promise<boolean>>();
    for (const k of this.kinds) {
      const items = (await this.objects.list<KubernetesObject>(k.apiVersion, k.kind)).items;
      for (const obj of items) {
        const refs = obj.metadata?.ownerReferences ?? [];
        if (refs.length === 0 || obj.metadata?.deletionTimestamp) continue;
        const ns = obj.metadata?.namespace;
        let anyLive = false;
        for (const ref of refs) {
          const key = `${ref.apiVersion}/${ref.kind}/${ns ?? ''}/${ref.name}/${ref.uid}`;
          if (!owners.has(key)) owners.set(key, this.ownerExists(ref, ns));
          if (await owners.get(key)) {
            anyLive = true;
            break;
          }
        }
        if (anyLive) continue;
        await this.objects.delete({ apiVersion: k.apiVersion, kind: k.kind, metadata: { name: obj.metadata!.name!, namespace: ns } }, undefined, undefined, undefined, undefined, 'Background').catch(ignoreNotFound);
      }
    }
  }

  private async ownerExists(ref: V1OwnerReference, namespace: string | undefined): Promise<boolean> {
    try {
      const owner = await this.objects.read({ apiVersion: ref.apiVersion, kind: ref.kind, metadata: { name: ref.name, namespace } });
      return owner.metadata?.uid === ref.uid;
    } catch (err) {
      if ((err as { code?: number }).code === 404) return false;
      // Any other failure (an owner kind the API server does not serve) is no evidence that the owner is gone.
      return true;
    }
  }
}
