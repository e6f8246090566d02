// Hostname semantics from the Gateway API spec (Listener.hostname, HTTPRoute.spec.hostnames):
// "*.example.com" is a suffix match over one or more labels and never matches the apex;
// route and listener hostnames must intersect for a route to attach, and only the
// intersection is served.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { hostMatches, intersectHostnames, patternCovers, specificity, validHostname } from '../../src/gatewayapi/hostnames.ts';
import { NS, attachedRoutes, listener, route, routeAccepted, run, simpleWorld, socketsAt, vhostTable } from './fixtures/builders.ts';

describe('hostMatches (pattern vs concrete host)', () => {
  const cases: [pattern: string, host: string, expected: boolean][] = [
    ['*', 'anything.example.com', true],
    ['*', 'localhost', true],
    ['foo.example.com', 'foo.example.com', true],
    ['foo.example.com', 'bar.example.com', false],
    ['foo.example.com', 'foo.example.com.evil.org', false],
    ['*.example.com', 'foo.example.com', true],
    ['*.example.com', 'foo.bar.example.com', true],
    ['*.example.com', 'example.com', false],
    ['*.example.com', 'fooexample.com', false],
    ['*.example.com', '.example.com', false],
    ['*.example.com', 'example.com.org', false],
    ['*.foo.example.com', 'bar.example.com', false],
    ['*.foo.example.com', 'a.foo.example.com', true],
  ];
  for (const [pattern, host, expected] of cases) {
    test(`${pattern} ${expected ? 'matches' : 'does not match'} ${host}`, () => {
      assert.equal(hostMatches(pattern, host), expected);
    });
  }
});

describe('patternCovers (every host of inner is a host of outer)', () => {
  const cases: [outer: string, inner: string, expected: boolean][] = [
    ['*', '*', true],
    ['*', '*.example.com', true],
    ['*', 'foo.example.com', true],
    ['*.example.com', '*', false],
    ['foo.example.com', '*', false],
    ['*.example.com', '*.example.com', true],
    ['*.example.com', '*.foo.example.com', true],
    ['*.foo.example.com', '*.example.com', false],
    ['*.example.com', 'foo.example.com', true],
    ['*.example.com', 'example.com', false],
    ['foo.example.com', '*.example.com', false],
    ['foo.example.com', 'foo.example.com', true],
    ['*.example.com', '*.xexample.com', false],
  ];
  for (const [outer, inner, expected] of cases) {
    test(`${outer} ${expected ? 'covers' : 'does not cover'} ${inner}`, () => {
      assert.equal(patternCovers(outer, inner), expected);
    });
  }
});

describe('specificity (Listener precedence: exact > longer wildcard > shorter wildcard > none)', () => {
  test('orders exact, then wildcards by length of suffix, then "*"', () => {
    const patterns = ['*', '*.com', '*.example.com', '*.foo.example.com', 'foo.example.com', 'a.io'];
    const sorted = [...patterns].sort((a, b) => specificity(b) - specificity(a));
    assert.deepEqual(sorted.slice(0, 2).sort(), ['a.io', 'foo.example.com']);
    assert.deepEqual(sorted.slice(2), ['*.foo.example.com', '*.example.com', '*.com', '*']);
  });
  test('a short exact name beats a long wildcard', () => {
    assert.ok(specificity('a.io') > specificity('*.very.long.subdomain.of.example.com'));
  });
});

describe('validHostname', () => {
  const valid = ['example.com', 'a.b.c', 'x', 'a-b.example.com', '0abc.example.com', '*.example.com', '*.com'];
  const invalid = ['', 'Example.com', 'exa_mple.com', '-a.example.com', 'a-.example.com', 'a..b', '.example.com', 'example.com.', '*', '*.', 'foo.*.com', '**.example.com', '1.2.3.4', 'a b.com', `${'a'.repeat(64)}.com`, `${'a.'.repeat(127)}a`];
  for (const h of valid) test(`valid: ${JSON.stringify(h)}`, () => assert.equal(validHostname(h, true), null));
  for (const h of invalid) test(`invalid: ${JSON.stringify(h.length > 40 ? `${h.slice(0, 40)}…` : h)}`, () => assert.notEqual(validHostname(h, true), null));
  test('wildcards are refused where a precise hostname is required', () => {
    assert.notEqual(validHostname('*.example.com', false), null);
    assert.equal(validHostname('example.com', false), null);
  });
});

