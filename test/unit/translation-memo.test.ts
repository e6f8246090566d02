// Incremental translation equals full translation: random sequences of changes to a snapshot
// (routes added, changed, deleted and copied; Services, ReferenceGrants, Namespace labels and
// Gateway listeners changed; per-call options varied), each translated with and without a
// TranslationMemo. Unchanged objects keep their identity from step to step, as the manifest
// loader and the cluster cache hand them out; changed ones are new objects.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { translate, type TranslateOptions, type TranslateResult } from '../../src/gatewayapi/translator.ts';
import { TranslationMemo } from '../../src/gatewayapi/translation-memo.ts';
import { indexStatuses, type PreviousStatuses } from '../../src/gatewayapi/status.ts';
import type { Gateway, HTTPBackendRef, HTTPRoute, HTTPRouteFilter, HTTPRouteMatch, HTTPRouteRule, Namespace, ReferenceGrant, ResourceSnapshot, Service } from '../../src/gatewayapi/types.ts';
import { backend, fromAll, fromSelector, gateway, listener, namespace, parentRef, referenceGrant, route, service, world } from './fixtures/builders.ts';
import { prng } from '../support/prng.ts';


class Random {
  readonly next: () => number;
  constructor(seed: number) {
    this.next = prng(seed);
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(list: readonly T[]): T {
    return list[this.int(list.length)];
  }
  subset<T>(list: readonly T[]): T[] {
    return list.filter(() => this.chance(0.4));
  }
}

const HOSTNAMES = ['a.example.com', 'b.example.com', '*.example.com', 'c.test', 'x.a.example.com'];
const TIMESTAMPS = ['2030-01-01T00:00:00Z', '2030-01-01T00:00:01Z'];
const ROUTE_NAMESPACES = ['default', 'default', 'team-a', 'team-b'];

function randomMatch(r: Random): HTTPRouteMatch {
  const m: HTTPRouteMatch = {};
  const kind = r.int(5);
  if (kind === 0) m.path = { type: 'Exact', value: `/e${r.int(3)}` };
  else if (kind === 1) m.path = { type: 'RegularExpression', value: r.pick(['/r[0-9]+', '/bad(', '/x.*']) };
  else if (kind === 2) m.path = { type: 'PathPrefix', value: `/p${r.int(4)}` };
  else if (kind === 3) m.path = { type: 'PathPrefix', value: '/' };
  if (r.chance(0.3)) m.headers = [{ name: 'x-h', value: `${r.int(2)}` }];
  if (r.chance(0.2)) m.queryParams = [{ name: 'q', value: 'v' }];
  if (r.chance(0.2)) m.method = r.pick(['GET', 'POST']);
  if (r.chance(0.04)) m.path = { type: 'PathPrefix', value: 'no-slash' }; // invalid
  return m;
}

function randomBackend(r: Random): HTTPBackendRef {
  const b = r.pick<() => HTTPBackendRef>([
    () => backend('svc'),
    () => backend('svc'),
    () => backend('svc2', 9090),
    () => backend('svc2', 9090),
    () => backend('svc2', 8080, { weight: r.pick([0, 1, 5]) }),
    () => backend('missing'),
    () => backend('svc', 1234),
    () => backend('remote', 8080, { namespace: 'team-b' }),
    () => backend('svc', 8080, { namespace: 'default' }),
    () => backend('svc', undefined),
  ])();
  if (r.chance(0.1)) b.filters = [{ type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'x-b', value: '1' }] } }];
  return b;
}

function randomRule(r: Random): HTTPRouteRule {
  const rule: HTTPRouteRule = {};
  if (r.chance(0.8)) rule.matches = Array.from({ length: 1 + r.int(2) }, () => randomMatch(r));
  rule.backendRefs = Array.from({ length: r.int(3) }, () => randomBackend(r));
  const filters: HTTPRouteFilter[] = [];
  if (r.chance(0.15)) filters.push({ type: 'RequestMirror', requestMirror: { backendRef: r.pick([backend('svc2', 8080), backend('remote', 8080, { namespace: 'team-b' }), backend('missing')]) } });
  if (r.chance(0.15)) filters.push({ type: 'ResponseHeaderModifier', responseHeaderModifier: { add: [{ name: 'x-r', value: '1' }] } });
  if (r.chance(0.03)) filters.push({ type: 'Bogus' }); // invalid
  if (filters.length) rule.filters = filters;
  return rule;
}

