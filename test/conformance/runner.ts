// One test from start to finish, on a stage (stage.ts) that is either `vgw serve` on a folder or
// the operator on the local cluster. A traffic test: put the objects in place, assert the status
// the product reports, then the traffic cases, phases and procedures. A status-only test: status
// per phase, with spec changes in between.
import type { GatewayTarget, TrafficCase, TrafficTest } from './data.ts';
import type { Target } from './client.ts';
import type { ConvergenceOptions } from './converge.ts';
import { pool, runCase, type CaseResult, type TrustStore } from './cases.ts';
import { mirrorPercentageCase, mirrorPercentageSpec } from './mirror.ts';
import { patchedEndpointSlices, perBackendHeaderConsistency, weightedDistribution } from './procedures.ts';
import type { Stage } from './stage.ts';
import { applyPatch, type ObjectPatch, type StatusOnlyExpectations } from './status-only.ts';
import { websocketEcho } from './websocket.ts';
import { configMapReconcile, reconcileSpec } from './configmap-reconcile.ts';
import { loadManifests, objectKey, type K8sObject, type World } from './world.ts';

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
  stage: Stage;
  convergence: ConvergenceOptions;
  caseConcurrency: number;
  /** The generated TLS Secrets, for cases sent to HTTPS listeners. */
  trust?: TrustStore;
}

export async function runTrafficTest(test: TrafficTest, env: RunnerEnv): Promise<TestOutcome> {
  const started = Date.now();
  const { stage } = env;
  const rows: Row[] = [];
  const world = stage.compose(loadManifests(test.manifests));
  try {
    const setup = await stage.begin(test.name, world, { serve: true });
    rows.push(...setup);
    if (setup.length === 0) await playTraffic(test, world, env, rows);
  } catch (err) {
    rows.push({ kind: 'setup', name: 'harness', ok: false, attempts: 1, detail: (err as Error).message });
  }
  const ok = rows.every((r) => r.ok);
  const logs = await stage.end(ok);
  return { name: test.name, ok, rows, elapsedMs: Date.now() - started, ...logs };
}

async function playTraffic(test: TrafficTest, world: World, env: RunnerEnv, rows: Row[]): Promise<void> {
  const { stage } = env;
  rows.push(...(await stage.status(test.statusChecks ?? [], world, '')));

  if (test.procedural?.type === 'patchEndpointSlices') {
    const source = await stage.podsOf(world, test.gateway.namespace, 'infra-backend-v1');
    for (const slice of patchedEndpointSlices(test, world.objects, source)) await stage.put(slice);
  }
  const targets = new Map<string, Target>();
  const targetOf = async (gw: GatewayTarget): Promise<Target> => {
    const key = `${gw.namespace}/${gw.name}:${gw.port}`;
    let t = targets.get(key);
    if (!t) targets.set(key, (t = await stage.target(gw, world)));
    return t;
  };
  const caseTarget = (c: TrafficCase) => targetOf(c.gateway ?? test.gateway);

  // HTTPRouteRequestPercentageMirror: its cases are the procedure's sanity checks, run one case
  // after the other as upstream does, each followed by its distribution check.
  const percentageMirror = test.procedural?.type === 'mirrorPercentage';
  if (percentageMirror) {
    const spec = mirrorPercentageSpec(test);
    for (const c of test.cases) {
      const [sanity, distribution] = await mirrorPercentageCase(c, await caseTarget(c), spec, { fleet: stage.requests, convergence: env.convergence });
      rows.push({ ...sanity, kind: 'case' }, { ...distribution, kind: 'procedure' });
    }
  }

  const phases = percentageMirror ? [] : [...new Set(test.cases.map((c) => c.phase ?? 1))].sort((a, b) => a - b);
  for (const phase of phases) {
    const action = test.phases?.find((p) => p.phase === phase)?.action;
    if (action?.delete) {
      const d = action.delete;
      const removed = await stage.remove(d);
      if (!removed) rows.push({ kind: 'setup', name: `phase ${phase}: delete ${d.kind} ${d.namespace ?? ''}/${d.name}`, ok: false, attempts: 1, detail: 'object not found' });
    }
    const cases = test.cases.filter((c) => (c.phase ?? 1) === phase);
    for (const c of cases) await caseTarget(c);
    const results = await pool(cases, env.caseConcurrency, async (c) => runCase(c, await caseTarget(c), env.convergence, stage.requests, test.addRequestIdQueryParam === true, env.trust));
    rows.push(...results.map((r) => ({ ...r, kind: 'case' as const })));
  }

  if (test.procedural?.type === 'weightedDistribution') {
    const sanity = test.cases[0];
    const sane = rows.find((r) => r.kind === 'case' && r.name === sanity.name)?.ok;
    if (sane) rows.push({ kind: 'procedure', ...(await weightedDistribution(test, sanity, await caseTarget(sanity))) });
    else rows.push({ kind: 'procedure', name: 'weighted distribution', ok: false, attempts: 0, detail: 'not attempted: the sanity request did not pass' });
  }
  if (test.procedural?.type === 'perBackendHeaderConsistency') {
    rows.push({ kind: 'procedure', ...(await perBackendHeaderConsistency(test, await caseTarget(test.cases[0]))) });
  }
  if (test.procedural?.type === 'configMapReconcile') {
    // upstream waits up to 60 s per step (HTTPRouteMustHaveCondition's timeout).
    rows.push(...(await configMapReconcile(reconcileSpec(test), world, stage, { timeoutMs: Math.max(env.convergence.timeoutMs, 60_000) })).map((r) => ({ ...r, kind: 'procedure' as const })));
  }
  if (test.procedural?.type === 'websocketEcho') {
    rows.push({ kind: 'procedure', ...(await websocketEcho(test, await targetOf(test.gateway), env.convergence)) });
  }
}