// Spec table: listener hostname (none = any) x route hostnames (none = any).
const intersections: { listener: string | undefined; route: string[]; expected: string[]; why: string }[] = [
  { listener: undefined, route: [], expected: ['*'], why: 'neither side restricts' },
  { listener: undefined, route: ['foo.example.com'], expected: ['foo.example.com'], why: 'route exact on an any-host listener' },
  { listener: undefined, route: ['*.example.com'], expected: ['*.example.com'], why: 'route wildcard on an any-host listener' },
  { listener: 'foo.example.com', route: [], expected: ['foo.example.com'], why: 'route without hostnames takes the listener hostname' },
  { listener: 'foo.example.com', route: ['foo.example.com'], expected: ['foo.example.com'], why: 'same exact name' },
  { listener: 'foo.example.com', route: ['*.example.com'], expected: ['foo.example.com'], why: 'route wildcard covers the listener name' },
  { listener: 'foo.example.com', route: ['*.com'], expected: ['foo.example.com'], why: 'wildcard covers several labels' },
  { listener: 'foo.example.com', route: ['bar.example.com'], expected: [], why: 'different exact names' },
  { listener: 'foo.example.com', route: ['*.foo.example.com'], expected: [], why: 'a wildcard never matches its apex' },
  { listener: '*.example.com', route: [], expected: ['*.example.com'], why: 'route without hostnames takes the listener wildcard' },
  { listener: '*.example.com', route: ['foo.example.com'], expected: ['foo.example.com'], why: 'exact name under the wildcard' },
  { listener: '*.example.com', route: ['foo.bar.example.com'], expected: ['foo.bar.example.com'], why: 'the wildcard matches several labels' },
  { listener: '*.example.com', route: ['example.com'], expected: [], why: 'apex excluded' },
  { listener: '*.example.com', route: ['test.example.net'], expected: [], why: 'other domain' },
  { listener: '*.example.com', route: ['fooexample.com'], expected: [], why: 'suffix must start at a label boundary' },
  { listener: '*.example.com', route: ['*.example.com'], expected: ['*.example.com'], why: 'same wildcard' },
  { listener: '*.example.com', route: ['*.foo.example.com'], expected: ['*.foo.example.com'], why: 'narrower route wildcard' },
  { listener: '*.foo.example.com', route: ['*.example.com'], expected: ['*.foo.example.com'], why: 'narrower listener wildcard' },
  { listener: '*.example.com', route: ['*.com'], expected: ['*.example.com'], why: 'broader route wildcard narrows to the listener' },
  { listener: '*.a.example.com', route: ['*.b.example.com'], expected: [], why: 'sibling wildcards' },
  { listener: '*.example.com', route: ['*.example.net'], expected: [], why: 'wildcards of different domains' },
  {
    listener: '*.example.com',
    route: ['test.example.com', 'test.example.net', 'example.com', '*.foo.example.com'],
    expected: ['test.example.com', '*.foo.example.com'],
    why: 'non-matching route hostnames are ignored',
  },
  { listener: 'foo.example.com', route: ['*.example.com', 'foo.example.com'], expected: ['foo.example.com'], why: 'duplicates collapse' },
];

describe('intersectHostnames', () => {
  for (const c of intersections) {
    test(`listener ${c.listener ?? '(none)'} x route [${c.route.join(', ') || '(none)'}] -> [${c.expected.join(', ')}]: ${c.why}`, () => {
      assert.deepEqual([...intersectHostnames(c.listener, c.route)].sort(), [...c.expected].sort());
    });
  }
});

