// Match precedence exactly as the HTTPRoute spec orders it (HTTPRouteRule.matches):
//   Exact path > PathPrefix with most characters > method > most header matches > most query
//   param matches; then across routes the oldest creationTimestamp, then "{namespace}/{name}"
//   alphabetically; within a route the first rule, then (here) the first match.
// The comparison is lexicographic: a later criterion never outweighs an earlier one.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { compareMatches, type RankedMatch } from '../../src/gatewayapi/precedence.ts';
import type { HTTPRoute, HTTPRouteMatch } from '../../src/gatewayapi/types.ts';
import type { IRMatch } from '../../src/ir/types.ts';
import {
  NS,
  exact,
  fromAll,
  gateway,
  headers,
  listener,
  parentRef,
  prefix,
  queries,
  route,
  routeAccepted,
  rule,
  run,
  service,
  socketsAt,
  vhostOf,
  world,
} from './fixtures/builders.ts';

/** Route ids of the "*" vhost, in the order the data plane tries them. */
function order(routes: HTTPRoute[]): string[] {
  const r = run(
    world({
      gateways: [gateway('gw', [listener('http', { allowedRoutes: fromAll })], { namespace: 'infra' })],
      httpRoutes: routes.map((x) => ({ ...x, spec: { ...x.spec, parentRefs: [parentRef('gw', { namespace: 'infra' })] } })),
      services: [...new Set(routes.map((x) => x.metadata.namespace as string))].map((ns) => service('svc', [8080], ns)),
    }),
  );
  for (const x of routes) assert.equal(routeAccepted(r, `${x.metadata.namespace}/${x.metadata.name}`, 'infra/gw'), 'True/Accepted');
  const v = vhostOf(socketsAt(r.ir, 80), '*');
  assert.ok(v);
  return v.routes.map((x) => x.id);
}

const T1 = '2024-01-01T00:00:00Z';
const T2 = '2024-01-02T00:00:00Z';

const one = (name: string, m: HTTPRouteMatch[], extra: Parameters<typeof route>[1] = {}) =>
  route(name, { creationTimestamp: T1, rules: [rule({ matches: m })], ...extra });

