// The product in cluster mode, on the local cluster (test/support/local-cluster/): deploy/
// install.yaml is applied as a user would apply it, so the operator runs from its own
// Deployment; the base manifests are applied once, as the upstream suite does, and each test's
// own objects are applied before it and deleted after it. The echo Deployments run as pods of
// `vgw echo`, status is read from the API server, and traffic goes to the address each Gateway
// reports in status.addresses, through its gateway pod.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoreV1Api, KubernetesObjectApi, type KubernetesObject, type V1Pod } from '@kubernetes/client-node';
import { startLocalCluster, type LocalCluster } from '../support/local-cluster/cluster.ts';
import { applyInstallManifest, OPERATOR_NAMESPACE, OPERATOR_POD_SELECTOR } from '../support/local-cluster/install.ts';
import { VGW_IN_POD } from '../support/local-cluster/vgw-in-pod.ts';
import type { RequestLog } from './cases.ts';
import type { Target } from './client.ts';
import type { GatewayTarget, StatusCheck } from './data.ts';
import { backendOfPod } from './procedures.ts';
import type { ObjectKeyParts, Stage, StageRow } from './stage.ts';
import { evaluateStatusCheck, specListeners, type StatusDoc } from './status.ts';
import { AddressBook, composeWorld, ECHO_H2C_PORT, ECHO_HTTP_PORT, loadManifests, objectKey, withGenerated, type K8sObject, type Pod, type World } from './world.ts';

export const BASE_MANIFESTS = 'base/manifests.yaml';
/** Loopback ranges of the cluster-mode run (see docs/testing.md for the ranges tests use). */
export const CLUSTER_ADDRESSES = { podCidr: '127.0.80.0/22', loadBalancerCidr: '127.0.84.0/24', clusterIPCidr: '127.0.85.0/24' };

/** `vgw echo` stands in for the suite's echo image, as the image table of a local cluster says. */
export const CONFORMANCE_IMAGES = {
  'vgw:*': { executables: { vgw: VGW_IN_POD } },
  '*/echo-basic:*': { entrypoint: ['vgw', 'echo', '--port', String(ECHO_HTTP_PORT), '--h2c-port', String(ECHO_H2C_PORT)], executables: { vgw: VGW_IN_POD } },
};

const GATEWAY_NAME_LABEL = 'gateway.networking.k8s.io/gateway-name';
const STATUS_KINDS: [string, string][] = [
  ['gateway.networking.k8s.io/v1', 'GatewayClass'],
  ['gateway.networking.k8s.io/v1', 'Gateway'],
  ['gateway.networking.k8s.io/v1', 'HTTPRoute'],
  ['gateway.networking.k8s.io/v1', 'BackendTLSPolicy'],
];
const INFRA_KINDS: [string, string][] = [
  ['v1', 'ServiceAccount'],
  ['v1', 'Pod'],
  ['v1', 'Service'],
];
/** upstream waits a poll interval before trusting an empty status (HTTPRouteMustHaveNoAcceptedParents). */
const STATUS_SETTLE_MS = 1000;
const POLL_MS = 250;

export interface ClusterStageOptions {
  workDir: string;
  /** For a Gateway to be Programmed with an address, and for the operator to come up. */
  readyTimeoutMs: number;
  /** For the reported status to meet a test's expectations. */
  statusTimeoutMs: number;
  log?: (line: string) => void;
  /** The suite's generated Secrets and ConfigMaps, applied once after the base manifests. */
  generated?: K8sObject[];
}

type ObjectRef = ObjectKeyParts & { apiVersion: string };

export class ClusterStage implements Stage {
  readonly mode = 'cluster' as const;
  readonly cluster: LocalCluster;
  readonly #opts: ClusterStageOptions;
  readonly #objects: KubernetesObjectApi;
  readonly #core: CoreV1Api;
  readonly #book = new AddressBook();
  #baseKeys = new Set<string>();
  #test = '';
  /** The test's objects by objectKey, in the order they were applied. */
  #applied = new Map<string, ObjectRef>();

