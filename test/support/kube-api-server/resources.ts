// The kinds the test API server serves. One table row per group/version/kind; rows of the same
// group and plural share one storage, as the versions of one resource do in a real apiserver (only
// `apiVersion` differs on the way out: no schema conversion).
import type { KubeObject } from './objects.ts';

export interface ResourceDef {
  group: string;
  version: string;
  kind: string;
  plural: string;
  namespaced: boolean;
  /** Has a `/status` subresource: main writes keep the stored `.status`, `/status` writes change only it. */
  status?: boolean;
  /**
   * Served like a CustomResourceDefinition: list items carry `kind`/`apiVersion` (the apiserver
   * strips them from typed built-in lists) and DELETE answers with the object, not a Status.
   */
  crd?: boolean;
  /** Built-ins whose DELETE answers with the deleted object rather than a Status (pods). */
  deleteReturnsObject?: boolean;
  /** Field selectors accepted besides `metadata.name` and `metadata.namespace`. */
  fields?: string[];
  shortNames?: string[];
  /** Server-side normalisation on every API write (e.g. Secret `stringData` folded into `data`). */
  prepare?: (obj: KubeObject) => void;
}

export interface Resource extends ResourceDef {
  apiVersion: string;
  /** Shared by every version of one group/plural. */
  storageKey: string;
  singular: string;
  listKind: string;
}

const GW = 'gateway.networking.k8s.io';

// Secrets: the apiserver folds write-only `stringData` into base64 `data`; code that writes
// stringData and reads data back must see what a cluster would return.
function foldStringData(obj: KubeObject): void {
  const stringData = obj.stringData as Record<string, string> | undefined;
  if (!stringData) return;
  const data = { ...((obj.data as Record<string, string> | undefined) ?? {}) };
  for (const [k, v] of Object.entries(stringData)) data[k] = Buffer.from(String(v)).toString('base64');
  obj.data = data;
  delete obj.stringData;
}

export const DEFAULT_RESOURCES: ResourceDef[] = [
  { group: '', version: 'v1', kind: 'Namespace', plural: 'namespaces', namespaced: false, status: true, shortNames: ['ns'], fields: ['status.phase'] },
  { group: '', version: 'v1', kind: 'Service', plural: 'services', namespaced: true, status: true, shortNames: ['svc'] },
  { group: '', version: 'v1', kind: 'Endpoints', plural: 'endpoints', namespaced: true, shortNames: ['ep'] },
  { group: '', version: 'v1', kind: 'ConfigMap', plural: 'configmaps', namespaced: true, shortNames: ['cm'] },
  { group: '', version: 'v1', kind: 'Secret', plural: 'secrets', namespaced: true, fields: ['type'], prepare: foldStringData },
  { group: '', version: 'v1', kind: 'Pod', plural: 'pods', namespaced: true, status: true, deleteReturnsObject: true, shortNames: ['po'], fields: ['spec.nodeName', 'spec.serviceAccountName', 'status.phase', 'status.podIP'] },
  { group: '', version: 'v1', kind: 'ServiceAccount', plural: 'serviceaccounts', namespaced: true, shortNames: ['sa'] },
  { group: '', version: 'v1', kind: 'Event', plural: 'events', namespaced: true, shortNames: ['ev'], fields: ['involvedObject.kind', 'involvedObject.name', 'involvedObject.namespace', 'involvedObject.uid', 'reason', 'type', 'source'] },
  { group: 'events.k8s.io', version: 'v1', kind: 'Event', plural: 'events', namespaced: true, shortNames: ['ev'], fields: ['regarding.kind', 'regarding.name', 'regarding.namespace', 'reason', 'type'] },
  { group: 'discovery.k8s.io', version: 'v1', kind: 'EndpointSlice', plural: 'endpointslices', namespaced: true },
  { group: 'apps', version: 'v1', kind: 'Deployment', plural: 'deployments', namespaced: true, status: true, shortNames: ['deploy'] },
  { group: 'apps', version: 'v1', kind: 'DaemonSet', plural: 'daemonsets', namespaced: true, status: true, shortNames: ['ds'] },
  { group: 'coordination.k8s.io', version: 'v1', kind: 'Lease', plural: 'leases', namespaced: true },
  { group: 'rbac.authorization.k8s.io', version: 'v1', kind: 'ClusterRole', plural: 'clusterroles', namespaced: false },
  { group: 'rbac.authorization.k8s.io', version: 'v1', kind: 'ClusterRoleBinding', plural: 'clusterrolebindings', namespaced: false },
  { group: 'rbac.authorization.k8s.io', version: 'v1', kind: 'Role', plural: 'roles', namespaced: true },
  { group: 'rbac.authorization.k8s.io', version: 'v1', kind: 'RoleBinding', plural: 'rolebindings', namespaced: true },
  { group: GW, version: 'v1', kind: 'GatewayClass', plural: 'gatewayclasses', namespaced: false, status: true, crd: true, shortNames: ['gc'] },
  { group: GW, version: 'v1', kind: 'Gateway', plural: 'gateways', namespaced: true, status: true, crd: true, shortNames: ['gtw'] },
  { group: GW, version: 'v1', kind: 'HTTPRoute', plural: 'httproutes', namespaced: true, status: true, crd: true },
  { group: GW, version: 'v1beta1', kind: 'ReferenceGrant', plural: 'referencegrants', namespaced: true, crd: true, shortNames: ['refgrant'] },
  // Gateway API 1.5+ serves ReferenceGrant as v1 as well, from the same storage (storageKey has no version).
  { group: GW, version: 'v1', kind: 'ReferenceGrant', plural: 'referencegrants', namespaced: true, crd: true, shortNames: ['refgrant'] },
  { group: GW, version: 'v1', kind: 'BackendTLSPolicy', plural: 'backendtlspolicies', namespaced: true, status: true, crd: true, shortNames: ['btlspolicy'] },
];

export function toResource(def: ResourceDef): Resource {
  return {
    ...def,
    apiVersion: def.group ? `${def.group}/${def.version}` : def.version,
    storageKey: `${def.group}/${def.plural}`,
    singular: def.kind.toLowerCase(),
    listKind: `${def.kind}List`,
  };
}

/** `plural` for core, `plural.group` otherwise: how apiserver messages name a resource. */
export function qualifiedName(r: Resource): string {
  return r.group ? `${r.plural}.${r.group}` : r.plural;
}

export class ResourceTable {
  readonly all: Resource[] = [];

  add(def: ResourceDef): Resource {
    const r = toResource(def);
    const i = this.all.findIndex((x) => x.apiVersion === r.apiVersion && x.plural === r.plural);
    if (i >= 0) this.all[i] = r;
    else this.all.push(r);
    return r;
  }

  byPlural(group: string, version: string, plural: string): Resource | undefined {
    return this.all.find((r) => r.group === group && r.version === version && r.plural === plural);
  }

  byKind(apiVersion: string, kind: string): Resource | undefined {
    return this.all.find((r) => r.apiVersion === apiVersion && r.kind === kind);
  }

  groupVersions(group: string): string[] {
    return [...new Set(this.all.filter((r) => r.group === group).map((r) => r.version))];
  }

  groups(): string[] {
    return [...new Set(this.all.filter((r) => r.group !== '').map((r) => r.group))];
  }
}
