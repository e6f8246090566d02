// The kubelet stand-in: runs every Pod as local processes, one per container, on the pod's own
// loopback address, and reports what a kubelet reports in `.status` (phase, podIP, conditions,
// containerStatuses). Readiness comes from the containers' httpGet readiness probes.
//
// Graceful deletion: the apiserver marks a Pod with `deletionTimestamp` and the kubelet removes it
// once its containers are gone. The API test server deletes at once unless a finalizer holds the
// object, so this kubelet puts its own finalizer on every pod it runs and takes it off when the
// processes have exited: clients see what they would see in a cluster.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { request } from 'node:http';
import { CoreV1Api, PatchStrategy, setHeaderOptions, type KubeConfig, type V1Container, type V1Pod, type V1PodCondition } from '@kubernetes/client-node';
import type { AddressPool } from './addresses.ts';
import type { PodLogs } from './logs.ts';
import { POD_ADDRESS_ENV, processSpec, resolvePort, type ImageTable } from './pod-spec.ts';
import type { ReconcileLoop } from './watch.ts';

export const KUBELET_FINALIZER = 'local-cluster.vgw.invalid/kubelet';
const MERGE = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const MAX_RESTART_BACKOFF_MS = 10_000;

export interface ContainerExit {
  namespace: string;
  pod: string;
  container: string;
  code: number | null;
  signal: string | null;
  /** The kubelet sent SIGKILL because the grace period ran out. */
  killedAfterGrace: boolean;
}

interface ContainerRun {
  spec: V1Container;
  child: ChildProcess | null;
  startedAt: string | null;
  ready: boolean;
  probeFailures: number;
  probeTimer: NodeJS.Timeout | null;
  restartCount: number;
  restartAt: number | null;
  waiting: { reason: string; message?: string } | null;
  lastExit: { code: number | null; signal: string | null; startedAt: string; finishedAt: string } | null;
}

interface PodRun {
  uid: string;
  namespace: string;
  name: string;
  ip: string;
  dir: string;
  /** Volume name to its directory: emptyDirs, and Secret and ConfigMap volumes' files. */
  volumeDirs: Map<string, string>;
  pod: V1Pod;
  containers: ContainerRun[];
  startTime: string;
  terminating: boolean;
  graceDeadline: number | null;
  killed: boolean;
  readySince: string;
  wasReady: boolean;
  lastStatus: string;
}

export interface KubeletOptions {
  kubeConfig: KubeConfig;
  nodeName: string;
  podAddresses: AddressPool;
  images: ImageTable;
  stateDir: string;
  /** Variables every container process starts with. */
  baseEnv: Record<string, string>;
  logs: PodLogs;
  loop: () => ReconcileLoop;
  onError: (what: string, err: unknown) => void;
}

const now = () => new Date().toISOString();

export class Kubelet {
  private readonly opts: KubeletOptions;
  private readonly core: CoreV1Api;
  private readonly runs = new Map<string, PodRun>();
  readonly exits: ContainerExit[] = [];
  private stopping = false;

  constructor(opts: KubeletOptions) {
    this.opts = opts;
    this.core = opts.kubeConfig.makeApiClient(CoreV1Api);
  }

  private trigger(): void {
    this.opts.loop().trigger();
  }

  private log(run: PodRun, container: string | null, text: string): void {
    const key = `${run.namespace}/${run.name}`;
    this.opts.logs.append(key, text);
    if (container) this.opts.logs.append(`${key}/${container}`, text);
  }