  private constructor(cluster: LocalCluster, opts: ClusterStageOptions) {
    this.cluster = cluster;
    this.#opts = opts;
    const kc = cluster.kubeConfig();
    this.#objects = KubernetesObjectApi.makeApiClient(kc);
    this.#core = kc.makeApiClient(CoreV1Api);
  }

  /** Starts the local cluster, installs vgw, waits for the operator and applies the base manifests. */
  static async start(opts: ClusterStageOptions): Promise<ClusterStage> {
    const stateDir = path.join(opts.workDir, 'cluster');
    // Readable by varnishd's unprivileged worker, as the pods' directories below it must be.
    await mkdir(stateDir, { mode: 0o755 });
    const cluster = await startLocalCluster({ images: CONFORMANCE_IMAGES, stateDir, ...CLUSTER_ADDRESSES });
    const stage = new ClusterStage(cluster, opts);
    try {
      await applyInstallManifest(cluster, stage.#objects);
      await stage.#until('the operator Ready', opts.readyTimeoutMs, async () => {
        const pods = (await stage.#core.listNamespacedPod({ namespace: OPERATOR_NAMESPACE, labelSelector: OPERATOR_POD_SELECTOR })).items;
        return pods.length > 0 && pods.every(isReady) ? true : undefined;
      });
      const base = stage.compose(loadManifests([BASE_MANIFESTS]));
      for (const o of [...base.objects, ...(opts.generated ?? [])]) {
        await stage.#apply(o);
        stage.#baseKeys.add(objectKey(o));
      }
      return stage;
    } catch (err) {
      await cluster.stop();
      throw err;
    }
  }

  async stop(): Promise<void> {
    await this.cluster.stop();
  }

  readonly requests: RequestLog = {
    requestsOf: (namespace, deployment) => {
      const out: { path: string }[] = [];
      for (const pod of this.cluster.loggedPods()) {
        if (pod.namespace !== namespace || backendOfPod(pod.name) !== deployment) continue;
        for (const m of this.cluster.logs(pod).matchAll(/^Echoing back request made to (\S+) to client/gm)) out.push({ path: m[1] });
      }
      return out;
    },
  };

