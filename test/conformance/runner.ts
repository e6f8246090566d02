// One test from start to finish. A traffic test: compose the world, start echo pods and
// `vgw serve`, assert the status `vgw check` reports, then the traffic cases, phases and
// procedures. A status-only test: `vgw check` per phase, with spec changes in between.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { GatewayTarget, StatusCheck, TrafficCase, TrafficTest } from './data.ts';
import type { Target } from './client.ts';
import type { ConvergenceOptions } from './converge.ts';
import { pool, runCase, type CaseResult } from './cases.ts';
import { EchoFleet } from './fleet.ts';
import { mirrorPercentageCase, mirrorPercentageSpec } from './mirror.ts';
import { runCheck, startServe, waitHealthy, waitPortsClosed, type Serve } from './product.ts';
import { patchedEndpointSlices, perBackendHeaderConsistency, weightedDistribution } from './procedures.ts';
import { evaluateStatusCheck, parseStatusStream, type SpecListeners } from './status.ts';
import { applyPatch, TLS_REASON, type ObjectPatch, type StatusOnlyExpectations } from './status-only.ts';
import { websocketEcho } from './websocket.ts';
import { AddressBook, composeWorld, loadManifests, objectKey, ServeDir, type K8sObject, type World } from './world.ts';

export interface Row extends CaseResult {
  kind: 'case' | 'status' | 'setup' | 'procedure';
  /** Listed but deliberately not evaluated; `detail` says why. */
  skipped?: boolean;
}

export interface TestOutcome {
  name: string;
  ok: boolean;
  rows: Row[];
  elapsedMs: number;
  logFile?: string;
  logTail?: string;
}

export interface RunnerEnv {
  workDir: string;
  book: AddressBook;
  fleet: EchoFleet;
  convergence: ConvergenceOptions;
  readyTimeoutMs: number;
  caseConcurrency: number;
  /** Called with the running serve so a signal handler can stop it. */
  onServe?: (serve: Serve | undefined) => void;
  /** Gateway addresses of the previous test, which must be released before the next serve. */
  previousListeners?: { ip: string; port: number }[];
}

export async function runTrafficTest(test: TrafficTest, env: RunnerEnv): Promise<TestOutcome> {
  const started = Date.now();
  const rows: Row[] = [];
  const outcome = (extra: Partial<TestOutcome> = {}): TestOutcome => ({
    name: test.name,
    ok: rows.every((r) => r.ok),
    rows,
    elapsedMs: Date.now() - started,
    ...extra,
  });

  const world = composeWorld(loadManifests(test.manifests), env.book);
  const testDir = path.join(env.workDir, test.name);
  const serveDir = new ServeDir(path.join(testDir, 'config'));
  await mkdir(testDir, { recursive: true });
  await serveDir.writeAll(world.objects);
  await env.fleet.sync(world.pods);

  const stillOpen = await waitPortsClosed(env.previousListeners ?? []);
  if (stillOpen.length) rows.push({ kind: 'setup', name: 'previous gateway stopped', ok: false, attempts: 1, detail: `still accepting on ${stillOpen.join(', ')}` });
  env.previousListeners = listenerAddresses(world);

  // serve's varnishd state goes into the test's folder, which the run removes when done.
  const varnishDir = path.join(testDir, 'varnish');
  await mkdir(varnishDir, { recursive: true });
  const serve = await startServe(serveDir.dir, path.join(testDir, 'serve.log'), varnishDir);
  env.onServe?.(serve);
  try {
    const unhealthy = await waitHealthy(serve, env.readyTimeoutMs);
    if (unhealthy) {
      rows.push({ kind: 'setup', name: 'serve /healthz', ok: false, attempts: 1, detail: unhealthy });
      return outcome({ logFile: serve.logFile, logTail: serve.tail() });
    }

    rows.push(...(await statusRows(test.statusChecks ?? [], serveDir.dir, world)));

    if (test.procedural?.type === 'patchEndpointSlices') {
      for (const slice of patchedEndpointSlices(test, world.objects, world.pods)) await serveDir.put(slice);
    }

    // HTTPRouteRequestPercentageMirror: its cases are the procedure's sanity checks, run one case
    // after the other as upstream does, each followed by its distribution check.
    const percentageMirror = test.procedural?.type === 'mirrorPercentage';
    if (percentageMirror) {
      const spec = mirrorPercentageSpec(test);
      for (const c of test.cases) {
        const [sanity, distribution] = await mirrorPercentageCase(c, targetOf(c, test, world), spec, env);
        rows.push({ ...sanity, kind: 'case' }, { ...distribution, kind: 'procedure' });
      }
    }

    const phases = percentageMirror ? [] : [...new Set(test.cases.map((c) => c.phase ?? 1))].sort((a, b) => a - b);
    for (const phase of phases) {
      const action = test.phases?.find((p) => p.phase === phase)?.action;
      if (action?.delete) {
        const d = action.delete;
        const removed = await serveDir.remove(objectKey({ kind: d.kind, metadata: { name: d.name, ...(d.namespace ? { namespace: d.namespace } : {}) } }));
        if (!removed) rows.push({ kind: 'setup', name: `phase ${phase}: delete ${d.kind} ${d.namespace ?? ''}/${d.name}`, ok: false, attempts: 1, detail: 'object not in the serve folder' });
      }
      const cases = test.cases.filter((c) => (c.phase ?? 1) === phase);
      const results = await pool(cases, env.caseConcurrency, (c) => runCase(c, targetOf(c, test, world), env.convergence, env.fleet, test.addRequestIdQueryParam === true));
      rows.push(...results.map((r) => ({ ...r, kind: 'case' as const })));
    }

    if (test.procedural?.type === 'weightedDistribution') {
      const sanity = test.cases[0];
      const sane = rows.find((r) => r.kind === 'case' && r.name === sanity.name)?.ok;
      if (sane) rows.push({ kind: 'procedure', ...(await weightedDistribution(test, sanity, targetOf(sanity, test, world))) });
      else rows.push({ kind: 'procedure', name: 'weighted distribution', ok: false, attempts: 0, detail: 'not attempted: the sanity request did not pass' });
    }
    if (test.procedural?.type === 'perBackendHeaderConsistency') {
      rows.push({ kind: 'procedure', ...(await perBackendHeaderConsistency(test, targetOf(test.cases[0], test, world))) });
    }
    if (test.procedural?.type === 'websocketEcho') {
      rows.push({ kind: 'procedure', ...(await websocketEcho(test, gatewayTarget(test.gateway, test, world), env.convergence)) });
    }
  } finally {
    await serve.stop();
    env.onServe?.(undefined);
  }
  const result = outcome();
  return result.ok ? result : { ...result, logFile: serve.logFile, logTail: serve.tail() };
}

