// The Deployment controller stand-in: keeps `spec.replicas` Pods per Deployment (no ReplicaSets:
// the Pods are owned by the Deployment directly) and rolls them when the pod template changes.
// A rolling update honours maxSurge and maxUnavailable, so `maxUnavailable: 0` starts a new pod,
// waits for it to be Ready, and only then deletes an old one. Status: replicas, updatedReplicas,
// readyReplicas, availableReplicas (minReadySeconds is not honoured), observedGeneration.
import { randomBytes } from 'node:crypto';
import { AppsV1Api, CoreV1Api, PatchStrategy, setHeaderOptions, type KubeConfig, type V1Deployment, type V1Pod } from '@kubernetes/client-node';
import { templateHash } from './pod-spec.ts';

const MERGE = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
export const POD_TEMPLATE_HASH_LABEL = 'pod-template-hash';

export function isPodReady(pod: V1Pod): boolean {
  return !pod.metadata?.deletionTimestamp && (pod.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
}

/** An intOrString rolling-update bound against `replicas`: percentages round up for surge, down for unavailable. */
function bound(v: number | string | undefined, fallback: string, replicas: number, roundUp: boolean): number {
  const value = v ?? fallback;
  if (typeof value === 'number') return value;
  const pct = /^(\d+)%$/.exec(value);
  if (!pct) return Number(value) || 0;
  const x = (Number(pct[1]) * replicas) / 100;
  return roundUp ? Math.ceil(x) : Math.floor(x);
}

export class DeploymentController {
  private readonly apps: AppsV1Api;
  private readonly core: CoreV1Api;
  private readonly nodeName: string;

  constructor(kc: KubeConfig, nodeName: string) {
    this.apps = kc.makeApiClient(AppsV1Api);
    this.core = kc.makeApiClient(CoreV1Api);
    this.nodeName = nodeName;
  }

  async sync(): Promise<void> {
    const deployments = (await this.apps.listDeploymentForAllNamespaces()).items;
    const pods = (await this.core.listPodForAllNamespaces()).items;
    for (const d of deployments) {
      if (d.metadata?.deletionTimestamp) continue;
      const owned = pods.filter((p) => (p.metadata?.ownerReferences ?? []).some((o) => o.uid === d.metadata!.uid));
      await this.reconcile(d, owned);
    }
  }

  private async reconcile(d: V1Deployment, owned: V1Pod[]): Promise<void> {
    const namespace = d.metadata!.namespace!;
    const replicas = d.spec?.replicas ?? 1;
    const hash = templateHash(d.spec?.template);
    const live = owned.filter((p) => !p.metadata?.deletionTimestamp);
    const current = live.filter((p) => p.metadata?.labels?.[POD_TEMPLATE_HASH_LABEL] === hash);
    const old = live.filter((p) => p.metadata?.labels?.[POD_TEMPLATE_HASH_LABEL] !== hash);
    const notReadyFirst = (a: V1Pod, b: V1Pod) => Number(isPodReady(a)) - Number(isPodReady(b));
    const remove = (p: V1Pod) => this.core.deleteNamespacedPod({ namespace, name: p.metadata!.name! }).catch(ignoreNotFound);

    if (d.spec?.strategy?.type === 'Recreate') {
      for (const p of old) await remove(p);
      // New pods only once every old one is gone, terminating ones included.
      const oldLeft = owned.some((p) => p.metadata?.labels?.[POD_TEMPLATE_HASH_LABEL] !== hash);
      if (!oldLeft) for (let i = current.length; i < replicas; i++) await this.createPod(d, hash);
    } else {
      const ru = d.spec?.strategy?.rollingUpdate;
      let maxSurge = bound(ru?.maxSurge as number | string | undefined, '25%', replicas, true);
      const maxUnavailable = bound(ru?.maxUnavailable as number | string | undefined, '25%', replicas, false);
      if (maxSurge === 0 && maxUnavailable === 0) maxSurge = 1;
      // Scale the new generation up within the surge budget.
      let total = live.length;
      for (let i = current.length; i < replicas && total < replicas + maxSurge; i++, total++) await this.createPod(d, hash);
      // Extra new pods (a scale-down) go first, not-ready ones before ready ones.
      const extra = [...current].sort(notReadyFirst).slice(0, Math.max(0, current.length - replicas));
      for (const p of extra) await remove(p);
      // Old pods go while availability allows: a not-ready one costs nothing, a ready one one unit.
      let ready = live.filter(isPodReady).length - extra.filter(isPodReady).length;
      for (const p of [...old].sort(notReadyFirst)) {
        if (isPodReady(p)) {
          if (ready - 1 < replicas - maxUnavailable) break;
          ready--;
        }
        await remove(p);
      }
    }
    await this.writeStatus(d, owned, hash, replicas);
  }

  private async createPod(d: V1Deployment, hash: string): Promise<void> {
    const template = d.spec?.template ?? {};
    const name = `${d.metadata!.name}-${hash.slice(0, 8)}-${randomBytes(3).toString('hex').slice(0, 5)}`;
    const pod: V1Pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name,
        namespace: d.metadata!.namespace,
        labels: { ...(template.metadata?.labels ?? {}), [POD_TEMPLATE_HASH_LABEL]: hash },
        annotations: template.metadata?.annotations,
        ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: d.metadata!.name!, uid: d.metadata!.uid!, controller: true, blockOwnerDeletion: true }],
      },
      // No scheduler: every pod goes to the one node.
      spec: { ...(template.spec ?? { containers: [] }), nodeName: this.nodeName },
    };
    await this.core.createNamespacedPod({ namespace: d.metadata!.namespace!, body: pod });
  }

  private async writeStatus(d: V1Deployment, owned: V1Pod[], hash: string, replicas: number): Promise<void> {
    const live = owned.filter((p) => !p.metadata?.deletionTimestamp);
    const updated = live.filter((p) => p.metadata?.labels?.[POD_TEMPLATE_HASH_LABEL] === hash);
    const ready = live.filter(isPodReady).length;
    const complete = updated.length === replicas && live.length === replicas && updated.filter(isPodReady).length === replicas;
    const prev = d.status ?? {};
    const condition = (type: string, ok: boolean, reason: string) => {
      const before = (prev.conditions ?? []).find((c) => c.type === type);
      const status = ok ? 'True' : 'False';
      const t = before && before.status === status && before.reason === reason ? before.lastTransitionTime : new Date().toISOString();
      return { type, status, reason, lastTransitionTime: t, lastUpdateTime: t, message: '' };
    };
    const status = {
      observedGeneration: d.metadata?.generation,
      replicas: live.length,
      updatedReplicas: updated.length,
      readyReplicas: ready,
      availableReplicas: ready,
      unavailableReplicas: Math.max(0, replicas - ready),
      conditions: [
        condition('Available', ready >= replicas - bound(d.spec?.strategy?.rollingUpdate?.maxUnavailable as number | string | undefined, '25%', replicas, false), ready >= replicas ? 'MinimumReplicasAvailable' : 'MinimumReplicasUnavailable'),
        condition('Progressing', true, complete ? 'NewReplicaSetAvailable' : 'ReplicaSetUpdated'),
      ],
    };
    const same = (['observedGeneration', 'replicas', 'updatedReplicas', 'readyReplicas', 'availableReplicas', 'unavailableReplicas'] as const).every((k) => prev[k] === status[k]);
    const sameConditions = JSON.stringify((prev.conditions ?? []).map((c) => [c.type, c.status, c.reason])) === JSON.stringify(status.conditions.map((c) => [c.type, c.status, c.reason]));
    if (same && sameConditions) return;
    await this.apps.patchNamespacedDeploymentStatus({ namespace: d.metadata!.namespace!, name: d.metadata!.name!, body: { status } }, MERGE).catch(ignoreNotFound);
  }
}

export function ignoreNotFound(err: unknown): void {
  if ((err as { code?: number }).code !== 404) throw err;
}