  compose(manifests: K8sObject[]): World {
    // The generated objects were applied with the base manifests (begin() skips them); procedures
    // that read them (configMapReconcile) find them in the world as in standalone mode.
    return withGenerated(composeWorld(manifests, this.#book, { cluster: true }), this.#opts.generated);
  }

  async begin(test: string, world: World): Promise<StageRow[]> {
    this.#test = test;
    this.#applied.clear();
    for (const o of world.objects) {
      if (this.#baseKeys.has(objectKey(o))) continue;
      try {
        await this.put(o);
      } catch (err) {
        return [{ kind: 'setup', name: `apply ${objectKey(o)}`, ok: false, attempts: 1, detail: apiMessage(err) }];
      }
    }
    return [];
  }

  /**
   * Status is eventually consistent in a cluster: the checks are evaluated until all of them hold
   * in two evaluations at least STATUS_SETTLE_MS apart (so "no parents yet" is not taken for "no
   * parents"), or the time is up; then each check's last verdict is its row.
   */
  async status(checks: StatusCheck[], world: World, prefix: string): Promise<StageRow[]> {
    if (checks.length === 0) return [];
    const spec = specListeners(world);
    const infra = checks.some((c) => c.check === 'GatewayInfrastructureMetadata');
    const deadline = Date.now() + this.#opts.statusTimeoutMs;
    let attempts = 0;
    let passedAt: number | undefined;
    for (;;) {
      attempts++;
      let verdicts: { label: string; failure?: string; precondition?: boolean }[];
      try {
        const docs = await this.#statusDocs(infra);
        verdicts = checks.map((c) => ({ ...evaluateStatusCheck(c, docs, spec), precondition: c.precondition === true }));
      } catch (err) {
        verdicts = checks.map((c) => ({ label: String(c.check), failure: `reading status: ${apiMessage(err)}` }));
      }
      const allPass = verdicts.every((v) => v.failure === undefined);
      if (allPass) passedAt ??= Date.now();
      else passedAt = undefined;
      const settled = passedAt !== undefined && Date.now() - passedAt >= STATUS_SETTLE_MS;
      if (settled || (Date.now() >= deadline && !allPass)) {
        return verdicts.map((v) => {
          const name = `${prefix}status${v.precondition ? ' (precondition)' : ''}: ${v.label}`;
          return v.failure === undefined ? { kind: 'status', name, ok: true, attempts } : { kind: 'status', name, ok: false, attempts, detail: v.failure };
        });
      }
      await sleep(allPass ? STATUS_SETTLE_MS : POLL_MS);
    }
  }

  async put(obj: K8sObject): Promise<number | undefined> {
    const written = await this.#apply(obj);
    const key = objectKey(obj);
    if (!this.#baseKeys.has(key)) this.#applied.set(key, refOf(obj));
    return written.metadata?.generation;
  }

  async remove(ref: ObjectKeyParts): Promise<boolean> {
    const key = objectKey({ kind: ref.kind, metadata: { name: ref.name, ...(ref.namespace ? { namespace: ref.namespace } : {}) } });
    const known = this.#applied.get(key);
    if (!known) return false;
    this.#applied.delete(key);
    return this.#delete(known);
  }

  async target(gw: GatewayTarget): Promise<Target> {
    const ip = await this.#until(`Gateway ${gw.namespace}/${gw.name} Programmed with an address`, this.#opts.readyTimeoutMs, async () => {
      const g = (await this.#objects.read({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: gw.name, namespace: gw.namespace } })) as StatusDoc;
      const programmed = (g.status?.conditions ?? []).some((c: { type: string; status: string }) => c.type === 'Programmed' && c.status === 'True');
      const address: string | undefined = g.status?.addresses?.[0]?.value;
      return programmed && address ? address : undefined;
    });
    return { ip, port: gw.port, scheme: gw.scheme };
  }

  async podsOf(_world: World, namespace: string, deployment: string): Promise<Pod[]> {
    return this.#until(`a ready pod of ${namespace}/${deployment}`, this.#opts.readyTimeoutMs, async () => {
      const pods = (await this.#core.listNamespacedPod({ namespace })).items.filter(
        (p) => backendOfPod(p.metadata?.name ?? '') === deployment && isReady(p) && p.status?.podIP,
      );
      if (pods.length === 0) return undefined;
      return pods.map((p) => ({ namespace, deployment, name: p.metadata!.name!, ip: p.status!.podIP!, labels: p.metadata?.labels ?? {} }));
    });
  }

  async end(ok: boolean): Promise<{ logFile?: string; logTail?: string }> {
    const logs = ok ? {} : await this.#diagnostics();
    for (const ref of [...this.#applied.values()].reverse()) await this.#delete(ref).catch(() => undefined);
    this.#applied.clear();
    return logs;
  }

  /** Create, or replace what is there; an object still being deleted is waited for first. */
  async #apply(obj: K8sObject): Promise<KubernetesObject> {
    const body = structuredClone(obj) as KubernetesObject;
    // The API server owns metadata.generation.
    delete (body.metadata as { generation?: number }).generation;
    for (;;) {
      try {
        return await this.#objects.create(body);
      } catch (err) {
        if (apiCode(err) !== 409) throw err;
      }
      let live: KubernetesObject;
      try {
        live = await this.#objects.read(body as KubernetesObject & { metadata: { name: string } });
      } catch (err) {
        if (apiCode(err) === 404) continue;
        throw err;
      }
      if (live.metadata?.deletionTimestamp) {
        await sleep(POLL_MS);
        continue;
      }
      try {
        return await this.#objects.replace({ ...body, metadata: { ...body.metadata, resourceVersion: live.metadata?.resourceVersion } });
      } catch (err) {
        if (apiCode(err) !== 409) throw err;
      }
    }
  }

  async #delete(ref: ObjectRef): Promise<boolean> {
    try {
      await this.#objects.delete({ apiVersion: ref.apiVersion, kind: ref.kind, metadata: { name: ref.name, ...(ref.namespace ? { namespace: ref.namespace } : {}) } });
      return true;
    } catch (err) {
      if (apiCode(err) === 404) return false;
      throw err;
    }
  }

  async #statusDocs(infra: boolean): Promise<StatusDoc[]> {
    const kinds = infra ? [...STATUS_KINDS, ...INFRA_KINDS] : STATUS_KINDS;
    const lists = await Promise.all(kinds.map(([apiVersion, kind]) => this.#objects.list(apiVersion, kind)));
    return lists.flatMap((l, i) => l.items.map((o) => ({ ...(o as StatusDoc), kind: kinds[i][1] })));
  }

  /** Resolves with the first value `probe` gives, or fails naming `what` when the time is up. */
  async #until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    for (;;) {
      try {
        const v = await probe();
        if (v !== undefined) return v;
      } catch (err) {
        last = `: ${apiMessage(err)}`;
      }
      if (Date.now() >= deadline) throw new Error(`not ${what} after ${Math.round(timeoutMs / 1000)} s${last}`);
      await sleep(POLL_MS);
    }
  }