function randomRoute(r: Random, name: string, ns: string, generation: number): HTTPRoute {
  const parentRefs = r.pick([
    [parentRef('gw', { namespace: 'default' })],
    [parentRef('gw', { namespace: 'default', sectionName: 'http' })],
    [parentRef('gw', { namespace: 'default', port: 8080 })],
    [parentRef('gw2', { namespace: 'team-a' })],
    [parentRef('gw', { namespace: 'default' }), parentRef('gw2', { namespace: 'team-a' })],
    [parentRef('nobody', { namespace: 'default' })],
  ]);
  const hostnames = r.chance(0.2) ? undefined : r.subset(HOSTNAMES);
  const rules = Array.from({ length: 1 + r.int(3) }, () => randomRule(r));
  const opts: Parameters<typeof route>[1] = { namespace: ns, parentRefs, rules, generation };
  if (hostnames) opts.hostnames = hostnames;
  if (r.chance(0.5)) opts.creationTimestamp = r.pick(TIMESTAMPS);
  return route(name, opts);
}

/** The objects of one step; arrays are rebuilt each step, unchanged elements kept. */
interface World {
  routes: HTTPRoute[];
  gateways: Gateway[];
  services: Service[];
  grants: ReferenceGrant[];
  namespaces: Namespace[];
}

const LISTENER_SETS = [
  () => [listener('http', { allowedRoutes: fromAll }), listener('alt', { port: 8080, hostname: '*.example.com', allowedRoutes: fromAll })],
  () => [listener('http', { allowedRoutes: fromAll })],
  () => [listener('http', { hostname: 'a.example.com', allowedRoutes: fromAll }), listener('wide', { allowedRoutes: fromAll })],
  () => [listener('http'), listener('alt', { port: 8080, allowedRoutes: fromSelector({ matchLabels: { env: 'prod' } }) })],
];

function gw(r: Random, generation: number): Gateway {
  return gateway('gw', r.pick(LISTENER_SETS)(), { generation });
}

function gw2(r: Random, generation: number): Gateway {
  const hostname = r.pick([undefined, '*.example.com', 'c.test']);
  return gateway('gw2', [listener('http', { port: r.pick([80, 8080]), ...(hostname ? { hostname } : {}), allowedRoutes: fromSelector({ matchLabels: { env: 'prod' } }) })], {
    namespace: 'team-a',
    generation,
    creationTimestamp: '2029-01-01T00:00:00Z',
  });
}

const grant = () => referenceGrant('allow', 'team-b', [{ namespace: 'default' }], [{ name: 'remote' }]);

function snapshotOf(w: World): ResourceSnapshot {
  return world({
    gateways: [...w.gateways],
    httpRoutes: [...w.routes],
    services: [...w.services],
    referenceGrants: [...w.grants],
    namespaces: [...w.namespaces],
  });
}

/**
 * What the operator does to statuses before indexing them: a condition of its own per parent,
 * on copies (route statuses are handed out frozen, and may be handed out again).
 */
function addProgrammed(result: TranslateResult): void {
  result.statuses.forEach((s, i) => {
    if (s.kind !== 'HTTPRoute') return;
    const parents = s.status.parents.map((p) => ({ ...p, conditions: [...p.conditions, { type: 'Programmed', status: 'True' as const, reason: 'Programmed', message: '', observedGeneration: 1 }] }));
    result.statuses[i] = { ...s, status: { ...s.status, parents } };
  });
}

