// Running one declarative case (upstream MakeRequestAndExpectEventuallyConsistentResponse and
// friends) against a gateway address.
import { randomUUID } from 'node:crypto';
import type { SecretKeyRef, TrafficCase } from './data.ts';
import { compareRoundTrip } from './compare.ts';
import { roundTrip, wireHeaders, type Exchange, type Target } from './client.ts';
import { awaitConsistentFailure, awaitConvergence, type ConvergenceOptions } from './converge.ts';
import type { RecordedRequest } from '../../src/echo/server.ts';
import { pollUntil, type Clock } from './poll.ts';
import type { ClientTls } from './tls-client.ts';

/** The generated TLS Secrets by "namespace/name" (generated-objects.ts), for cases that speak TLS. */
export type TrustStore = ReadonlyMap<string, { cert: string; key: string }>;

/**
 * What mirror checks read: the requests each echo Deployment recorded (in-process echo servers
 * keep them; in a cluster they come from the pods' request log lines, as upstream reads them).
 */
export interface RequestLog {
  requestsOf(namespace: string, deployment: string): readonly Pick<RecordedRequest, 'path' | 'upgrade'>[];
}

export interface CaseResult {
  name: string;
  ok: boolean;
  attempts: number;
  detail?: string;
}

export const REQUEST_ID_PARAM = 'gateway-api-conformance-request-id';

/** upstream AddRequestIDQueryParam, applied to the request and the expected backend path. */
export function withRequestId(c: TrafficCase, id: string): TrafficCase {
  const add = (p: string) => `${p}${p.includes('?') ? '&' : '?'}${REQUEST_ID_PARAM}=${encodeURIComponent(id)}`;
  return {
    ...c,
    request: { ...c.request, path: add(c.request.path) },
    ...(c.expectedRequest ? { expectedRequest: { ...c.expectedRequest, ...(c.expectedRequest.path !== undefined ? { path: add(c.expectedRequest.path) } : {}) } } : {}),
  };
}

/** `{uuid}` placeholders get a fresh value per request (HTTPRouteRetry). */
export function instantiate(c: TrafficCase): TrafficCase {
  if (!c.request.path.includes('{uuid}')) return c;
  const id = randomUUID();
  return {
    ...c,
    request: { ...c.request, path: c.request.path.replaceAll('{uuid}', id) },
    ...(c.expectedRequest?.path ? { expectedRequest: { ...c.expectedRequest, path: c.expectedRequest.path.replaceAll('{uuid}', id) } } : {}),
  };
}

export function send(c: TrafficCase, target: Target, trust?: TrustStore): Promise<Exchange> {
  const tls = target.scheme === 'https' ? clientTls(c, trust) : undefined;
  return roundTrip({
    target,
    host: c.request.host,
    method: c.request.method || 'GET',
    path: c.request.path,
    headers: wireHeaders(c.request.headers, c.backendSetResponseHeaders),
    ...(c.request.unfollowRedirect ? { unfollowRedirect: true } : {}),
    ...(c.request.protocol ? { protocol: c.request.protocol } : {}),
    ...(tls ? { tls } : {}),
  });
}

/** upstream: SNI = the case's serverName, the one root = tls.crt of the named Secret. */
export function clientTls(c: TrafficCase, trust: TrustStore | undefined): ClientTls {
  if (!c.tls) throw new Error(`case "${c.name}" goes to an HTTPS listener but names no server name and certificate`);
  const trusted = trust?.get(c.tls.trustedServerCertificateSecret);
  if (!trusted) throw new Error(`no generated Secret ${c.tls.trustedServerCertificateSecret} to trust`);
  const client = c.tls.clientCertificateSecret === undefined ? undefined : trust?.get(c.tls.clientCertificateSecret);
  if (c.tls.clientCertificateSecret !== undefined && !client) throw new Error(`no generated Secret ${c.tls.clientCertificateSecret} to present`);
  return { serverName: c.tls.serverName, trusted: trusted.cert, ...(client ? { clientCert: client } : {}) };
}

export async function checkOnce(c: TrafficCase, target: Target, trust?: TrustStore): Promise<string | undefined> {
  const concrete = instantiate(c);
  const ex = await send(concrete, target, trust);
  return compareRoundTrip(concrete, ex.url, ex, (ref) => certificateText(trust, ref));
}

/** The text of a generated Secret's key, as a backend would see it presented (tls.crt only). */
export function certificateText(trust: TrustStore | undefined, ref: SecretKeyRef): string | undefined {
  return ref.key === 'tls.crt' ? trust?.get(ref.secret)?.cert : undefined;
}

export async function runCase(c: TrafficCase, target: Target, convergence: ConvergenceOptions, fleet: RequestLog, requestIds: boolean, trust?: TrustStore): Promise<CaseResult> {
  if (c.mode === 'expectRequestError') {
    try {
      const ex = await send(instantiate(c), target, trust);
      return { name: c.name, ok: false, attempts: 1, detail: `expected a transport error, got HTTP ${ex.response.status}` };
    } catch {
      return { name: c.name, ok: true, attempts: 1 };
    }
  }
  if (c.mode === 'expectConsistentFailure') {
    const r = await awaitConsistentFailure(async () => (await send(instantiate(c), target, trust)).response.status, convergence);
    return r.ok ? { name: c.name, ok: true, attempts: r.attempts } : { name: c.name, ok: false, attempts: r.attempts, detail: `no consistent failure within ${Math.round(convergence.timeoutMs / 1000)} s: ${r.lastFailure}` };
  }
  const concrete = requestIds || c.mirroredTo?.length ? withRequestId(c, randomUUID()) : c;
  const r = await awaitConvergence(() => checkOnce(concrete, target, trust), convergence);
  if (!r.ok) return { name: c.name, ok: false, attempts: r.attempts, detail: `not consistent within ${Math.round(convergence.timeoutMs / 1000)} s: ${r.lastFailure}` };
  const mirrorFailure = await checkMirrors(concrete, fleet);
  if (mirrorFailure) return { name: c.name, ok: false, attempts: r.attempts, detail: mirrorFailure };
  return { name: c.name, ok: true, attempts: r.attempts };
}

/**
 * upstream ExpectMirroredRequest: each mirror backend must have echoed the exact request URI
 * within the request timeout (10 s). The gateway sends mirrors on its own after answering, so
 * this polls; the harness reads its own echo records instead of pod logs. Mirrors with a
 * `percent` are left to the mirrorPercentage procedure: upstream never expects any single one
 * of those requests to be mirrored.
 */
export async function checkMirrors(c: TrafficCase, fleet: RequestLog, opts: { timeoutMs?: number; intervalMs?: number; clock?: Clock } = {}): Promise<string | undefined> {
  const wanted = (c.mirroredTo ?? []).filter((m) => m.percent === undefined);
  if (!wanted.length) return undefined;
  const missingNow = () => wanted.filter((m) => !fleet.requestsOf(m.namespace, m.name).some((r) => r.path === c.request.path && r.upgrade === undefined));
  const { value: missing } = await pollUntil(missingNow, (left) => left.length === 0, {
    intervalMs: opts.intervalMs ?? 100,
    capMs: opts.timeoutMs ?? 10_000,
    ...(opts.clock ? { clock: opts.clock } : {}),
  });
  return missing.length ? `no mirrored request ${c.request.path} seen by ${missing.map((m) => `${m.namespace}/${m.name}`).join(', ')} within ${Math.round((opts.timeoutMs ?? 10_000) / 1000)} s` : undefined;
}

/** Runs tasks with at most `limit` in flight, keeping result order. */
export async function pool<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