  /** What the operator and the test's gateway pods wrote, into the test's folder. */
  async #diagnostics(): Promise<{ logFile: string; logTail: string }> {
    const dir = path.join(this.#opts.workDir, this.#test);
    await mkdir(dir, { recursive: true });
    const logFile = path.join(dir, 'cluster.log');
    const sections: string[] = [];
    let operatorTail = '';
    let pods: V1Pod[] = [];
    try {
      pods = (await this.#core.listPodForAllNamespaces()).items;
    } catch (err) {
      sections.push(`listing pods: ${apiMessage(err)}`);
    }
    for (const p of pods) {
      const ref = { namespace: p.metadata!.namespace!, name: p.metadata!.name! };
      const operator = ref.namespace === OPERATOR_NAMESPACE;
      if (!operator && p.metadata?.labels?.[GATEWAY_NAME_LABEL] === undefined) continue;
      const text = this.cluster.logs(ref);
      if (operator) operatorTail += text.split('\n').filter(Boolean).slice(-8).join('\n') + '\n';
      sections.push(`----- pod ${ref.namespace}/${ref.name} ${JSON.stringify(p.status?.conditions ?? [])}\n${text.slice(-20_000)}`);
    }
    sections.push(`----- local cluster errors\n${this.cluster.errors.join('\n')}`);
    await writeFile(logFile, sections.join('\n'));
    return { logFile, logTail: operatorTail.trimEnd() };
  }
}

function isReady(p: V1Pod): boolean {
  return !p.metadata?.deletionTimestamp && (p.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
}

function refOf(o: K8sObject): ObjectRef {
  return { apiVersion: o.apiVersion, kind: o.kind, name: o.metadata.name, ...(o.metadata.namespace ? { namespace: o.metadata.namespace } : {}) };
}

function apiCode(err: unknown): number | undefined {
  return (err as { code?: number }).code;
}

function apiMessage(err: unknown): string {
  const body = (err as { body?: unknown }).body;
  const message = typeof body === 'string' ? body : body ? JSON.stringify(body) : '';
  return `${(err as Error).message ?? String(err)}${message && !String((err as Error).message).includes(message) ? ` ${message.slice(0, 300)}` : ''}`;
}