function runSequence(seed: number, steps: number): { memo: TranslationMemo } {
  const r = new Random(seed);
  let generation = 1;
  let counter = 0;
  const w: World = {
    routes: [],
    gateways: [gw(r, generation), gw2(r, generation)],
    services: [service('svc'), service('svc2', [8080, 9090]), service('remote', [8080], 'team-b'), service('svc', [8080], 'team-a'), service('svc2', [9090], 'team-a')],
    grants: [],
    namespaces: [namespace('default'), namespace('team-a', { env: 'prod' }), namespace('team-b')],
  };
  for (let i = 0; i < 12; i++) w.routes.push(randomRoute(r, `r${counter++}`, r.pick(ROUTE_NAMESPACES), 1));
  const base: Omit<TranslateOptions, 'now'> = { defaultAddress: '127.0.0.1', perGateway: r.chance(0.7), sharedDataPlane: r.chance(0.7) };
  const memo = new TranslationMemo();
  let previousFull: PreviousStatuses | undefined;
  let previousMemo: PreviousStatuses | undefined;
  const log: string[] = [];
  for (let step = 0; step < steps; step++) {
    const op = r.int(100);
    const replace = <T>(list: T[], i: number, next: T) => list.splice(i, 1, next);
    if (op < 20 || w.routes.length === 0) {
      w.routes.push(randomRoute(r, `r${counter++}`, r.pick(ROUTE_NAMESPACES), 1));
      log.push('add route');
    } else if (op < 45) {
      const i = r.int(w.routes.length);
      const old = w.routes[i];
      replace(w.routes, i, randomRoute(r, old.metadata.name, old.metadata.namespace as string, (old.metadata.generation ?? 1) + 1));
      log.push(`change route ${old.metadata.name}`);
    } else if (op < 55) {
      const i = r.int(w.routes.length);
      log.push(`delete route ${w.routes[i].metadata.name}`);
      w.routes.splice(i, 1);
    } else if (op < 62) {
      const i = r.int(w.routes.length);
      replace(w.routes, i, structuredClone(w.routes[i]));
      log.push('copy a route');
    } else if (op < 67) {
      const ports = r.pick([[8080, 9090], [8080], [9090], [{ port: 8080, appProtocol: 'kubernetes.io/h2c' }, 9090]]);
      const i = w.services.findIndex((s) => s.metadata.name === 'svc2' && s.metadata.namespace === 'default');
      if (i >= 0) replace(w.services, i, service('svc2', ports));
      log.push('change Service svc2');
    } else if (op < 70) {
      const i = w.services.findIndex((s) => s.metadata.name === 'remote');
      if (i >= 0) w.services.splice(i, 1);
      else w.services.push(service('remote', [8080], 'team-b'));
      log.push('toggle Service remote');
    } else if (op < 75) {
      w.grants = w.grants.length ? [] : [grant()];
      log.push('toggle ReferenceGrant');
    } else if (op < 79) {
      const i = w.namespaces.findIndex((n) => n.metadata.name === 'team-a');
      replace(w.namespaces, i, namespace('team-a', r.chance(0.5) ? { env: 'prod' } : { env: 'dev' }));
      log.push('change Namespace labels');
    } else if (op < 84) {
      generation++;
      const which = r.int(2);
      replace(w.gateways, which, which === 0 ? gw(r, generation) : gw2(r, generation));
      log.push(`change Gateway ${which === 0 ? 'gw' : 'gw2'}`);
    } else if (op < 90) {
      // An equal copy of an unchanged object: a new identity only.
      const lists: unknown[][] = [w.gateways, w.services, w.namespaces, w.grants];
      const list = r.pick(lists.filter((l) => l.length)) as object[];
      const i = r.int(list.length);
      list[i] = structuredClone(list[i]);
      log.push('copy a non-route object');
    } else {
      log.push('no change');
    }

    const snapshot = snapshotOf(w);
    const now = new Date(Date.UTC(2030, 0, 1, 0, 0, step)).toISOString();
    const options: TranslateOptions = { ...base, now };
    // Per-call options: PCRE2 verdicts, VCL culprits, busy sockets, varied step by step.
    if (r.chance(0.3)) options.regexVerdicts = (p) => (p === '/x.*' ? 'refused' : null);
    if (r.chance(0.2) && w.routes.length) {
      const culprit = r.pick(w.routes).metadata.name;
      options.rejectedRoutes = (route) => (route.metadata.name === culprit ? 'its VCL does not compile' : null);
    }
    if (r.chance(0.1)) options.unavailableSockets = new Map([['127.0.0.1:8080', 'in use']]);
    const full = translate(snapshot, { ...options, ...(previousFull ? { previous: previousFull } : {}) });
    const incremental = translate(snapshot, { ...options, ...(previousMemo ? { previous: previousMemo } : {}), memo });
    try {
      assert.deepStrictEqual(incremental, full);
    } catch (err) {
      throw new Error(`seed ${seed}, step ${step} (${log.slice(-5).join('; ')}): translation with the memo differs from without it\n${(err as Error).message.slice(0, 4000)}`);
    }
    if (r.chance(0.5)) {
      addProgrammed(full);
      addProgrammed(incremental);
    }
    previousFull = indexStatuses(full.statuses);
    previousMemo = indexStatuses(incremental.statuses);
    // Bounded: the memo holds no more than the routes of the last translation.
    assert.ok(memo.entries <= 2 * w.routes.length + 2, `seed ${seed}, step ${step}: the memo holds ${memo.entries} entries for ${w.routes.length} routes`);
  }
  return { memo };
}

