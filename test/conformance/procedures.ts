// The non-declarative parts of some tests (cases.json `procedural`), as upstream codes them.
import { randomInt } from 'node:crypto';
import type { TrafficCase, TrafficTest } from './data.ts';
import { compareRoundTrip } from './compare.ts';
import type { Target } from './client.ts';
import { pool, send, type CaseResult } from './cases.ts';
import { describeError } from './converge.ts';
import { endpointFor, type K8sObject, type Pod } from './world.ts';

interface WeightSpec {
  totalRequests: number;
  concurrency: number;
  maxAttempts: number;
  expectedWeights: Record<string, number>;
  tolerance: number;
}

/** upstream weight.extractBackendName: pod names are <deployment>-<rs hash>-<pod hash>. */
export function backendOfPod(pod: string): string {
  const parts = pod.split('-');
  return parts.length < 3 ? pod : parts.slice(0, -2).join('-');
}

/** upstream TestWeightedDistribution's verdict on one batch of answers. */
export function judgeDistribution(counts: Map<string, number>, total: number, weights: Record<string, number>, tolerance: number): string[] {
  const errs: string[] = [];
  const active = Object.values(weights).filter((w) => w > 0).length;
  if (counts.size !== active) errs.push(`expected ${active} backends to receive traffic, got ${counts.size}`);
  for (const [backend, want] of Object.entries(weights)) {
    const got = counts.get(backend);
    if (got === undefined && want !== 0) {
      errs.push(`no traffic reached ${backend}`);
      continue;
    }
    const share = (got ?? 0) / total;
    if (Math.abs(share - want) > tolerance) errs.push(`${backend} got ${(share * 100).toFixed(1)}%, expected ${(want * 100).toFixed(0)}% ±${(tolerance * 100).toFixed(0)}`);
  }
  return errs.sort();
}

// The entropy upstream adds so that requests do not all hash alike: half carry a random header,
// which the backend must then see as well (the expected request is a copy of the request).
function withJitter(c: TrafficCase): TrafficCase {
  if (randomInt(2) === 0) return c;
  return { ...c, request: { ...c.request, headers: { ...c.request.headers, 'X-Jitter': String(randomInt(10_000)) } } };
}

export async function weightedDistribution(test: TrafficTest, sanity: TrafficCase, target: Target): Promise<CaseResult> {
  const spec = test.procedural as unknown as WeightSpec;
  const name = `weighted distribution (${spec.totalRequests} requests, ±${spec.tolerance * 100}%)`;
  let last = '';
  for (let attempt = 1; attempt <= spec.maxAttempts; attempt++) {
    const counts = new Map<string, number>();
    let failure: string | undefined;
    await pool(Array.from({ length: spec.totalRequests }), spec.concurrency, async () => {
      if (failure) return;
      const c = withJitter(sanity);
      try {
        const ex = await send(c, target);
        const mismatch = compareRoundTrip(c, ex.url, ex);
        if (mismatch) {
          failure = `response expectation failed: ${mismatch}`;
          return;
        }
        const backend = backendOfPod(ex.request.pod);
        if (!(backend in spec.expectedWeights)) {
          failure = `request was handled by an unexpected pod ${JSON.stringify(ex.request.pod)}`;
          return;
        }
        counts.set(backend, (counts.get(backend) ?? 0) + 1);
      } catch (err) {
        failure = `request failed: ${describeError(err)}`;
      }
    });
    const errs = failure ? [failure] : judgeDistribution(counts, spec.totalRequests, spec.expectedWeights, spec.tolerance);
    if (errs.length === 0) return { name, ok: true, attempts: attempt };
    last = `${errs.join('; ')}${counts.size ? ` (seen: ${[...counts].map(([b, n]) => `${b}=${n}`).join(', ')})` : ''}`;
  }
  return { name, ok: false, attempts: spec.maxAttempts, detail: last };
}

export async function perBackendHeaderConsistency(test: TrafficTest, target: Target): Promise<CaseResult> {
  const spec = test.procedural as unknown as { requests: number; request: { method: string; path: string; host: string } };
  const name = `Backend header matches the answering pod (${spec.requests} requests)`;
  const c: TrafficCase = { name, request: { ...spec.request }, response: { statusCodes: [200] }, backend: '', namespace: '' };
  for (let i = 0; i < spec.requests; i++) {
    let problem: string | undefined;
    try {
      const ex = await send(c, target);
      const backendHeader = Object.entries(ex.request.headers).filter(([k]) => k.toLowerCase() === 'backend').flatMap(([, v]) => v);
      if (ex.response.status !== 200) problem = `status ${ex.response.status}`;
      else if (backendHeader.length !== 1) problem = `expected exactly one Backend header value at the backend, got ${JSON.stringify(backendHeader)}`;
      else if (!ex.request.pod.startsWith(backendHeader[0])) problem = `Backend header ${JSON.stringify(backendHeader[0])} but answered by pod ${JSON.stringify(ex.request.pod)}`;
    } catch (err) {
      problem = `request failed: ${describeError(err)}`;
    }
    if (problem) return { name, ok: false, attempts: i + 1, detail: `request ${i + 1}: ${problem}` };
  }
  return { name, ok: true, attempts: spec.requests };
}

/**
 * HTTPRouteServiceTypes: upstream copies the infra-backend-v1 pod IPs into the test's empty,
 * hand-made EndpointSlices; IPv6 slices stay empty because the echo pods only have IPv4.
 */
export function patchedEndpointSlices(test: TrafficTest, objects: K8sObject[], pods: Pod[]): K8sObject[] {
  const names: string[] = (test.procedural?.endpointSlices as string[] | undefined) ?? [];
  const ns = test.gateway.namespace;
  const source = pods.filter((p) => p.namespace === ns && p.deployment === 'infra-backend-v1');
  return objects
    .filter((o) => o.kind === 'EndpointSlice' && names.includes(o.metadata.name) && (o.metadata.namespace ?? 'default') === ns)
    .filter((o) => o.addressType === 'IPv4')
    .map((o) => ({ ...o, endpoints: source.map(endpointFor) }));
}
