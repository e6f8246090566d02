// The product in standalone mode: the harness writes base and test manifests to a folder, runs
// the echo pods in-process, starts `vgw serve` on the folder and reads status from `vgw check`.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Target } from './client.ts';
import type { GatewayTarget, StatusCheck } from './data.ts';
import type { EchoFleet } from './fleet.ts';
import { runCheck, startServe, waitHealthy, waitPortsClosed, type Serve } from './product.ts';
import type { ObjectKeyParts, Stage, StageRow } from './stage.ts';
import { evaluateStatusCheck, parseStatusStream, specListeners } from './status.ts';
import { composeWorld, withGenerated, mountedKeyData, objectKey, ServeDir, type AddressBook, type K8sObject, type Pod, type World } from './world.ts';

export interface StandaloneStageOptions {
  workDir: string;
  book: AddressBook;
  fleet: EchoFleet;
  readyTimeoutMs: number;
  /** Called with the running serve so a signal handler can stop it. */
  onServe?: (serve: Serve | undefined) => void;
  /** The suite's generated Secrets and ConfigMaps (generated-objects.ts), written for every test. */
  generated?: K8sObject[];
}

export class StandaloneStage implements Stage {
  readonly mode = 'standalone' as const;
  readonly #opts: StandaloneStageOptions;
  #dir: ServeDir | undefined;
  #serve: Serve | undefined;
  /** Gateway addresses of the previous test, which must be released before the next serve. */
  #previousListeners: { ip: string; port: number }[] = [];

  constructor(opts: StandaloneStageOptions) {
    this.#opts = opts;
  }

  get requests() {
    return this.#opts.fleet;
  }

  compose(manifests: K8sObject[]): World {
    return withGenerated(composeWorld(manifests, this.#opts.book), this.#opts.generated);
  }

  async begin(test: string, world: World, opts: { serve: boolean }): Promise<StageRow[]> {
    const testDir = path.join(this.#opts.workDir, test);
    this.#dir = new ServeDir(path.join(testDir, 'config'));
    await mkdir(testDir, { recursive: true });
    await this.#dir.writeAll(world.objects);
    if (!opts.serve) return [];

    const rows: StageRow[] = [];
    await this.#opts.fleet.sync(world.pods, (ref) => mountedKeyData(world.objects, ref));
    const stillOpen = await waitPortsClosed(this.#previousListeners);
    if (stillOpen.length) rows.push({ kind: 'setup', name: 'previous gateway stopped', ok: false, attempts: 1, detail: `still accepting on ${stillOpen.join(', ')}` });
    this.#previousListeners = listenerAddresses(world);

    // serve's varnishd state goes into the test's folder, which the run removes when done.
    const varnishDir = path.join(testDir, 'varnish');
    await mkdir(varnishDir, { recursive: true });
    this.#serve = await startServe(this.#dir.dir, path.join(testDir, 'serve.log'), varnishDir);
    this.#opts.onServe?.(this.#serve);
    const unhealthy = await waitHealthy(this.#serve, this.#opts.readyTimeoutMs);
    if (unhealthy) rows.push({ kind: 'setup', name: 'serve /healthz', ok: false, attempts: 1, detail: unhealthy });
    return rows;
  }

  async status(checks: StatusCheck[], world: World, prefix: string): Promise<StageRow[]> {
    if (checks.length === 0) return [];
    const run = await runCheck(this.#folder().dir);
    if (run.code !== 0 && run.code !== 1) {
      return [{ kind: 'status', name: `${prefix}vgw check`, ok: false, attempts: 1, detail: `exited with ${run.code}: ${lastLines(run.stderr || run.stdout)}` }];
    }
    let docs;
    try {
      docs = parseStatusStream(run.stdout);
    } catch (err) {
      return [{ kind: 'status', name: `${prefix}vgw check`, ok: false, attempts: 1, detail: (err as Error).message }];
    }
    const spec = specListeners(world);
    return checks.map((c) => {
      const r = evaluateStatusCheck(c, docs, spec);
      const label = `${prefix}status${c.precondition ? ' (precondition)' : ''}: ${r.label}`;
      return r.failure === undefined ? { kind: 'status', name: label, ok: true, attempts: 1 } : { kind: 'status', name: label, ok: false, attempts: 1, detail: r.failure };
    });
  }

  async put(obj: K8sObject): Promise<number | undefined> {
    await this.#folder().put(obj);
    return typeof obj.metadata.generation === 'number' ? obj.metadata.generation : undefined;
  }

  remove(ref: ObjectKeyParts): Promise<boolean> {
    return this.#folder().remove(objectKey({ kind: ref.kind, metadata: { name: ref.name, ...(ref.namespace ? { namespace: ref.namespace } : {}) } }));
  }

  async target(gw: GatewayTarget, world: World): Promise<Target> {
    const ip = world.gatewayIps.get(`${gw.namespace}/${gw.name}`);
    if (!ip) throw new Error(`Gateway ${gw.namespace}/${gw.name} is not in the manifests`);
    return { ip, port: gw.port, scheme: gw.scheme };
  }

  async podsOf(world: World, namespace: string, deployment: string): Promise<Pod[]> {
    return world.pods.filter((p) => p.namespace === namespace && p.deployment === deployment);
  }

  async end(ok: boolean): Promise<{ logFile?: string; logTail?: string }> {
    const serve = this.#serve;
    this.#serve = undefined;
    this.#dir = undefined;
    if (!serve) return {};
    await serve.stop();
    this.#opts.onServe?.(undefined);
    return ok ? {} : { logFile: serve.logFile, logTail: serve.tail() };
  }

  #folder(): ServeDir {
    if (!this.#dir) throw new Error('no test begun');
    return this.#dir;
  }
}

function listenerAddresses(world: World): { ip: string; port: number }[] {
  const out: { ip: string; port: number }[] = [];
  for (const o of world.objects) {
    if (o.kind !== 'Gateway') continue;
    const ip = world.gatewayIps.get(`${o.metadata.namespace ?? 'default'}/${o.metadata.name}`);
    if (!ip) continue;
    for (const port of new Set<number>((o.spec?.listeners ?? []).map((l: { port: number }) => l.port))) out.push({ ip, port });
  }
  return out;
}

function lastLines(s: string, n = 5): string {
  return s.trim().split('\n').slice(-n).join(' | ');
}