for (const seed of [1, 2, 3, 4, 5, 6]) {
  test(`incremental translation equals full translation over random changes (seed ${seed})`, () => {
    const { memo } = runSequence(seed, 200);
    // Route changes reuse the environment, other changes rebuild it: both paths were taken.
    assert.ok(memo.stats.reused > 50, `environment reused ${memo.stats.reused} times`);
    assert.ok(memo.stats.rebuilt > 5, `environment rebuilt ${memo.stats.rebuilt} times`);
  });
}

test('a route change reuses the other routes: their IR vhosts are the same objects', () => {
  const routes = Array.from({ length: 20 }, (_, i) => route(`r${i}`, { hostnames: [`r${i}.example.com`] }));
  const w: World = { routes, gateways: [gateway('gw', [listener('http')])], services: [service('svc')], grants: [], namespaces: [] };
  const memo = new TranslationMemo();
  const options = { defaultAddress: '127.0.0.1', now: '2030-01-01T00:00:00Z', memo };
  const first = translate(snapshotOf(w), options);
  w.routes[3] = route('r3', { hostnames: ['r3.example.com'], generation: 2 });
  const second = translate(snapshotOf(w), options);
  const vhosts = (r: TranslateResult) => new Map(r.ir.sockets[0].vhosts.map((v) => [v.hostname, v]));
  const [a, b] = [vhosts(first), vhosts(second)];
  assert.equal(b.get('r4.example.com'), a.get('r4.example.com'), 'an unchanged route keeps its vhost');
  assert.notEqual(b.get('r3.example.com'), a.get('r3.example.com'), 'the changed route gets a new one');
  assert.deepStrictEqual(second, translate(snapshotOf(w), { defaultAddress: '127.0.0.1', now: '2030-01-01T00:00:00Z' }));
});

test('route statuses: handed out again while nothing changed, rebuilt from any other previous status, frozen', () => {
  const routes = Array.from({ length: 5 }, (_, i) => route(`r${i}`, { hostnames: [`r${i}.example.com`] }));
  const w: World = { routes, gateways: [gateway('gw', [listener('http')])], services: [service('svc')], grants: [], namespaces: [] };
  const memo = new TranslationMemo();
  const routeStatus = (r: TranslateResult, name: string) => r.statuses.find((s) => s.kind === 'HTTPRoute' && s.metadata.name === name);
  const first = translate(snapshotOf(w), { defaultAddress: '127.0.0.1', now: '2030-01-01T00:00:00Z', memo });
  const r1 = routeStatus(first, 'r1');
  assert.ok(r1 && Object.isFrozen(r1) && r1.kind === 'HTTPRoute' && Object.isFrozen(r1.status.parents[0].conditions[0]));
  assert.throws(() => {
    (r1.status.parents[0] as { conditions: unknown[] }).conditions = [];
  }, TypeError);

  // Our own statuses as previous: r1's state is reused, so is its status object.
  w.routes[3] = route('r3', { hostnames: ['r3.example.com'], generation: 2 });
  const second = translate(snapshotOf(w), { defaultAddress: '127.0.0.1', now: '2030-01-01T00:00:05Z', memo, previous: indexStatuses(first.statuses) });
  assert.equal(routeStatus(second, 'r1'), r1);

  // A previous status from elsewhere (the cluster's, with its own transition times): rebuilt
  // from it, as a full translation does.
  const elsewhere = second.statuses.map((s) =>
    s.kind === 'HTTPRoute' ? { ...s, status: { parents: s.status.parents.map((p) => ({ ...p, conditions: p.conditions.map((c) => ({ ...c, lastTransitionTime: '2029-06-01T00:00:00Z' })) })) } } : s,
  );
  w.routes[2] = route('r2', { hostnames: ['r2.example.com'], generation: 2 });
  const options = { defaultAddress: '127.0.0.1', now: '2030-01-01T00:00:09Z', previous: indexStatuses(elsewhere) };
  const third = translate(snapshotOf(w), { ...options, memo });
  const r1Third = routeStatus(third, 'r1');
  assert.ok(r1Third?.kind === 'HTTPRoute');
  assert.notEqual(r1Third, r1);
  assert.equal(r1Third.status.parents[0].conditions[0].lastTransitionTime, '2029-06-01T00:00:00Z');
  assert.deepStrictEqual(third, translate(snapshotOf(w), options));
});