describe('precedence across routes (vhost.routes order)', () => {
  const cases: { name: string; routes: HTTPRoute[]; expected: string[] }[] = [
    {
      name: 'Exact beats any PathPrefix, even a longer one',
      routes: [one('a', [prefix('/abc/def/ghi')]), one('b', [exact('/a')])],
      expected: [`${NS}/b/0/0`, `${NS}/a/0/0`],
    },
    {
      name: 'the longest PathPrefix wins',
      routes: [one('a', [prefix('/a')]), one('b', [prefix('/')]), one('c', [prefix('/a/b')])],
      expected: [`${NS}/c/0/0`, `${NS}/a/0/0`, `${NS}/b/0/0`],
    },
    {
      name: 'prefix length beats a method match',
      routes: [one('a', [prefix('/ab', { method: 'GET' })]), one('b', [prefix('/abc')])],
      expected: [`${NS}/b/0/0`, `${NS}/a/0/0`],
    },
    {
      name: 'a method match beats more header matches',
      routes: [one('a', [prefix('/x', { headers: headers('h1', 'h2', 'h3') })]), one('b', [prefix('/x', { method: 'GET' })])],
      expected: [`${NS}/b/0/0`, `${NS}/a/0/0`],
    },
    {
      name: 'more header matches beat more query param matches',
      routes: [one('a', [prefix('/x', { headers: headers('h1'), queryParams: queries('q1', 'q2', 'q3') })]), one('b', [prefix('/x', { headers: headers('h1', 'h2') })])],
      expected: [`${NS}/b/0/0`, `${NS}/a/0/0`],
    },
    {
      name: 'more query param matches win when all else ties',
      routes: [one('a', [prefix('/x', { queryParams: queries('q1') })]), one('b', [prefix('/x', { queryParams: queries('q1', 'q2') })])],
      expected: [`${NS}/b/0/0`, `${NS}/a/0/0`],
    },
    {
      name: 'lexicographic, not additive: one more prefix character beats method + headers + query params',
      routes: [one('a', [prefix('/abc', { method: 'GET', headers: headers('h1', 'h2', 'h3', 'h4'), queryParams: queries('q1', 'q2', 'q3') })]), one('b', [prefix('/abcd')])],
      expected: [`${NS}/b/0/0`, `${NS}/a/0/0`],
    },
    {
      name: 'Exact path with nothing else beats a prefix with method, headers and query params',
      routes: [one('a', [prefix('/a', { method: 'GET', headers: headers('h1'), queryParams: queries('q1') })]), one('b', [exact('/a')])],
      expected: [`${NS}/b/0/0`, `${NS}/a/0/0`],
    },
    {
      name: 'equivalent header names count once (only the first is considered)',
      routes: [one('a', [prefix('/x', { headers: [{ name: 'h', value: '1' }, { name: 'H', value: '2' }] })]), one('b', [prefix('/x', { headers: headers('h', 'i') })])],
      expected: [`${NS}/b/0/0`, `${NS}/a/0/0`],
    },
    {
      name: 'on a tie, the oldest route wins over alphabetical order',
      routes: [route('a', { creationTimestamp: T2, rules: [rule({ matches: [prefix('/x')] })] }), route('z', { creationTimestamp: T1, rules: [rule({ matches: [prefix('/x')] })] })],
      expected: [`${NS}/z/0/0`, `${NS}/a/0/0`],
    },
    {
      name: 'creationTimestamp compares instants, including fractional seconds',
      routes: [
        route('a', { creationTimestamp: '2024-01-01T00:00:01Z', rules: [rule({ matches: [prefix('/x')] })] }),
        route('b', { creationTimestamp: '2024-01-01T00:00:00.500Z', rules: [rule({ matches: [prefix('/x')] })] }),
      ],
      expected: [`${NS}/b/0/0`, `${NS}/a/0/0`],
    },
    {
      name: 'the oldest route wins even with a later rule against the first rule of a newer route',
      routes: [
        route('new', { creationTimestamp: T2, rules: [rule({ matches: [prefix('/x')] })] }),
        route('old', { creationTimestamp: T1, rules: [rule({ matches: [prefix('/y')] }), rule({ matches: [prefix('/x')] })] }),
      ],
      expected: [`${NS}/old/0/0`, `${NS}/old/1/0`, `${NS}/new/0/0`],
    },
    {
      name: 'same age: "{namespace}/{name}" alphabetically, namespace first',
      routes: [one('aaa', [prefix('/x')], { namespace: 'ns2' }), one('zzz', [prefix('/x')], { namespace: 'ns1' })],
      expected: ['ns1/zzz/0/0', 'ns2/aaa/0/0'],
    },
    {
      name: 'same age: alphabetical order is over the whole "{namespace}/{name}" string',
      routes: [one('x', [prefix('/x')], { namespace: 'a' }), one('x', [prefix('/x')], { namespace: 'a-b' })],
      expected: ['a-b/x/0/0', 'a/x/0/0'],
    },
    {
      name: 'same age and namespace: by name',
      routes: [one('b', [prefix('/x')]), one('a', [prefix('/x')]), one('c', [prefix('/x')])],
      expected: [`${NS}/a/0/0`, `${NS}/b/0/0`, `${NS}/c/0/0`],
    },
    {
      name: 'within a route: the first rule wins a tie',
      routes: [route('r', { creationTimestamp: T1, rules: [rule({ matches: [prefix('/x')] }), rule({ matches: [prefix('/x')] })] })],
      expected: [`${NS}/r/0/0`, `${NS}/r/1/0`],
    },
    {
      name: 'within a rule: the first match wins a tie',
      routes: [route('r', { creationTimestamp: T1, rules: [rule({ matches: [prefix('/x', { headers: headers('a') }), prefix('/x', { headers: headers('b') })] })] })],
      expected: [`${NS}/r/0/0`, `${NS}/r/0/1`],
    },
    {
      name: 'within a route: a more specific later rule still goes first',
      routes: [route('r', { creationTimestamp: T1, rules: [rule({ matches: [prefix('/')] }), rule({ matches: [prefix('/long')] })] })],
      expected: [`${NS}/r/1/0`, `${NS}/r/0/0`],
    },
    {
      name: 'HTTPRouteMatching (conformance manifest)',
      routes: [
        route('matching', {
          rules: [
            rule({ matches: [prefix('/'), { headers: [{ name: 'version', value: 'one' }] }] }),
            rule({ matches: [prefix('/v2'), { headers: [{ name: 'version', value: 'two' }] }] }),
          ],
        }),
      ],
      expected: [`${NS}/matching/1/0`, `${NS}/matching/0/1`, `${NS}/matching/1/1`, `${NS}/matching/0/0`],
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      assert.deepEqual(order(c.routes), c.expected);
    });
  }

  test('HTTPRouteMatchingAcrossRoutes (conformance manifest): precedence spans routes, per hostname', () => {
    const r = run(
      world({
        gateways: [gateway('gw', [listener('http')])],
        httpRoutes: [
          route('matching-part1', {
            creationTimestamp: T1,
            hostnames: ['example.com', 'example.net'],
            rules: [rule({ matches: [prefix('/'), { headers: [{ name: 'version', value: 'one' }] }] })],
          }),
          route('matching-part2', {
            creationTimestamp: T1,
            hostnames: ['example.com'],
            rules: [rule({ matches: [prefix('/v2'), { headers: [{ name: 'version', value: 'two' }] }] })],
          }),
        ],
        services: [service('svc')],
      }),
    );
    const socket = socketsAt(r.ir, 80);
    assert.deepEqual(
      vhostOf(socket, 'example.com')?.routes.map((x) => x.id),
      [`${NS}/matching-part2/0/0`, `${NS}/matching-part1/0/1`, `${NS}/matching-part2/0/1`, `${NS}/matching-part1/0/0`],
    );
    assert.deepEqual(vhostOf(socket, 'example.net')?.routes.map((x) => x.id), [`${NS}/matching-part1/0/1`, `${NS}/matching-part1/0/0`]);
  });

  test('HTTPRoutePathMatchOrder (conformance manifest): every Exact first, then prefixes longest first', () => {
    const ids = order([
      route('path-matching-order', {
        creationTimestamp: T1,
        rules: [
          rule({ matches: [exact('/match')] }),
          rule({ matches: [exact('/match/exact')] }),
          rule({ matches: [exact('/match/exact/one')] }),
          rule({ matches: [prefix('/match/')] }),
          rule({ matches: [prefix('/match/prefix/')] }),
          rule({ matches: [prefix('/match/prefix/one')] }),
        ],
      }),
    ]);
    const byRule = ids.map((id) => Number(id.split('/')[2]));
    assert.deepEqual([...byRule.slice(0, 3)].sort(), [0, 1, 2]);
    assert.deepEqual(byRule.slice(3), [5, 4, 3]);
  });
});