describe('hostname intersection through the translator', () => {
  for (const c of intersections) {
    test(`listener ${c.listener ?? '(none)'} x route [${c.route.join(', ') || '(none)'}]: ${c.expected.length ? 'attached' : 'NoMatchingListenerHostname'}`, () => {
      const r = run(simpleWorld([listener('http', c.listener !== undefined ? { hostname: c.listener } : {})], [route('r', c.route.length ? { hostnames: c.route } : {})]));
      if (c.expected.length === 0) {
        assert.equal(routeAccepted(r, 'r'), 'False/NoMatchingListenerHostname');
        assert.deepEqual(attachedRoutes(r), { http: 0 });
        assert.deepEqual(vhostTable(socketsAt(r.ir, 80)), { [c.listener ?? '*']: [] }, 'the listener still answers (404) for its hostname');
        return;
      }
      assert.equal(routeAccepted(r, 'r'), 'True/Accepted');
      assert.deepEqual(attachedRoutes(r), { http: 1 });
      const table = vhostTable(socketsAt(r.ir, 80));
      for (const h of c.expected) assert.deepEqual(table[h], [`${NS}/r/0/0`], `vhost ${h} serves the route`);
      // Route hostnames outside the listener must not be served.
      for (const h of c.route) {
        if (!c.expected.includes(h)) assert.equal(table[h], undefined, `vhost ${h} is not served`);
      }
    });
  }

  test('HTTPRouteHostnameIntersection: listener-1 very.specific.com, listener-2 *.wildcard.io, listener-3 *.anotherwildcard.io', () => {
    const listeners = [
      listener('listener-1', { hostname: 'very.specific.com' }),
      listener('listener-2', { hostname: '*.wildcard.io' }),
      listener('listener-3', { hostname: '*.anotherwildcard.io' }),
    ];
    const r = run(
      simpleWorld(listeners, [
        route('specific-host-matches-listener-specific-host', { hostnames: ['non.matching.com', '*.nonmatchingwildcard.io', 'very.specific.com'] }),
        route('specific-host-matches-listener-wildcard-host', { hostnames: ['non.matching.com', 'wildcard.io', 'foo.wildcard.io', 'bar.wildcard.io', 'foo.bar.wildcard.io'] }),
        route('wildcard-host-matches-listener-specific-host', { hostnames: ['non.matching.com', '*.specific.com'] }),
        route('wildcard-host-matches-listener-wildcard-host', { hostnames: ['*.anotherwildcard.io'] }),
        route('no-intersecting-hosts', { hostnames: ['specific.but.wrong.com', 'wildcard.io'] }),
      ]),
    );
    for (const name of ['specific-host-matches-listener-specific-host', 'specific-host-matches-listener-wildcard-host', 'wildcard-host-matches-listener-specific-host', 'wildcard-host-matches-listener-wildcard-host']) {
      assert.equal(routeAccepted(r, name), 'True/Accepted', name);
    }
    assert.equal(routeAccepted(r, 'no-intersecting-hosts'), 'False/NoMatchingListenerHostname');
    assert.deepEqual(attachedRoutes(r), { 'listener-1': 2, 'listener-2': 1, 'listener-3': 1 });
    const table = vhostTable(socketsAt(r.ir, 80));
    assert.deepEqual(Object.keys(table).sort(), ['*.anotherwildcard.io', '*.wildcard.io', 'bar.wildcard.io', 'foo.bar.wildcard.io', 'foo.wildcard.io', 'very.specific.com']);
    assert.deepEqual(table['very.specific.com'], [`${NS}/specific-host-matches-listener-specific-host/0/0`, `${NS}/wildcard-host-matches-listener-specific-host/0/0`]);
    assert.deepEqual(table['*.wildcard.io'], [], 'wildcard.io (the apex) is not served by *.wildcard.io');
    assert.equal(table['wildcard.io'], undefined);
    assert.equal(table['non.matching.com'], undefined);
  });
});
