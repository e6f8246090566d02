// Keeping the per-Gateway objects (src/operator/infrastructure.ts) in the cluster: create what
// is missing, replace what differs from the rendering, leave alone what already matches, and
// delete what belongs to no Gateway any more.
//
// "Matches" means the rendering is contained in the live object: every field we render has the
// live value, and fields the apiserver adds (defaults, clusterIP, annotations of other tools)
// are not ours to compare. Labels are compared exactly, as the selector and cleanup rely on them.
import {
  AppsV1Api,
  CoreV1Api,
  RbacAuthorizationV1Api,
  type KubeConfig,
  type KubernetesObject,
  type V1Deployment,
  type V1Service,
} from '@kubernetes/client-node';
import { apiStatusCode } from '../providers/kubernetes/errors.ts';
import { INSTANCE_LABEL, MANAGED_BY, MANAGED_BY_LABEL, type Infrastructure } from './infrastructure.ts';

export type ApplyAction = 'created' | 'updated' | 'unchanged' | 'deleted';
export type InfraKind = 'ServiceAccount' | 'Role' | 'RoleBinding' | 'Deployment' | 'Service' | 'ClusterRoleBinding' | 'Secret';

interface Obj extends KubernetesObject {
  [key: string]: unknown;
}

/** Typed API calls of one kind, namespace undefined for cluster-scoped kinds. */
interface KindClient {
  read(namespace: string | undefined, name: string): Promise<Obj>;
  create(namespace: string | undefined, body: Obj): Promise<Obj>;
  replace(namespace: string | undefined, name: string, body: Obj): Promise<Obj>;
  remove(namespace: string | undefined, name: string): Promise<unknown>;
  /** Objects of the kind carrying the selector, in every namespace. */
  list(labelSelector: string): Promise<Obj[]>;
}

const asObj = (o: unknown): Obj => o as Obj;

const MANAGED_SELECTOR = `${MANAGED_BY_LABEL}=${MANAGED_BY}`;

export class InfrastructureApplier {
  private readonly clients: Record<Exclude<InfraKind, 'Secret'>, KindClient>;
  private readonly onAction: (kind: InfraKind, action: ApplyAction, namespace: string | undefined, name: string) => void;

  constructor(kubeConfig: KubeConfig, onAction: (kind: InfraKind, action: ApplyAction, namespace: string | undefined, name: string) => void) {
    this.onAction = onAction;
    const core = kubeConfig.makeApiClient(CoreV1Api);
    const apps = kubeConfig.makeApiClient(AppsV1Api);
    const rbac = kubeConfig.makeApiClient(RbacAuthorizationV1Api);
    const ns = (n: string | undefined) => n as string;
    this.clients = {
      ServiceAccount: {
        read: (n, name) => core.readNamespacedServiceAccount({ namespace: ns(n), name }).then(asObj),
        create: (n, body) => core.createNamespacedServiceAccount({ namespace: ns(n), body: body as never }).then(asObj),
        replace: (n, name, body) => core.replaceNamespacedServiceAccount({ namespace: ns(n), name, body: body as never }).then(asObj),
        remove: (n, name) => core.deleteNamespacedServiceAccount({ namespace: ns(n), name }),
        list: async (labelSelector) => (await core.listServiceAccountForAllNamespaces({ labelSelector })).items.map(asObj),
      },
      Role: {
        read: (n, name) => rbac.readNamespacedRole({ namespace: ns(n), name }).then(asObj),
        create: (n, body) => rbac.createNamespacedRole({ namespace: ns(n), body: body as never }).then(asObj),
        replace: (n, name, body) => rbac.replaceNamespacedRole({ namespace: ns(n), name, body: body as never }).then(asObj),
        remove: (n, name) => rbac.deleteNamespacedRole({ namespace: ns(n), name }),
        list: async (labelSelector) => (await rbac.listRoleForAllNamespaces({ labelSelector })).items.map(asObj),
      },
      RoleBinding: {
        read: (n, name) => rbac.readNamespacedRoleBinding({ namespace: ns(n), name }).then(asObj),
        create: (n, body) => rbac.createNamespacedRoleBinding({ namespace: ns(n), body: body as never }).then(asObj),
        replace: (n, name, body) => rbac.replaceNamespacedRoleBinding({ namespace: ns(n), name, body: body as never }).then(asObj),
        remove: (n, name) => rbac.deleteNamespacedRoleBinding({ namespace: ns(n), name }),
        list: async (labelSelector) => (await rbac.listRoleBindingForAllNamespaces({ labelSelector })).items.map(asObj),
      },
      Deployment: {
        read: (n, name) => apps.readNamespacedDeployment({ namespace: ns(n), name }).then(asObj),
        create: (n, body) => apps.createNamespacedDeployment({ namespace: ns(n), body: body as never }).then(asObj),
        replace: (n, name, body) => apps.replaceNamespacedDeployment({ namespace: ns(n), name, body: body as never }).then(asObj),
        remove: (n, name) => apps.deleteNamespacedDeployment({ namespace: ns(n), name }),
        list: async (labelSelector) => (await apps.listDeploymentForAllNamespaces({ labelSelector })).items.map(asObj),
      },
      Service: {
        read: (n, name) => core.readNamespacedService({ namespace: ns(n), name }).then(asObj),
        create: (n, body) => core.createNamespacedService({ namespace: ns(n), body: body as never }).then(asObj),
        replace: (n, name, body) => core.replaceNamespacedService({ namespace: ns(n), name, body: body as never }).then(asObj),
        remove: (n, name) => core.deleteNamespacedService({ namespace: ns(n), name }),
        list: async (labelSelector) => (await core.listServiceForAllNamespaces({ labelSelector })).items.map(asObj),
      },
      ClusterRoleBinding: {
        read: (_n, name) => rbac.readClusterRoleBinding({ name }).then(asObj),
        create: (_n, body) => rbac.createClusterRoleBinding({ body: body as never }).then(asObj),
        replace: (_n, name, body) => rbac.replaceClusterRoleBinding({ name, body: body as never }).then(asObj),
        remove: (_n, name) => rbac.deleteClusterRoleBinding({ name }),
        list: async (labelSelector) => (await rbac.listClusterRoleBinding({ labelSelector })).items.map(asObj),
      },
    };
  }