describe('compareMatches is a total order', () => {
  // Deterministic pseudo-random matches; sorting any permutation must give the same order.
  function lcg(seed: number) {
    let s = seed >>> 0;
    return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  }
  function randomMatches(seed: number, n: number): RankedMatch[] {
    const rnd = lcg(seed);
    const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)];
    const out: RankedMatch[] = [];
    for (let i = 0; i < n; i++) {
      const match: IRMatch = {
        path: { type: pick(['Exact', 'PathPrefix', 'PathPrefix', 'RegularExpression'] as const), value: pick(['/', '/a', '/ab', '/a/b', '/abc']) },
        headers: Array.from({ length: Math.floor(rnd() * 3) }, (_, k) => ({ name: `h${k}`, type: 'Exact' as const, value: 'v' })),
        queryParams: Array.from({ length: Math.floor(rnd() * 3) }, (_, k) => ({ name: `q${k}`, type: 'Exact' as const, value: 'v' })),
      };
      if (rnd() < 0.3) match.method = 'GET';
      out.push({
        match,
        routeCreated: pick(['2024-01-01T00:00:00Z', '2024-01-02T00:00:00Z', '']),
        routeKey: pick(['a/x', 'a/y', 'b/x']),
        ruleIndex: Math.floor(rnd() * 3),
        matchIndex: i, // unique: no two entries are identical
      });
    }
    return out;
  }

  for (const seed of [1, 2, 3, 42]) {
    test(`sorting is independent of input order (seed ${seed})`, () => {
      const list = randomMatches(seed, 60);
      const sorted = [...list].sort(compareMatches);
      const reversed = [...list].reverse().sort(compareMatches);
      const shuffled = [...list].sort((a, b) => ((a.matchIndex * 7919) % 61) - ((b.matchIndex * 7919) % 61)).sort(compareMatches);
      assert.deepEqual(reversed, sorted);
      assert.deepEqual(shuffled, sorted);
      for (let i = 0; i < list.length; i++) {
        for (let j = 0; j < list.length; j++) {
          const ab = Math.sign(compareMatches(list[i], list[j]));
          const ba = Math.sign(compareMatches(list[j], list[i]));
          assert.equal(ab, i === j ? 0 : -ba, 'antisymmetric');
          if (i !== j) assert.notEqual(ab, 0, 'distinct entries never tie');
        }
      }
    });
  }

  test('each criterion decides only when the earlier ones tie', () => {
    const base = (over: Partial<RankedMatch> & { m?: Partial<IRMatch> } = {}): RankedMatch => ({
      match: { path: { type: 'PathPrefix', value: '/a' }, headers: [], queryParams: [], ...over.m },
      routeCreated: over.routeCreated ?? T1,
      routeKey: over.routeKey ?? 'ns/r',
      ruleIndex: over.ruleIndex ?? 0,
      matchIndex: over.matchIndex ?? 0,
    });
    const h = (n: number) => Array.from({ length: n }, (_, k) => ({ name: `h${k}`, type: 'Exact' as const, value: 'v' }));
    const first = (a: RankedMatch, b: RankedMatch) => assert.ok(compareMatches(a, b) < 0 && compareMatches(b, a) > 0);
    first(base({ m: { path: { type: 'Exact', value: '/a' } } }), base({ m: { path: { type: 'PathPrefix', value: '/aaaa' } } }));
    first(base({ m: { path: { type: 'PathPrefix', value: '/ab' } } }), base({ m: { method: 'GET', headers: h(5), queryParams: h(5) } }));
    first(base({ m: { method: 'GET' } }), base({ m: { headers: h(5), queryParams: h(5) } }));
    first(base({ m: { headers: h(2) } }), base({ m: { headers: h(1), queryParams: h(5) } }));
    first(base({ m: { queryParams: h(1) } }), base({ routeCreated: '2000-01-01T00:00:00Z' }));
    first(base({ routeCreated: T1, routeKey: 'z/z', ruleIndex: 9 }), base({ routeCreated: T2, routeKey: 'a/a', ruleIndex: 0 }));
    first(base({ routeKey: 'a/a', ruleIndex: 9 }), base({ routeKey: 'a/b', ruleIndex: 0 }));
    first(base({ ruleIndex: 0, matchIndex: 9 }), base({ ruleIndex: 1, matchIndex: 0 }));
    first(base({ matchIndex: 0 }), base({ matchIndex: 1 }));
  });
});
