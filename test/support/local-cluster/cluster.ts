// A local stand-in for a cluster, for tests and `npm run local-cluster`: the in-repo API test
// server plus what a cluster adds around it so that Deployments really run (see docs/testing.md
// "Local cluster"). The controllers here see only what a cluster would: they watch and write
// through @kubernetes/client-node, never reach into the code under test.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AppsV1Api, CoreV1Api, DiscoveryV1Api, KubernetesObjectApi, type KubeConfig, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import { startKubeApiServer, type KubeApiServer, type KubeApiServerOptions } from '../kube-api-server.ts';
import { AddressPool } from './addresses.ts';
import { DeploymentController } from './deployment-controller.ts';
import { EndpointsController } from './endpoints-controller.ts';
import { GarbageCollector, GC_KINDS, collectionPath } from './garbage-collector.ts';
import { Kubelet, type ContainerExit } from './kubelet.ts';
import { PodLogs } from './logs.ts';
import type { ImageTable } from './pod-spec.ts';
import { ServiceProxy } from './service-proxy.ts';
import pino from 'pino';
import { WatchedKind } from '../../../src/providers/kubernetes/watch.ts';
import { ReconcileLoop } from './watch.ts';

export type { ImageTable, ImageRule } from './pod-spec.ts';
export type { ContainerExit } from './kubelet.ts';

export const DEFAULT_POD_CIDR = '127.0.40.0/22';
export const DEFAULT_LOAD_BALANCER_CIDR = '127.0.44.0/24';
export const DEFAULT_CLUSTER_IP_CIDR = '127.0.45.0/24';
export const NODE_NAME = 'local-cluster';
const MAX_ERRORS_KEPT = 100;

export interface LocalClusterOptions {
  /** How images map to local executables; an image not in the table runs its `command` as given. */
  images?: ImageTable;
  podCidr?: string;
  loadBalancerCidr?: string;
  clusterIPCidr?: string;
  /** Pod directories and the kubeconfig file; a fresh temp dir (removed by stop()) by default. */
  stateDir?: string;
  apiServer?: KubeApiServerOptions;
  /** Called with every controller error (conflicts and the like are retried anyway). */
  onError?: (what: string, err: unknown) => void;
}

export interface PodRef {
  namespace?: string;
  name: string;
}

export interface LocalCluster {
  api: KubeApiServer;
  kubeConfig(): KubeConfig;
  /** A kubeconfig file for this cluster; every pod process gets it as KUBECONFIG. */
  kubeconfigPath: string;
  stateDir: string;
  /** What a pod's processes wrote (all containers, or one), kept after the pod is gone. */
  logs(pod: string | PodRef, container?: string): string;
  /** Pods whose output is kept (the most recent ones, see logs.ts), gone ones included. */
  loggedPods(): PodRef[];
  /** Container exits seen so far, oldest first, optionally for one pod. */
  exits(pod?: string | PodRef): ContainerExit[];
  /** Recent controller errors. */
  readonly errors: readonly string[];
  /** Stops the controllers, the pods (SIGTERM and their grace period when `graceful`, else SIGKILL) and the API server. */
  stop(opts?: { graceful?: boolean }): Promise<void>;
}

const refOf = (p: string | PodRef) => (typeof p === 'string' ? { namespace: 'default', name: p } : { namespace: p.namespace ?? 'default', name: p.name });