  async sync(): Promise<void> {
    const pods = (await this.core.listPodForAllNamespaces()).items.filter((p) => !p.spec?.nodeName || p.spec.nodeName === this.opts.nodeName);
    const seen = new Set<string>();
    for (const pod of pods) {
      const uid = pod.metadata!.uid!;
      seen.add(uid);
      let run = this.runs.get(uid);
      if (pod.metadata?.deletionTimestamp) {
        if (run && !run.terminating) this.beginTermination(run, pod);
        if (run) this.enforceGrace(run);
        if (!run || this.allExited(run)) {
          if (run) this.finish(run);
          await this.dropFinalizer(pod);
          continue;
        }
      } else if (!run) {
        if (pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed') continue;
        if (!(pod.metadata?.finalizers ?? []).includes(KUBELET_FINALIZER)) {
          // Held first, started second: a pod deleted from now on waits for its processes.
          await this.core.patchNamespacedPod(
            { namespace: pod.metadata!.namespace!, name: pod.metadata!.name!, body: { metadata: { finalizers: [...(pod.metadata?.finalizers ?? []), KUBELET_FINALIZER], resourceVersion: pod.metadata!.resourceVersion } } },
            MERGE,
          );
          continue; // the patch's watch event brings the pod back here
        }
        // Secret and ConfigMap volumes: the pod waits (ContainerCreating) until their objects exist.
        const files = await this.volumeFiles(pod);
        if (!files) {
          this.opts.loop().triggerIn(500);
          continue;
        }
        run = this.start(pod, files);
      } else {
        run.pod = pod;
        this.restartExited(run);
      }
      if (run) await this.writeStatus(run);
    }
    // Pods removed without a graceful deletion (force delete, server.remove()): their processes die now.
    for (const run of [...this.runs.values()]) {
      if (seen.has(run.uid)) continue;
      for (const c of run.containers) this.killGroup(c, 'SIGKILL');
      if (this.allExited(run)) this.finish(run);
    }
  }

  /**
   * The files of the pod's Secret and ConfigMap volumes (every key, or `items`), read once as a
   * kubelet's first mount does; later changes are not projected (no test needs them). null while
   * an object a volume names is missing and the volume is not optional.
   */
  private async volumeFiles(pod: V1Pod): Promise<Map<string, Map<string, Buffer>> | null> {
    const out = new Map<string, Map<string, Buffer>>();
    const namespace = pod.metadata!.namespace!;
    for (const v of pod.spec?.volumes ?? []) {
      const source = v.secret ?? v.configMap;
      if (!source) continue;
      const name = v.secret ? v.secret.secretName : v.configMap?.name;
      let data: Record<string, Buffer> | null = null;
      try {
        if (v.secret) {
          const secret = await this.core.readNamespacedSecret({ namespace, name: name ?? '' });
          data = Object.fromEntries(Object.entries(secret.data ?? {}).map(([k, b64]) => [k, Buffer.from(b64, 'base64')]));
        } else {
          const cm = await this.core.readNamespacedConfigMap({ namespace, name: name ?? '' });
          data = Object.fromEntries(Object.entries(cm.data ?? {}).map(([k, text]) => [k, Buffer.from(text)]));
        }
      } catch (err) {
        if ((err as { code?: number }).code !== 404) throw err;
      }
      if (!data) {
        if (source.optional) continue;
        return null;
      }
      const files = new Map<string, Buffer>();
      for (const item of source.items ?? Object.keys(data).map((key) => ({ key, path: key }))) {
        const value = data[item.key];
        if (value === undefined) {
          if (source.optional) continue;
          return null;
        }
        // As the apiserver's validation: relative, no "..".
        if (item.path.startsWith('/') || item.path.split('/').includes('..')) throw new Error(`volume ${v.name}: path ${item.path} is not a relative path`);
        files.set(item.path, value);
      }
      out.set(v.name, files);
    }
    return out;
  }

  private start(pod: V1Pod, files: ReadonlyMap<string, ReadonlyMap<string, Buffer>>): PodRun {
    const uid = pod.metadata!.uid!;
    const namespace = pod.metadata!.namespace!;
    const name = pod.metadata!.name!;
    const ip = this.opts.podAddresses.allocate(uid);
    const dir = join(this.opts.stateDir, 'pods', `${namespace}_${name}_${uid.slice(0, 8)}`);
    const volumeDirs = new Map<string, string>();
    for (const v of pod.spec?.volumes ?? []) {
      if (!v.emptyDir && !files.has(v.name)) continue;
      const d = join(dir, 'volumes', v.name);
      mkdirSync(d, { recursive: true });
      for (const [path, content] of files.get(v.name) ?? []) {
        mkdirSync(dirname(join(d, path)), { recursive: true });
        writeFileSync(join(d, path), content, { mode: v.secret ? 0o600 : 0o644 });
      }
      volumeDirs.set(v.name, d);
    }
    mkdirSync(dir, { recursive: true });
    const t = now();
    const run: PodRun = {
      uid, namespace, name, ip, dir, volumeDirs, pod,
      containers: (pod.spec?.containers ?? []).map((spec) => ({
        spec, child: null, startedAt: null, ready: false, probeFailures: 0, probeTimer: null, restartCount: 0, restartAt: 0, waiting: null, lastExit: null,
      })),
      startTime: t, terminating: false, graceDeadline: null, killed: false, readySince: t, wasReady: false, lastStatus: '',
    };
    this.runs.set(uid, run);
    this.restartExited(run);
    return run;
  }

  /** Starts containers that are due: never started, or exited and past their restart backoff. */
  private restartExited(run: PodRun): void {
    if (run.terminating || this.stopping) return;
    for (const c of run.containers) {
      if (c.child || c.restartAt === null) continue;
      const wait = c.restartAt - Date.now();
      if (wait > 0) {
        this.opts.loop().triggerIn(wait);
        continue;
      }
      c.restartAt = null;
      this.spawnContainer(run, c);
    }
  }

  private spawnContainer(run: PodRun, c: ContainerRun): void {
    let spec;
    try {
      spec = processSpec({
        pod: run.pod, container: c.spec, podIP: run.ip, nodeName: this.opts.nodeName, images: this.opts.images,
        volumeDirs: run.volumeDirs, baseEnv: { ...this.opts.baseEnv, HOSTNAME: run.name, [POD_ADDRESS_ENV]: run.ip },
      });
    } catch (err) {
      c.waiting = { reason: 'CreateContainerConfigError', message: (err as Error).message };
      this.log(run, c.spec.name, `[local-kubelet] container ${c.spec.name}: ${(err as Error).message}\n`);
      return;
    }
    const startedAt = now();
    // Own process group: SIGTERM goes to the container's first process only (as to PID 1), and
    // SIGKILL to the whole group (as a container runtime kills every process of a container).
    const child = spawn(spec.argv[0], spec.argv.slice(1), { cwd: run.dir, env: spec.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    c.child = child;
    c.startedAt = startedAt;
    c.waiting = null;
    c.ready = !c.spec.readinessProbe;
    c.probeFailures = 0;
    child.stdout!.setEncoding('utf8').on('data', (s: string) => this.log(run, c.spec.name, s));
    child.stderr!.setEncoding('utf8').on('data', (s: string) => this.log(run, c.spec.name, s));
    child.on('error', (err) => this.log(run, c.spec.name, `[local-kubelet] container ${c.spec.name}: ${err.message}\n`));
    child.on('close', (code, signal) => {
      c.child = null;
      c.ready = false;
      if (c.probeTimer) clearTimeout(c.probeTimer);
      c.probeTimer = null;
      c.lastExit = { code: code ?? (signal ? null : 127), signal, startedAt, finishedAt: now() };
      this.exits.push({ namespace: run.namespace, pod: run.name, container: c.spec.name, code, signal, killedAfterGrace: run.killed });
      this.log(run, c.spec.name, `[local-kubelet] container ${c.spec.name} exited (code ${code}, signal ${signal})\n`);
      const policy = run.pod.spec?.restartPolicy ?? 'Always';
      if (!run.terminating && (policy === 'Always' || (policy === 'OnFailure' && code !== 0))) {
        c.restartAt = Date.now() + Math.min(1000 * 2 ** c.restartCount, MAX_RESTART_BACKOFF_MS);
        c.restartCount++;
      }
      this.trigger();
    });
    if (c.spec.readinessProbe?.httpGet) this.scheduleProbe(run, c, (c.spec.readinessProbe.initialDelaySeconds ?? 0) * 1000);
  }

  private scheduleProbe(run: PodRun, c: ContainerRun, delayMs: number): void {
    c.probeTimer = setTimeout(() => void this.probe(run, c), delayMs);
  }

  private async probe(run: PodRun, c: ContainerRun): Promise<void> {
    const p = c.spec.readinessProbe!;
    const get = p.httpGet!;
    const port = resolvePort(c.spec, get.port as number | string);
    const ok = port !== undefined && (await httpProbe(get.host || run.ip, port, get.path ?? '/', (p.timeoutSeconds ?? 1) * 1000));
    if (!c.child) return;
    if (ok) {
      c.probeFailures = 0;
      if (!c.ready) {
        c.ready = true;
        this.trigger();
      }
    } else if (++c.probeFailures >= (p.failureThreshold ?? 3) && c.ready) {
      c.ready = false;
      this.trigger();
    }
    this.scheduleProbe(run, c, (p.periodSeconds ?? 10) * 1000);
  }

  private beginTermination(run: PodRun, pod: V1Pod): void {
    run.pod = pod;
    run.terminating = true;
    // The API test server records a grace of 0 on every finalizer-held deletion (delete options
    // are not kept), so a shorter positive grace is the only one taken from the deletion.
    const specGrace = pod.spec?.terminationGracePeriodSeconds ?? 30;
    const asked = pod.metadata?.deletionGracePeriodSeconds;
    const grace = asked !== undefined && asked > 0 && asked < specGrace ? asked : specGrace;
    run.graceDeadline = Date.now() + grace * 1000;
    for (const c of run.containers) {
      c.restartAt = null;
      if (!c.child) continue;
      this.log(run, c.spec.name, `[local-kubelet] container ${c.spec.name}: SIGTERM, grace period ${grace}s\n`);
      c.child.kill('SIGTERM');
    }
    this.opts.loop().triggerIn(grace * 1000);
  }

  private enforceGrace(run: PodRun): void {
    if (!run.terminating || run.graceDeadline === null || Date.now() < run.graceDeadline || this.allExited(run)) return;
    run.killed = true;
    for (const c of run.containers) {
      if (!c.child) continue;
      this.log(run, c.spec.name, `[local-kubelet] container ${c.spec.name}: grace period over, SIGKILL\n`);
      this.killGroup(c, 'SIGKILL');
    }
  }

  private killGroup(c: ContainerRun, signal: NodeJS.Signals): void {
    const pid = c.child?.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, signal);
    } catch {
      c.child?.kill(signal);
    }
  }

  private allExited(run: PodRun): boolean {
    return run.containers.every((c) => !c.child);
  }

  private finish(run: PodRun): void {
    for (const c of run.containers) if (c.probeTimer) clearTimeout(c.probeTimer);
    this.runs.delete(run.uid);
    this.opts.podAddresses.release(run.uid);
    rmSync(run.dir, { recursive: true, force: true });
  }

  private async dropFinalizer(pod: V1Pod): Promise<void> {
    const finalizers = pod.metadata?.finalizers ?? [];
    if (!finalizers.includes(KUBELET_FINALIZER)) return;
    const rest = finalizers.filter((f) => f !== KUBELET_FINALIZER);
    await this.core
      .patchNamespacedPod({ namespace: pod.metadata!.namespace!, name: pod.metadata!.name!, body: { metadata: { finalizers: rest.length ? rest : null } } }, MERGE)
      .catch((err: unknown) => {
        if ((err as { code?: number }).code !== 404) throw err;
      });
  }

  private async writeStatus(run: PodRun): Promise<void> {
    const status = this.statusOf(run);
    const text = JSON.stringify(status);
    if (text === run.lastStatus) return;
    await this.core
      .patchNamespacedPodStatus({ namespace: run.namespace, name: run.name, body: { status } }, MERGE)
      .catch((err: unknown) => {
        if ((err as { code?: number }).code !== 404) throw err;
      });
    run.lastStatus = text;
  }

  private statusOf(run: PodRun) {
    const ready = !run.terminating && run.containers.every((c) => c.child && c.ready);
    if (ready !== run.wasReady) {
      run.wasReady = ready;
      run.readySince = now();
    }
    const started = run.containers.every((c) => c.child);
    const cond = (type: string, value: boolean, since = run.startTime): V1PodCondition => ({ type, status: value ? 'True' : 'False', lastTransitionTime: since as unknown as Date });
    return {
      phase: started || run.terminating ? 'Running' : 'Pending',
      hostIP: '127.0.0.1',
      podIP: run.ip,
      podIPs: [{ ip: run.ip }],
      startTime: run.startTime,
      conditions: [cond('PodScheduled', true), cond('Initialized', true), cond('ContainersReady', ready, run.readySince), cond('Ready', ready, run.readySince)],
      containerStatuses: run.containers.map((c) => ({
        name: c.spec.name,
        image: c.spec.image ?? '',
        imageID: '',
        containerID: c.child?.pid !== undefined ? `local://${c.child.pid}` : undefined,
        ready: Boolean(c.child && c.ready),
        started: Boolean(c.child),
        restartCount: c.restartCount,
        state: c.child
          ? { running: { startedAt: c.startedAt } }
          : c.waiting
            ? { waiting: c.waiting }
            : c.lastExit
              ? { terminated: { exitCode: c.lastExit.code ?? 137, signal: c.lastExit.signal ? 9 : undefined, reason: c.lastExit.code === 0 ? 'Completed' : 'Error', startedAt: c.lastExit.startedAt, finishedAt: c.lastExit.finishedAt } }
              : { waiting: { reason: 'ContainerCreating' } },
      })),
    };
  }

  /** Kills every pod process (SIGKILL to each group) and waits for them; the Pod objects stay as they are. */
  async stop(): Promise<void> {
    this.stopping = true;
    const waits: Promise<void>[] = [];
    for (const run of this.runs.values()) {
      for (const c of run.containers) {
        if (c.probeTimer) clearTimeout(c.probeTimer);
        const child = c.child;
        if (!child) continue;
        waits.push(new Promise<void>((ok) => child.once('close', () => ok())));
        this.killGroup(c, 'SIGKILL');
      }
    }
    await Promise.all(waits);
    for (const run of [...this.runs.values()]) this.finish(run);
  }

  /** Gracefully terminates every pod process: SIGTERM, then SIGKILL after the pod's grace period. */
  async terminateAll(): Promise<void> {
    this.stopping = true;
    const waits: Promise<void>[] = [];
    for (const run of this.runs.values()) {
      const grace = run.pod.spec?.terminationGracePeriodSeconds ?? 30;
      for (const c of run.containers) {
        const child = c.child;
        if (!child) continue;
        waits.push(
          new Promise<void>((ok) => {
            const timer = setTimeout(() => this.killGroup(c, 'SIGKILL'), grace * 1000);
            child.once('close', () => {
              clearTimeout(timer);
              ok();
            });
          }),
        );
        child.kill('SIGTERM');
      }
    }
    await Promise.all(waits);
    await this.stop();
  }
}

function httpProbe(host: string, port: number, path: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ host, port, path, method: 'GET', timeout: timeoutMs, agent: false }, (res) => {
      res.resume();
      resolve((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 400);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}