  /** Brings one Gateway's objects to the rendering; returns the live Deployment and Service after it. */
  async apply(infra: Infrastructure): Promise<{ deployment: V1Deployment; service: V1Service }> {
    await this.applyOne('ServiceAccount', asObj(infra.serviceAccount));
    await this.applyOne('RoleBinding', asObj(infra.roleBinding));
    // Before the Deployment: its pods watch the certificate Secret from the start.
    await this.applyOne('Role', asObj(infra.certificateRole));
    await this.applyOne('RoleBinding', asObj(infra.certificateRoleBinding));
    await this.applyOne('ClusterRoleBinding', asObj(infra.clusterRoleBinding));
    const service = await this.applyOne('Service', asObj(infra.service));
    const deployment = await this.applyOne('Deployment', asObj(infra.deployment));
    return { deployment: deployment as V1Deployment, service: service as V1Service };
  }

  /**
   * Deletes every managed object whose instance is not in `keep` (instance label values of the
   * Gateways that exist): per-Gateway objects of deleted Gateways, and orphans of any kind.
   * Namespaced objects are also owned by their Gateway, but nothing guarantees a garbage
   * collector runs, and cluster-scoped ones cannot be owned by a namespaced Gateway.
   */
  async sweep(keep: ReadonlySet<string>): Promise<void> {
    for (const kind of ['Deployment', 'Service', 'RoleBinding', 'Role', 'ServiceAccount', 'ClusterRoleBinding'] as Exclude<InfraKind, 'Secret'>[]) {
      const client = this.clients[kind];
      for (const obj of await client.list(MANAGED_SELECTOR)) {
        const instance = obj.metadata?.labels?.[INSTANCE_LABEL];
        if (instance !== undefined && keep.has(instance)) continue;
        const namespace = obj.metadata?.namespace;
        const name = obj.metadata?.name as string;
        await client.remove(namespace, name).catch((err: unknown) => {
          if (apiStatusCode(err) !== 404) throw err;
        });
        this.onAction(kind, 'deleted', namespace, name);
      }
    }
  }

  private applyOne(kind: Exclude<InfraKind, 'Secret'>, desired: Obj): Promise<Obj> {
    return retryConflicts(() => this.applyOnce(kind, desired));
  }

  private async applyOnce(kind: Exclude<InfraKind, 'Secret'>, desired: Obj): Promise<Obj> {
    const client = this.clients[kind];
    const namespace = desired.metadata?.namespace;
    const name = desired.metadata?.name as string;
    let live: Obj;
    try {
      live = await client.read(namespace, name);
    } catch (err) {
      if (apiStatusCode(err) !== 404) throw err;
      const created = await client.create(namespace, desired);
      this.onAction(kind, 'created', namespace, name);
      return created;
    }
    if (matches(desired, live)) {
      this.onAction(kind, 'unchanged', namespace, name);
      return live;
    }
    const replaced = await client.replace(namespace, name, merged(kind, desired, live));
    this.onAction(kind, 'updated', namespace, name);
    return replaced;
  }
}