export async function startLocalCluster(opts: LocalClusterOptions = {}): Promise<LocalCluster> {
  const api = await startKubeApiServer({ bookmarkIntervalMs: 0, ...opts.apiServer });
  const ownStateDir = opts.stateDir === undefined;
  const stateDir = opts.stateDir ?? mkdtempSync(join(tmpdir(), 'vgw-local-cluster-'));
  // mkdtemp makes the directory 0700; processes of a pod that drop privileges (varnishd's
  // worker runs as its own user when started as root) must still reach their pod's directories.
  if (ownStateDir) chmodSync(stateDir, 0o755);
  const kc = api.kubeConfig();
  const kubeconfigPath = join(stateDir, 'kubeconfig');
  writeFileSync(kubeconfigPath, kc.exportConfig(), { mode: 0o600 });

  const errors: string[] = [];
  const onError = (what: string, err: unknown) => {
    const body = (err as { body?: unknown }).body;
    errors.push(`${what}: ${(err as Error)?.message ?? String(err)}${body ? ` ${String(body).slice(0, 300)}` : ''}`);
    if (errors.length > MAX_ERRORS_KEPT) errors.shift();
    opts.onError?.(what, err);
  };
  const logs = new PodLogs();
  const podAddresses = new AddressPool('pod', opts.podCidr ?? DEFAULT_POD_CIDR);

  const baseEnv: Record<string, string> = { KUBECONFIG: kubeconfigPath };
  for (const name of ['PATH', 'HOME', 'LANG', 'TZ']) if (process.env[name] !== undefined) baseEnv[name] = process.env[name]!;

  const kubelet = new Kubelet({ kubeConfig: kc, nodeName: NODE_NAME, podAddresses, images: opts.images ?? {}, stateDir, baseEnv, logs, loop: () => kubeletLoop, onError });
  const deployments = new DeploymentController(kc, NODE_NAME);
  const endpoints = new EndpointsController(kc);
  const proxy = new ServiceProxy({ kubeConfig: kc, clusterIPs: new AddressPool('cluster IP', opts.clusterIPCidr ?? DEFAULT_CLUSTER_IP_CIDR), loadBalancerIPs: new AddressPool('load balancer', opts.loadBalancerCidr ?? DEFAULT_LOAD_BALANCER_CIDR), onError });
  const gc = new GarbageCollector(kc);
  const loop = (what: string, body: () => Promise<void>) => new ReconcileLoop(body, (err) => onError(what, err));
  const kubeletLoop = loop('kubelet', () => kubelet.sync());
  const deploymentLoop = loop('deployment controller', () => deployments.sync());
  const endpointsLoop = loop('endpointslice controller', () => endpoints.sync());
  const proxyLoop = loop('service proxy', () => proxy.sync());
  const gcLoop = loop('garbage collector', () => gc.sync());
  const loops = [kubeletLoop, deploymentLoop, endpointsLoop, proxyLoop, gcLoop];

  const core = kc.makeApiClient(CoreV1Api);
  const apps = kc.makeApiClient(AppsV1Api);
  const discovery = kc.makeApiClient(DiscoveryV1Api);
  const objects = KubernetesObjectApi.makeApiClient(kc);
  // The same informer wrapper the product's controllers use, quick to retry: a test cluster's
  // API server is local. Any change triggers the loops of the kinds' controllers; a deletion
  // also triggers the garbage collector.
  const silent = pino({ level: 'silent' });
  const watch = (path: string, list: () => Promise<KubernetesListObject<KubernetesObject>>, ...targets: ReconcileLoop[]) =>
    new WatchedKind<KubernetesObject>({
      kubeConfig: kc,
      path,
      list,
      name: path,
      logger: silent,
      minBackoffMs: 100,
      maxBackoffMs: 5_000,
      onChange: () => {
        for (const t of targets) t.trigger();
      },
      onEvent: (type) => {
        if (type === 'delete') gcLoop.trigger();
      },
    });
  const watches: WatchedKind<KubernetesObject>[] = [
    watch('/api/v1/pods', () => core.listPodForAllNamespaces(), kubeletLoop, deploymentLoop, endpointsLoop),
    watch('/apis/apps/v1/deployments', () => apps.listDeploymentForAllNamespaces(), deploymentLoop),
    watch('/api/v1/services', () => core.listServiceForAllNamespaces(), endpointsLoop, proxyLoop),
    watch('/apis/discovery.k8s.io/v1/endpointslices', () => discovery.listEndpointSliceForAllNamespaces(), endpointsLoop, proxyLoop),
    // The other kinds matter only to the collector, and only when something is deleted.
    ...GC_KINDS.filter((k) => !['Pod', 'Deployment', 'Service', 'EndpointSlice'].includes(k.kind)).map((k) => watch(collectionPath(k), () => objects.list(k.apiVersion, k.kind))),
  ];
  await Promise.all(watches.map((w) => w.start()));
  for (const l of loops) l.trigger();

  const podKey = (p: string | PodRef) => {
    const r = refOf(p);
    return `${r.namespace}/${r.name}`;
  };
  return {
    api,
    kubeConfig: () => api.kubeConfig(),
    kubeconfigPath,
    stateDir,
    logs: (pod, container) => logs.get(container ? `${podKey(pod)}/${container}` : podKey(pod)),
    loggedPods: () =>
      logs
        .keys()
        .map((k) => k.split('/'))
        .filter((parts) => parts.length === 2)
        .map(([namespace, name]) => ({ namespace, name })),
    exits: (pod) => {
      if (pod === undefined) return [...kubelet.exits];
      const r = refOf(pod);
      return kubelet.exits.filter((e) => e.namespace === r.namespace && e.pod === r.name);
    },
    errors,
    async stop(stopOpts = {}) {
      await Promise.all(watches.map((w) => w.stop()));
      await Promise.all(loops.map((l) => l.stop()));
      if (stopOpts.graceful) await kubelet.terminateAll();
      else await kubelet.stop();
      await proxy.stop();
      await api.close();
      if (ownStateDir) rmSync(stateDir, { recursive: true, force: true });
    },
  };
}
