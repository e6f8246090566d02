// What the end-to-end tests on the local cluster share: plain HTTP through a Gateway address,
// pod and object reads, the operator's Lease and metrics, and the diagnostics a failing
// assertion prints (pod logs, statuses) so that a failure explains itself.
import { readFileSync, readdirSync } from 'node:fs';
import { request, type Agent } from 'node:http';
import { CoordinationV1Api, CoreV1Api, KubernetesObjectApi, type KubernetesObject, type V1Pod } from '@kubernetes/client-node';
import type { LocalCluster } from './cluster.ts';
import { OPERATOR_NAMESPACE, OPERATOR_POD_SELECTOR } from './install.ts';

export interface Reply {
  status: number;
  body: string;
}

/** One GET with a Host header; a fresh connection unless an agent is given. */
export function get(address: string, host: string, path: string, port = 8080, agent?: Agent): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: address, port, path, headers: { host }, agent: agent ?? false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (s: string) => (body += s));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

export const isReady = (p: V1Pod) => !p.metadata?.deletionTimestamp && (p.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');

export type WithStatus = KubernetesObject & { status?: Record<string, unknown> };

export const notFound = async (what: () => Promise<unknown>) => what().then(() => false, (err: { code?: number }) => err.code === 404);

/** Processes still running with the cluster's state directory on their command line (varnishd -n). */
/**
 * Stops the cluster and waits until no process of it is left (varnishd outlives a SIGKILLed agent
 * only until its watchdog stops it, src/varnish/lifeline.ts).
 */
export async function stopCluster(cluster: LocalCluster | undefined): Promise<void> {
  if (!cluster) return;
  const stateDir = cluster.stateDir;
  await cluster.stop();
  const deadline = Date.now() + 30_000;
  let left = processesUnder(stateDir);
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    left = processesUnder(stateDir);
  }
  if (left.length > 0) throw new Error(`processes of the cluster left after 30 s: ${left.join('; ')}`);
}

export function processesUnder(dir: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
      if (cmdline.includes(dir)) found.push(`${pid}: ${cmdline}`);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** Reads, lists and diagnostics of one local cluster, for the end-to-end tests. */
export class ClusterProbe {
  readonly cluster: LocalCluster;
  readonly objects: KubernetesObjectApi;
  readonly core: CoreV1Api;
  readonly coordination: CoordinationV1Api;

  constructor(cluster: LocalCluster) {
    this.cluster = cluster;
    const kc = cluster.kubeConfig();
    this.objects = KubernetesObjectApi.makeApiClient(kc);
    this.core = kc.makeApiClient(CoreV1Api);
    this.coordination = kc.makeApiClient(CoordinationV1Api);
  }

  read(ref: KubernetesObject): Promise<WithStatus> {
    return this.objects.read(ref as { metadata: { name: string; namespace?: string } }) as Promise<WithStatus>;
  }

  async pods(namespace: string, labelSelector: string): Promise<V1Pod[]> {
    return (await this.core.listNamespacedPod({ namespace, labelSelector })).items;
  }

  operatorPods(): Promise<V1Pod[]> {
    return this.pods(OPERATOR_NAMESPACE, OPERATOR_POD_SELECTOR);
  }

  /** The operator Lease's holder (a pod name) and duration; holder '' when free. */
  async lease(name = 'vgw-operator'): Promise<{ holder: string; durationSeconds: number; transitions: number }> {
    const lease = await this.coordination.readNamespacedLease({ namespace: OPERATOR_NAMESPACE, name });
    return { holder: lease.spec?.holderIdentity ?? '', durationSeconds: lease.spec?.leaseDurationSeconds ?? 0, transitions: lease.spec?.leaseTransitions ?? 0 };
  }

  /** A pod's Prometheus text from its metrics endpoint (vgw-in-pod binds it on the pod address, port 9902). */
  async metrics(pod: V1Pod): Promise<string> {
    const reply = await get(pod.status?.podIP ?? '', 'metrics', '/metrics', 9902);
    if (reply.status !== 200) throw new Error(`metrics of ${pod.metadata?.name}: HTTP ${reply.status}`);
    return reply.body;
  }

  /**
   * Pod conditions and logs of the pods the selectors name, the statuses of `refs`, the local
   * cluster's errors and container exits: printed next to a failed assertion.
   */
  async diagnostics(pods: { namespace: string; selector: string }[], refs: KubernetesObject[]): Promise<string> {
    const out: string[] = [];
    const section = (title: string, text: string) => out.push(`----- ${title}\n${text.trimEnd()}`);
    try {
      const all = [await this.operatorPods()];
      for (const p of pods) all.push(await this.pods(p.namespace, p.selector));
      for (const p of all.flat()) {
        const ref = { namespace: p.metadata!.namespace!, name: p.metadata!.name! };
        section(`pod ${ref.namespace}/${ref.name} status`, JSON.stringify({ deleting: Boolean(p.metadata?.deletionTimestamp), conditions: p.status?.conditions ?? [] }));
        section(`pod ${ref.namespace}/${ref.name} logs (last 6000 chars)`, this.cluster.logs(ref).slice(-6000));
      }
      section('operator lease', JSON.stringify(await this.lease().catch((err: Error) => err.message)));
      for (const ref of refs) {
        const status = await this.read(ref).then((o) => JSON.stringify(o.status ?? {}, null, 1), (err: Error) => err.message);
        section(`${ref.kind} ${ref.metadata?.namespace ?? ''}/${ref.metadata?.name} status`, status);
      }
    } catch (err) {
      section('diagnostics failed', (err as Error).message);
    }
    section('local cluster errors', this.cluster.errors.join('\n'));
    section('container exits', JSON.stringify(this.cluster.exits()));
    return out.join('\n');
  }
}

/** Runs `body`; when it throws, prints `diagnostics()` first. */
export async function withDiagnostics(diagnostics: () => Promise<string>, body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (err) {
    process.stderr.write(`${await diagnostics()}\n`);
    throw err;
  }
}

/** The value of a Prometheus sample `name{labels}` in `text` (0 when absent). Labels as written, e.g. `outcome="noop"`. */
export function sample(text: string, name: string, labels = ''): number {
  const wanted = labels ? `${name}{${labels}}` : name;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    if (space > 0 && line.slice(0, space) === wanted) return Number(line.slice(space + 1));
  }
  return 0;
}