/** Attempts of one object write that ends in a conflict before the conflict is reported. */
export const CONFLICT_ATTEMPTS = 3;

/**
 * Runs a read-then-write again when the write answers 409 Conflict: another writer (a
 * Deployment controller updating its status, an autoscaler, a second operator term) changed
 * the object between our read and our write, or created it after our read found none. Such a
 * race is settled by reading again, so it must not reach the Gateway's status as a failure
 * (Programmed=False/Pending, written and taken back a second later). Bounded: a conflict that
 * persists is a real failure and is reported.
 */
export async function retryConflicts<T>(write: () => Promise<T>, attempts = CONFLICT_ATTEMPTS): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await write();
    } catch (err) {
      if (apiStatusCode(err) !== 409 || attempt >= attempts) throw err;
    }
  }
}

/** The fields of an object that are its content (everything but identity, metadata and status). */
function contentKeys(o: Obj): string[] {
  return Object.keys(o).filter((k) => k !== 'apiVersion' && k !== 'kind' && k !== 'metadata' && k !== 'status');
}

/** True when the live object already is what we render. */
export function matches(desired: Obj, live: Obj): boolean {
  const dm = desired.metadata ?? {};
  const lm = live.metadata ?? {};
  if (!sameMap(dm.labels, lm.labels)) return false;
  if (!contains(dm.annotations ?? {}, lm.annotations ?? {})) return false;
  if (dm.ownerReferences && !contains(dm.ownerReferences, lm.ownerReferences ?? [])) return false;
  return contentKeys(desired).every((k) => contains(desired[k], live[k]));
}

function sameMap(a: Record<string, string> | undefined, b: Record<string, string> | undefined): boolean {
  const x = a ?? {};
  const y = b ?? {};
  const keys = Object.keys(x);
  return keys.length === Object.keys(y).length && keys.every((k) => x[k] === y[k]);
}

/** Every field of `want` (recursively; arrays element by element, same length) has its value in `have`. */
export function contains(want: unknown, have: unknown): boolean {
  if (want === undefined) return true;
  if (Array.isArray(want)) return Array.isArray(have) && want.length === have.length && want.every((w, i) => contains(w, have[i]));
  if (want !== null && typeof want === 'object') {
    if (have === null || typeof have !== 'object' || Array.isArray(have)) return false;
    return Object.entries(want as Record<string, unknown>).every(([k, v]) => contains(v, (have as Record<string, unknown>)[k]));
  }
  return want === have;
}

/**
 * The object to write: the rendering, on top of what the apiserver assigned and must not be
 * changed (resourceVersion for the compare-and-swap, a Service's cluster IPs and node ports)
 * and what others may set (annotations of other tools, a Deployment's replicas when the
 * parameters leave scaling to an autoscaler).
 */
function merged(kind: InfraKind, desired: Obj, live: Obj): Obj {
  const lm = live.metadata ?? {};
  const dm = desired.metadata ?? {};
  const out: Obj = {
    ...desired,
    metadata: {
      ...lm,
      labels: dm.labels,
      annotations: { ...(lm.annotations ?? {}), ...(dm.annotations ?? {}) },
      ...(dm.ownerReferences ? { ownerReferences: dm.ownerReferences } : {}),
    },
  };
  if (kind === 'Service') {
    const ls = (live.spec ?? {}) as { clusterIP?: string; clusterIPs?: string[]; ports?: { port: number; nodePort?: number }[] };
    const ds = { ...(desired.spec as Record<string, unknown>) } as { clusterIP?: string; clusterIPs?: string[]; ports?: { port: number; nodePort?: number }[] };
    if (ls.clusterIP) ds.clusterIP = ls.clusterIP;
    if (ls.clusterIPs) ds.clusterIPs = ls.clusterIPs;
    ds.ports = ds.ports?.map((p) => {
      const nodePort = ls.ports?.find((q) => q.port === p.port)?.nodePort;
      return nodePort !== undefined && p.nodePort === undefined ? { ...p, nodePort } : p;
    });
    out.spec = ds;
  }
  if (kind === 'Deployment') {
    const ds = desired.spec as { replicas?: number };
    const ls = (live.spec ?? {}) as { replicas?: number };
    if (ds.replicas === undefined && ls.replicas !== undefined) out.spec = { ...ds, replicas: ls.replicas };
  }
  return out;
}