/**
 * Status-only tests need no traffic: status once per phase. Between phases the harness applies
 * the upstream spec changes; in standalone mode it also plays the API server's part, writing
 * metadata.generation one higher (a cluster's API server does that itself).
 */
export async function runStatusOnlyTest(name: string, manifests: string[], expectations: StatusOnlyExpectations, env: Pick<RunnerEnv, 'stage'>): Promise<TestOutcome> {
  const started = Date.now();
  const { stage } = env;
  const world = stage.compose(loadManifests(manifests));
  const patched = new Set(expectations.phases.flatMap((p) => p.patches ?? []).map(patchKey));
  // The starting generation is written out, as the API server would report it on a new object.
  for (const o of world.objects) if (patched.has(objectKey(o))) o.metadata.generation = 1;

  const rows: Row[] = [];
  try {
    rows.push(...(await stage.begin(name, world, { serve: false })));
    const multi = expectations.phases.length > 1;
    for (const [i, phase] of expectations.phases.entries()) {
      const label = multi ? `phase ${i + 1}: ` : '';
      let applied = true;
      for (const patch of phase.patches ?? []) {
        const { failure, generation } = await applyObjectPatch(patch, world, stage);
        rows.push({ kind: 'setup', name: `${label}patch ${patch.kind} ${patch.namespace ? `${patch.namespace}/` : ''}${patch.name}: ${patch.description} (generation ${generation})`, ok: !failure, attempts: 1, ...(failure ? { detail: failure } : {}) });
        if (failure) applied = false;
      }
      if (!applied) break;
      rows.push(...(await stage.status(phase.checks, world, label)));
    }
  } catch (err) {
    rows.push({ kind: 'setup', name: 'harness', ok: false, attempts: 1, detail: (err as Error).message });
  }
  for (const part of expectations.tlsParts ?? []) {
    if (rows.every((r) => r.kind !== 'setup' || r.ok)) {
      const label = `${part.description.split(':')[0]}: `;
      try {
        rows.push(...(await stage.status(part.checks, world, label)));
      } catch (err) {
        rows.push({ kind: 'setup', name: `${label}harness`, ok: false, attempts: 1, detail: (err as Error).message });
      }
    }
  }
  const ok = rows.every((r) => r.ok);
  const logs = await stage.end(ok);
  return { name, ok, rows, elapsedMs: Date.now() - started, ...logs };
}

function patchKey(p: ObjectPatch): string {
  return objectKey({ kind: p.kind, metadata: { name: p.name, ...(p.namespace ? { namespace: p.namespace } : {}) } });
}

async function applyObjectPatch(patch: ObjectPatch, world: World, stage: Stage): Promise<{ failure?: string; generation?: number }> {
  const key = patchKey(patch);
  const index = world.objects.findIndex((o) => objectKey(o) === key);
  if (index < 0) return { failure: `${key} is not in the manifests` };
  const current = world.objects[index];
  let next: K8sObject;
  try {
    next = applyPatch(current, patch.ops);
  } catch (err) {
    return { failure: (err as Error).message };
  }
  next.metadata.generation = (typeof current.metadata.generation === 'number' ? current.metadata.generation : 1) + 1;
  world.objects[index] = next;
  try {
    return { generation: await stage.put(next) };
  } catch (err) {
    return { failure: (err as Error).message };
  }
}
