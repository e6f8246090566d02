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

export interface InstallOptions {
  /** Flags appended to the operator container's command (say, a shorter `--resync-seconds`). */
  operatorArgs?: string[];
}

/**
 * Applies install.yaml in order. The API test server has no apiextensions API: a
 * CustomResourceDefinition is "applied" by making the server serve its kind.
 */
export async function applyInstallManifest(cluster: LocalCluster, objects = KubernetesObjectApi.makeApiClient(cluster.kubeConfig()), opts: InstallOptions = {}): Promise<void> {
  const docs = parseAllDocuments(readFileSync(INSTALL_MANIFEST, 'utf8')).map((d) => d.toJS() as KubernetesObject | null);
  for (const obj of docs) {
    if (!obj) continue;
    if (obj.kind === 'Deployment' && obj.metadata?.namespace === OPERATOR_NAMESPACE && opts.operatorArgs?.length) {
      const containers = (obj as { spec: { template: { spec: { containers: { name: string; command: string[] }[] } } } }).spec.template.spec.containers;
      const operator = containers.find((c) => c.name === 'operator');
      if (!operator) throw new Error('install.yaml: the operator Deployment has no container "operator"');
      operator.command = [...operator.command, ...opts.operatorArgs];
    }
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

/**
 * A namespace `ns` with the echo backend a test sends traffic to: a one-replica Deployment of
 * `vgw echo` (on the pod's address, port 8080, ready once it answers) and its Service `echo`.
 */
export function echoBackend(ns: string): KubernetesObject[] {
  return [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } },
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'echo', namespace: ns },
      spec: {
        selector: { matchLabels: { app: 'echo' } },
        template: {
          metadata: { labels: { app: 'echo' } },
          spec: {
            terminationGracePeriodSeconds: 1,
            containers: [
              {
                name: 'echo',
                image: 'vgw:0.1.0',
                command: ['vgw', 'echo', '--port', '8080', '--address', '$(POD_IP)', '--pod', '$(POD_NAME)'],
                env: [
                  { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
                  { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
                ],
                ports: [{ name: 'http', containerPort: 8080 }],
                readinessProbe: { httpGet: { path: '/', port: 'http' }, periodSeconds: 1 },
              },
            ],
          },
        },
      },
    } as KubernetesObject,
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'echo', namespace: ns }, spec: { selector: { app: 'echo' }, ports: [{ name: 'http', port: 8080, targetPort: 'http' }] } } as KubernetesObject,
  ];
}