/**
 * Status-only tests need no traffic: `check` on the composed folder, once per phase. Between
 * phases the harness plays the API server's part for spec changes: it rewrites the patched
 * object's file with metadata.generation one higher.
 */
export async function runStatusOnlyTest(name: string, manifests: string[], expectations: StatusOnlyExpectations, env: Pick<RunnerEnv, 'workDir' | 'book'>): Promise<TestOutcome> {
  const started = Date.now();
  const world = composeWorld(loadManifests(manifests), env.book);
  const serveDir = new ServeDir(path.join(env.workDir, name, 'config'));
  const patched = new Set(expectations.phases.flatMap((p) => p.patches ?? []).map(patchKey));
  // The starting generation is written out, as the API server would report it on a new object.
  for (const o of world.objects) if (patched.has(objectKey(o))) o.metadata.generation = 1;
  await serveDir.writeAll(world.objects);

  const rows: Row[] = [];
  const multi = expectations.phases.length > 1;
  for (const [i, phase] of expectations.phases.entries()) {
    const label = multi ? `phase ${i + 1}: ` : '';
    let applied = true;
    for (const patch of phase.patches ?? []) {
      const failure = await applyObjectPatch(patch, world, serveDir);
      const generation = findObject(world, patchKey(patch))?.metadata.generation;
      rows.push({ kind: 'setup', name: `${label}patch ${patch.kind} ${patch.namespace ? `${patch.namespace}/` : ''}${patch.name}: ${patch.description} (generation ${generation})`, ok: !failure, attempts: 1, ...(failure ? { detail: failure } : {}) });
      if (failure) applied = false;
    }
    if (!applied) break;
    rows.push(...(await statusRows(phase.checks, serveDir.dir, world, label)));
  }
  for (const part of expectations.tlsParts ?? []) {
    rows.push({ kind: 'status', name: `not run: ${part.description}`, ok: true, skipped: true, attempts: 0, detail: TLS_REASON });
  }
  return { name, ok: rows.every((r) => r.ok), rows, elapsedMs: Date.now() - started };
}

function patchKey(p: ObjectPatch): string {
  return objectKey({ kind: p.kind, metadata: { name: p.name, ...(p.namespace ? { namespace: p.namespace } : {}) } });
}

function findObject(world: World, key: string): K8sObject | undefined {
  return world.objects.find((o) => objectKey(o) === key);
}

async function applyObjectPatch(patch: ObjectPatch, world: World, serveDir: ServeDir): Promise<string | undefined> {
  const key = patchKey(patch);
  const index = world.objects.findIndex((o) => objectKey(o) === key);
  if (index < 0) return `${key} is not in the manifests`;
  const current = world.objects[index];
  let next: K8sObject;
  try {
    next = applyPatch(current, patch.ops);
  } catch (err) {
    return (err as Error).message;
  }
  next.metadata.generation = (typeof current.metadata.generation === 'number' ? current.metadata.generation : 1) + 1;
  world.objects[index] = next;
  await serveDir.put(next);
  return undefined;
}

async function statusRows(checks: StatusCheck[], dir: string, world: World, prefix = ''): Promise<Row[]> {
  if (checks.length === 0) return [];
  const run = await runCheck(dir);
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
    return r.failure === undefined
      ? { kind: 'status' as const, name: label, ok: true, attempts: 1 }
      : { kind: 'status' as const, name: label, ok: false, attempts: 1, detail: r.failure };
  });
}

function specListeners(world: World): SpecListeners {
  const out: SpecListeners = new Map();
  for (const o of world.objects) {
    if (o.kind !== 'Gateway') continue;
    out.set(`${o.metadata.namespace ?? 'default'}/${o.metadata.name}`, (o.spec?.listeners ?? []).map((l: { name: string }) => l.name));
  }
  return out;
}

function targetOf(c: TrafficCase, test: TrafficTest, world: World): Target {
  return gatewayTarget(c.gateway ?? test.gateway, test, world);
}

function gatewayTarget(gw: GatewayTarget, test: TrafficTest, world: World): Target {
  const ip = world.gatewayIps.get(`${gw.namespace}/${gw.name}`);
  if (!ip) throw new Error(`${test.name}: Gateway ${gw.namespace}/${gw.name} is not in the manifests`);
  return { ip, port: gw.port, scheme: gw.scheme };
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
