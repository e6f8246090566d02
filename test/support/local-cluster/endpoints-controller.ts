// The EndpointSlice controller stand-in: one IPv4 slice per Service with a selector, named after
// the Service and owned by it (so deleting the Service removes the slice through the garbage
// collector), listing the matching pods that have an address. Ports are the Service's
// targetPorts, a named targetPort resolved against the pods' container ports.
import { CoreV1Api, DiscoveryV1Api, type KubeConfig, type V1EndpointSlice, type V1Pod, type V1Service } from '@kubernetes/client-node';
import { ignoreNotFound, isPodReady } from './deployment-controller.ts';
import { canonicalJson } from './pod-spec.ts';

export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
export const MANAGED_BY_LABEL = 'endpointslice.kubernetes.io/managed-by';
export const MANAGED_BY = 'local-cluster.vgw.invalid';

function selects(selector: Record<string, string>, pod: V1Pod): boolean {
  const labels = pod.metadata?.labels ?? {};
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

function targetPortOf(pods: V1Pod[], target: number | string | undefined, port: number): number | undefined {
  if (target === undefined) return port;
  if (typeof target === 'number' || /^\d+$/.test(target)) return Number(target);
  for (const p of pods) {
    for (const c of p.spec?.containers ?? []) {
      const found = c.ports?.find((cp) => cp.name === target);
      if (found) return found.containerPort;
    }
  }
  return undefined;
}

/** The slice a Service with a selector should have right now. */
export function desiredSlice(svc: V1Service, pods: V1Pod[]): V1EndpointSlice {
  const name = svc.metadata!.name!;
  const matching = pods
    .filter((p) => p.metadata?.namespace === svc.metadata!.namespace && p.status?.podIP && selects(svc.spec!.selector!, p))
    .sort((a, b) => a.metadata!.name!.localeCompare(b.metadata!.name!));
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: `${name}-local`,
      namespace: svc.metadata!.namespace,
      labels: { [SERVICE_NAME_LABEL]: name, [MANAGED_BY_LABEL]: MANAGED_BY },
      ownerReferences: [{ apiVersion: 'v1', kind: 'Service', name, uid: svc.metadata!.uid!, controller: true, blockOwnerDeletion: true }],
    },
    addressType: 'IPv4',
    ports: (svc.spec?.ports ?? []).flatMap((p) => {
      const port = targetPortOf(matching, p.targetPort as number | string | undefined, p.port);
      return port === undefined ? [] : [{ ...(p.name ? { name: p.name } : {}), port, protocol: p.protocol ?? 'TCP' }];
    }),
    endpoints: matching.map((p) => {
      const terminating = Boolean(p.metadata?.deletionTimestamp);
      const ready = isPodReady(p);
      const podReadyCondition = (p.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
      return {
        addresses: [p.status!.podIP!],
        conditions: { ready, serving: podReadyCondition, terminating },
        nodeName: p.spec?.nodeName,
        targetRef: { kind: 'Pod', name: p.metadata!.name, namespace: p.metadata!.namespace, uid: p.metadata!.uid },
      };
    }),
  };
}

const comparable = (s: V1EndpointSlice) => canonicalJson({ labels: s.metadata?.labels, ports: s.ports ?? [], endpoints: s.endpoints ?? [], owners: s.metadata?.ownerReferences?.map((o) => o.uid) });

export class EndpointsController {
  private readonly core: CoreV1Api;
  private readonly discovery: DiscoveryV1Api;

  constructor(kc: KubeConfig) {
    this.core = kc.makeApiClient(CoreV1Api);
    this.discovery = kc.makeApiClient(DiscoveryV1Api);
  }

  async sync(): Promise<void> {
    const services = (await this.core.listServiceForAllNamespaces()).items.filter((s) => s.spec?.selector && Object.keys(s.spec.selector).length > 0 && !s.metadata?.deletionTimestamp);
    const pods = (await this.core.listPodForAllNamespaces()).items;
    const slices = (await this.discovery.listEndpointSliceForAllNamespaces({ labelSelector: `${MANAGED_BY_LABEL}=${MANAGED_BY}` })).items;
    for (const svc of services) {
      const want = desiredSlice(svc, pods);
      const have = slices.find((s) => s.metadata?.namespace === want.metadata!.namespace && s.metadata?.name === want.metadata!.name);
      if (!have) {
        await this.discovery.createNamespacedEndpointSlice({ namespace: want.metadata!.namespace!, body: want });
      } else if (comparable(have) !== comparable(want)) {
        want.metadata!.resourceVersion = have.metadata!.resourceVersion;
        await this.discovery.replaceNamespacedEndpointSlice({ namespace: want.metadata!.namespace!, name: want.metadata!.name!, body: want });
      }
    }
    // A Service that lost its selector keeps no managed slice (a deleted one is the collector's).
    for (const s of slices) {
      const svc = services.find((x) => x.metadata?.namespace === s.metadata?.namespace && x.metadata?.name === s.metadata?.labels?.[SERVICE_NAME_LABEL]);
      const owner = s.metadata?.ownerReferences?.[0]?.uid;
      const allServices = svc ? undefined : (await this.core.listNamespacedService({ namespace: s.metadata!.namespace! })).items;
      const stillExists = allServices?.some((x) => x.metadata?.uid === owner);
      if (!svc && stillExists) await this.discovery.deleteNamespacedEndpointSlice({ namespace: s.metadata!.namespace!, name: s.metadata!.name! }).catch(ignoreNotFound);
    }
  }
}
