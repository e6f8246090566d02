// HTTPRouteRequestPercentageMirror's procedure (cases.json `mirrorPercentage`), as upstream v1.6
// codes it: per case, a sanity check, then up to 5 attempts of 500 requests that share one fresh
// request id, counting what the mirror backend recorded for exactly that path + id, judged
// against a binomial band of 3 standard deviations.
import { randomUUID } from 'node:crypto';
import type { TrafficCase, TrafficTest } from './data.ts';
import type { Target } from './client.ts';
import { checkOnce, pool, runCase, withRequestId, type CaseResult, type RequestLog } from './cases.ts';
import { awaitConvergence, type ConvergenceOptions } from './converge.ts';
import { awaitSettled, type Clock } from './poll.ts';

export interface MirrorPercentageSpec {
  totalRequests: number;
  concurrency: number;
  attempts: number;
}

/** Reads cases.json's `procedural.perCase`, with upstream's constants where a field is missing. */
export function mirrorPercentageSpec(test: TrafficTest): MirrorPercentageSpec {
  const per = (test.procedural?.perCase ?? {}) as Record<string, unknown>;
  const int = (v: unknown, fallback: number) => (typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : fallback);
  return { totalRequests: int(per.totalRequests, 500), concurrency: int(per.concurrency, 10), attempts: int(per.attempts, 5) };
}

/** Binomial(n, p): the expected count and the ±3σ half-width upstream accepts around it. */
export function mirrorTolerance(total: number, percent: number): { expected: number; margin: number } {
  const p = percent / 100;
  return { expected: total * p, margin: 3 * Math.sqrt(total * p * (1 - p)) };
}

/** Undefined when `count` mirrored requests out of `total` fit `percent`, else why not. */
export function judgeMirrorCount(count: number, total: number, percent: number): string | undefined {
  const { expected, margin } = mirrorTolerance(total, percent);
  if (Math.abs(count - expected) <= margin) return undefined;
  return `${count} mirrored of ${total}, expected ${fmt(expected)} ±${fmt(margin)} (${percent}%)`;
}

function fmt(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}

/** Requests one Deployment echoed for exactly this request URI (the upstream log regexp's match). */
export function countMirrored(log: RequestLog, mirror: { namespace: string; name: string }, path: string): number {
  return log.requestsOf(mirror.namespace, mirror.name).filter((r) => r.path === path && r.upgrade === undefined).length;
}

export interface MirrorPercentageEnv {
  fleet: RequestLog;
  convergence: ConvergenceOptions;
  /** How long a count must stay unchanged before it is judged, and the most to wait for that. */
  settle?: { quietMs: number; capMs: number; intervalMs: number };
  clock?: Clock;
}

const DEFAULT_SETTLE = { quietMs: 1000, capMs: 10_000, intervalMs: 100 };

/** One case: a sanity row, then the distribution row (not attempted when the sanity check failed). */
export async function mirrorPercentageCase(c: TrafficCase, target: Target, spec: MirrorPercentageSpec, env: MirrorPercentageEnv): Promise<CaseResult[]> {
  // The sanity check is the plain case: no request id, and no single request must be mirrored.
  const { mirroredTo, ...plain } = c;
  const sanity = await runCase(plain, target, env.convergence, env.fleet, false);
  const name = `${c.name}: mirrored share (${spec.totalRequests} requests, ±3σ)`;
  if (!sanity.ok) return [sanity, { name, ok: false, attempts: 0, detail: 'not attempted: the sanity request did not pass' }];
  const mirrors = (mirroredTo ?? []).map((m) => ({ ...m, percent: m.percent ?? 100 }));
  if (!mirrors.length) return [sanity, { name, ok: false, attempts: 0, detail: 'the case names no mirror backend' }];

  const history: string[] = [];
  for (let attempt = 1; attempt <= spec.attempts; attempt++) {
    const tagged = withRequestId(plain, randomUUID());
    const failure = await sendBatch(tagged, target, spec, env.convergence);
    if (failure) return [sanity, { name, ok: false, attempts: attempt, detail: failure }];

    const path = tagged.request.path;
    const total = () => mirrors.reduce((sum, m) => sum + countMirrored(env.fleet, m, path), 0);
    const { settled } = await awaitSettled(total, { ...(env.settle ?? DEFAULT_SETTLE), ...(env.clock ? { clock: env.clock } : {}) });
    const verdicts = mirrors.map((m) => {
      const problem = judgeMirrorCount(countMirrored(env.fleet, m, path), spec.totalRequests, m.percent);
      return problem ? `${m.namespace}/${m.name}: ${problem}` : undefined;
    });
    const problems = verdicts.filter((v): v is string => v !== undefined);
    if (!problems.length) return [sanity, { name, ok: true, attempts: attempt }];
    history.push(`attempt ${attempt}: ${problems.join('; ')}${settled ? '' : ' (count still changing when judged)'}`);
    // Upstream pauses 2 s before the next attempt; each attempt has its own request id, so late
    // mirrors of this one cannot be counted in the next, and the pause is not needed here.
  }
  return [sanity, { name, ok: false, attempts: spec.attempts, detail: history.join(' | ') }];
}

// All requests of one attempt; each is upstream's eventually consistent check with one required
// success, so a failed request is repeated until it passes (or the 30 s budget is gone).
async function sendBatch(c: TrafficCase, target: Target, spec: MirrorPercentageSpec, convergence: ConvergenceOptions): Promise<string | undefined> {
  let failure: string | undefined;
  await pool(Array.from({ length: spec.totalRequests }, (_, i) => i), spec.concurrency, async (i) => {
    if (failure) return;
    const r = await awaitConvergence(() => checkOnce(c, target), { ...convergence, threshold: 1 });
    if (!r.ok) failure ??= `request ${i + 1} of ${spec.totalRequests} did not pass within ${Math.round(convergence.timeoutMs / 1000)} s: ${r.lastFailure}`;
  });
  return failure;
}
