// deploy/install.yaml applied to the local cluster as a user would apply it, so that the operator
// runs from its own Deployment. Shared by the end-to-end test and the cluster benchmark.
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { KubernetesObjectApi, type KubernetesObject } from '@kubernetes/client-node';
import type { LocalCluster } from './cluster.ts';

export const INSTALL_MANIFEST = new URL('../../../deploy/install.yaml', import.meta.url);
export const OPERATOR_NAMESPACE = 'vgw-system';
export const OPERATOR_POD_SELECTOR = 'app.kubernetes.io/component=operator';

interface CrdSpec {
  group: string;
  scope: string;
  names: { kind: string; plural: string };
  versions: { name: string; storage?: boolean; subresources?: { status?: unknown } }[];
}

/**
 * Applies install.yaml in order. The API test server has no apiextensions API: a
 * CustomResourceDefinition is "applied" by making the server serve its kind.
 */
export async function applyInstallManifest(cluster: LocalCluster, objects = KubernetesObjectApi.makeApiClient(cluster.kubeConfig())): Promise<void> {
  const docs = parseAllDocuments(readFileSync(INSTALL_MANIFEST, 'utf8')).map((d) => d.toJS() as KubernetesObject | null);
  for (const obj of docs) {
    if (!obj) continue;
    if (obj.kind === 'CustomResourceDefinition') {
      const spec = (obj as { spec: CrdSpec }).spec;
      const version = spec.versions.find((v) => v.storage) ?? spec.versions[0];
      cluster.api.addResource({
        group: spec.group, version: version.name, kind: spec.names.kind, plural: spec.names.plural,
        namespaced: spec.scope === 'Namespaced', status: version.subresources?.status !== undefined, crd: true,
      });
      continue;
    }
    await objects.create(obj);
  }
}
