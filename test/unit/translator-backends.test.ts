// backendRefs: ResolvedRefs reasons (BackendNotFound, InvalidKind, RefNotPermitted),
// ReferenceGrant, weights (default 1, 0 never picked, invalid shares answer 500), the IR's
// service table, and the rule actions that reach the IR.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import type { HTTPBackendRef, ReferenceGrant, Service } from '../../src/gatewayapi/types.ts';
import type { IRBackendRef, RoutingIR } from '../../src/ir/types.ts';
import {
  NS,
  backend,
  fromAll,
  gateway,
  listener,
  parentRef,
  prefix,
  referenceGrant,
  route,
  routeAccepted,
  routeResolved,
  rule,
  run,
  service,
  simpleWorld,
  world,
} from './fixtures/builders.ts';

/** Backends of the one route in the IR, with service indexes replaced by "ns/name:port". */
function backendsOf(ir: RoutingIR, id = `${NS}/r/0/0`): { weight: number; service: string | null }[] {
  const route = ir.sockets.flatMap((s) => s.vhosts.flatMap((v) => v.routes)).find((x) => x.id === id);
  if (!route) throw new Error(`no IR route ${id}`);
  return route.action.backends.map((b: IRBackendRef) => {
    if (b.service === null) return { weight: b.weight, service: null };
    const s = ir.services[b.service];
    assert.ok(s, `service index ${b.service} exists`);
    return { weight: b.weight, service: `${s.namespace}/${s.name}:${s.port}` };
  });
}

function oneRoute(backendRefs: HTTPBackendRef[], services: Service[] = [service('svc'), service('svc2'), service('svc3')]) {
  return run(world({ gateways: [gateway('gw', [listener('http')])], httpRoutes: [route('r', { rules: [rule({ backendRefs })] })], services }));
}

describe('weights', () => {
  const cases: { name: string; refs: HTTPBackendRef[]; backends: { weight: number; service: string | null }[]; resolved: string }[] = [
    { name: 'weight defaults to 1', refs: [backend('svc')], backends: [{ weight: 1, service: `${NS}/svc:8080` }], resolved: 'True/ResolvedRefs' },
    {
      name: 'weights are kept as given, in order',
      refs: [backend('svc', 8080, { weight: 90 }), backend('svc2', 8080, { weight: 10 })],
      backends: [
        { weight: 90, service: `${NS}/svc:8080` },
        { weight: 10, service: `${NS}/svc2:8080` },
      ],
      resolved: 'True/ResolvedRefs',
    },
    { name: 'a weight-0 backend is dropped', refs: [backend('svc', 8080, { weight: 0 }), backend('svc2')], backends: [{ weight: 1, service: `${NS}/svc2:8080` }], resolved: 'True/ResolvedRefs' },
    { name: 'all weights 0: nothing to pick (500)', refs: [backend('svc', 8080, { weight: 0 }), backend('svc2', 8080, { weight: 0 })], backends: [], resolved: 'True/ResolvedRefs' },
    {
      name: 'an invalid backend keeps its share as service null (500 for that share)',
      refs: [backend('missing', 8080, { weight: 3 }), backend('svc', 8080, { weight: 1 })],
      backends: [
        { weight: 3, service: null },
        { weight: 1, service: `${NS}/svc:8080` },
      ],
      resolved: 'False/BackendNotFound',
    },
    { name: 'an invalid backend with weight 0 is dropped but still reported', refs: [backend('missing', 8080, { weight: 0 }), backend('svc')], backends: [{ weight: 1, service: `${NS}/svc:8080` }], resolved: 'False/BackendNotFound' },
    { name: 'only invalid backends: all traffic gets 500', refs: [backend('missing')], backends: [{ weight: 1, service: null }], resolved: 'False/BackendNotFound' },
    { name: 'no backendRefs: empty (500)', refs: [], backends: [], resolved: 'True/ResolvedRefs' },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const r = oneRoute(c.refs);
      assert.equal(routeAccepted(r, 'r'), 'True/Accepted', 'backend problems never un-accept a route');
      assert.equal(routeResolved(r, 'r'), c.resolved);
      assert.deepEqual(backendsOf(r.ir), c.backends);
    });
  }

  test('a weight-0 backend is not added to the service table', () => {
    const r = oneRoute([backend('svc', 8080, { weight: 0 }), backend('svc2')]);
    assert.deepEqual(r.ir.services, [{ namespace: NS, name: 'svc2', port: 8080, portName: '' }]);
  });

  test('the service table holds each Service port once, shared across routes and rules', () => {
    const r = run(
      world({
        gateways: [gateway('gw', [listener('http')])],
        httpRoutes: [
          route('a', { rules: [rule({ matches: [prefix('/a')], backendRefs: [backend('svc')] }), rule({ matches: [prefix('/b')], backendRefs: [backend('svc'), backend('svc', 9090)] })] }),
          route('b', { rules: [rule({ matches: [prefix('/c')], backendRefs: [backend('svc')] })] }),
        ],
        services: [service('svc', [8080, 9090])],
      }),
    );
    assert.deepEqual(
      [...r.ir.services].map((s) => `${s.namespace}/${s.name}:${s.port}`).sort(),
      [`${NS}/svc:8080`, `${NS}/svc:9090`],
    );
    const ids = r.ir.sockets[0].vhosts[0].routes.flatMap((x) => x.action.backends.map((b) => b.service));
    for (const id of ids) assert.ok(id !== null && id >= 0 && id < r.ir.services.length);
  });
});

describe('ResolvedRefs reasons', () => {
  const cases: { name: string; refs: HTTPBackendRef[]; services?: Service[]; resolved: string }[] = [
    { name: 'Service does not exist', refs: [backend('does-not-exist')], resolved: 'False/BackendNotFound' },
    { name: 'unknown kind (HTTPRouteInvalidBackendRefUnknownKind)', refs: [backend('svc', 8080, { group: 'unknown.example.com', kind: 'UnknownKind' })], resolved: 'False/InvalidKind' },
    { name: 'Service kind in a foreign group', refs: [backend('svc', 8080, { group: 'example.com', kind: 'Service' })], resolved: 'False/InvalidKind' },
    { name: 'ServiceImport (not supported)', refs: [backend('svc', 8080, { group: 'multicluster.x-k8s.io', kind: 'ServiceImport' })], resolved: 'False/InvalidKind' },
    { name: 'explicit core group and Service kind', refs: [backend('svc', 8080, { group: '', kind: 'Service' })], resolved: 'True/ResolvedRefs' },
    { name: 'explicit same namespace needs no grant', refs: [backend('svc', 8080, { namespace: NS })], resolved: 'True/ResolvedRefs' },
    { name: 'cross-namespace without a ReferenceGrant', refs: [backend('svc', 8080, { namespace: 'other' })], services: [service('svc', [8080], 'other')], resolved: 'False/RefNotPermitted' },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const r = c.services ? oneRoute(c.refs, c.services) : oneRoute(c.refs);
      assert.equal(routeAccepted(r, 'r'), 'True/Accepted');
      assert.equal(routeResolved(r, 'r'), c.resolved);
      const expected = c.resolved.startsWith('True') ? 'a service' : null;
      assert.equal(backendsOf(r.ir)[0].service === null ? null : 'a service', expected);
    });
  }

  test('a Service without the referenced port does not resolve', () => {
    const r = oneRoute([backend('svc', 9999)]);
    assert.equal(routeResolved(r, 'r').split('/')[0], 'False');
    assert.deepEqual(backendsOf(r.ir), [{ weight: 1, service: null }]);
  });

  test('one bad backend in any rule makes ResolvedRefs False for the route (every parent)', () => {
    const r = run(
      world({
        gateways: [gateway('gw', [listener('http')]), gateway('gw2', [listener('http', { port: 8080 })])],
        httpRoutes: [route('r', { parentRefs: [parentRef('gw'), parentRef('gw2')], rules: [rule({ matches: [prefix('/a')] }), rule({ matches: [prefix('/b')], backendRefs: [backend('missing')] })] })],
        services: [service('svc')],
      }),
    );
    assert.equal(routeResolved(r, 'r', `${NS}/gw`), 'False/BackendNotFound');
    assert.equal(routeResolved(r, 'r', `${NS}/gw2`), 'False/BackendNotFound');
  });
});

describe('ReferenceGrant', () => {
  // Route in "apps", Service "svc" in "backends".
  const cases: { name: string; grants: ReferenceGrant[]; resolved: string }[] = [
    { name: 'no grant', grants: [], resolved: 'False/RefNotPermitted' },
    { name: 'grant for all Services in the namespace', grants: [referenceGrant('g', 'backends', [{ namespace: 'apps' }], [{}])], resolved: 'True/ResolvedRefs' },
    { name: 'grant naming the Service', grants: [referenceGrant('g', 'backends', [{ namespace: 'apps' }], [{ name: 'svc' }])], resolved: 'True/ResolvedRefs' },
    { name: 'grant naming another Service', grants: [referenceGrant('g', 'backends', [{ namespace: 'apps' }], [{ name: 'other' }])], resolved: 'False/RefNotPermitted' },
    { name: 'grant from another namespace', grants: [referenceGrant('g', 'backends', [{ namespace: 'web' }], [{}])], resolved: 'False/RefNotPermitted' },
    { name: 'grant placed in the route namespace instead of the target', grants: [referenceGrant('g', 'apps', [{ namespace: 'apps' }], [{}])], resolved: 'False/RefNotPermitted' },
    { name: 'grant from kind Gateway', grants: [referenceGrant('g', 'backends', [{ namespace: 'apps', kind: 'Gateway' }], [{}])], resolved: 'False/RefNotPermitted' },
    { name: 'grant from kind GRPCRoute', grants: [referenceGrant('g', 'backends', [{ namespace: 'apps', kind: 'GRPCRoute' }], [{}])], resolved: 'False/RefNotPermitted' },
    { name: 'grant from a foreign group', grants: [referenceGrant('g', 'backends', [{ namespace: 'apps', group: 'example.com' }], [{}])], resolved: 'False/RefNotPermitted' },
    { name: 'grant to Secrets', grants: [referenceGrant('g', 'backends', [{ namespace: 'apps' }], [{ kind: 'Secret' }])], resolved: 'False/RefNotPermitted' },
    { name: 'grant to a foreign group', grants: [referenceGrant('g', 'backends', [{ namespace: 'apps' }], [{ group: 'example.com' }])], resolved: 'False/RefNotPermitted' },
    {
      name: 'one matching entry among several from/to entries',
      grants: [referenceGrant('g', 'backends', [{ namespace: 'web' }, { namespace: 'apps' }], [{ kind: 'Secret' }, { name: 'svc' }])],
      resolved: 'True/ResolvedRefs',
    },
    {
      name: 'a from entry and a to entry from different grants do not combine',
      grants: [referenceGrant('g1', 'backends', [{ namespace: 'apps' }], [{ kind: 'Secret' }]), referenceGrant('g2', 'backends', [{ namespace: 'web' }], [{}])],
      resolved: 'False/RefNotPermitted',
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const r = run(
        world({
          gateways: [gateway('gw', [listener('http', { allowedRoutes: fromAll })], { namespace: 'infra' })],
          httpRoutes: [route('r', { namespace: 'apps', parentRefs: [parentRef('gw', { namespace: 'infra' })], rules: [rule({ backendRefs: [backend('svc', 8080, { namespace: 'backends' })] })] })],
          services: [service('svc', [8080], 'backends'), service('other', [8080], 'backends')],
          referenceGrants: c.grants,
        }),
      );
      assert.equal(routeAccepted(r, 'apps/r', 'infra/gw'), 'True/Accepted');
      assert.equal(routeResolved(r, 'apps/r', 'infra/gw'), c.resolved);
      const expected = c.resolved.startsWith('True') ? [{ weight: 1, service: 'backends/svc:8080' }] : [{ weight: 1, service: null }];
      assert.deepEqual(backendsOf(r.ir, 'apps/r/0/0'), expected);
    });
  }

  test('a granted reference to a Service that does not exist is BackendNotFound', () => {
    const r = run(
      world({
        gateways: [gateway('gw', [listener('http', { allowedRoutes: fromAll })])],
        httpRoutes: [route('r', { rules: [rule({ backendRefs: [backend('nope', 8080, { namespace: 'backends' })] })] })],
        referenceGrants: [referenceGrant('g', 'backends', [{ namespace: NS }], [{}])],
      }),
    );
    assert.equal(routeResolved(r, 'r'), 'False/BackendNotFound');
  });

  test('HTTPRoutePartiallyInvalidViaInvalidReferenceGrant: the permitted rule still routes', () => {
    const r = run(
      world({
        gateways: [gateway('gw', [listener('http')])],
        httpRoutes: [
          route('r', {
            rules: [
              rule({ matches: [prefix('/v1')], backendRefs: [backend('svc')] }),
              rule({ matches: [prefix('/v2')], backendRefs: [backend('svc', 8080, { namespace: 'backends' })] }),
            ],
          }),
        ],
        services: [service('svc'), service('svc', [8080], 'backends')],
        referenceGrants: [referenceGrant('g', 'backends', [{ namespace: NS }], [{ name: 'not-svc' }])],
      }),
    );
    assert.equal(routeAccepted(r, 'r'), 'True/Accepted');
    assert.equal(routeResolved(r, 'r'), 'False/RefNotPermitted');
    assert.deepEqual(backendsOf(r.ir, `${NS}/r/0/0`), [{ weight: 1, service: `${NS}/svc:8080` }]);
    assert.deepEqual(backendsOf(r.ir, `${NS}/r/1/0`), [{ weight: 1, service: null }]);
  });
});

describe('rule actions in the IR', () => {
  test('RequestHeaderModifier reaches the IR as set/add/remove', () => {
    const r = run(
      simpleWorld(
        [listener('http')],
        [
          route('r', {
            rules: [
              rule({
                filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'X-Set', value: 's' }], add: [{ name: 'X-Add', value: 'a' }], remove: ['X-Remove'] } }],
              }),
            ],
          }),
        ],
      ),
    );
    assert.deepEqual(r.ir.sockets[0].vhosts[0].routes[0].action.requestHeaders, {
      set: [{ name: 'X-Set', value: 's' }],
      add: [{ name: 'X-Add', value: 'a' }],
      remove: ['X-Remove'],
    });
  });

  test('RequestRedirect: default 302, the listener port, and the matched prefix for ReplacePrefixMatch', () => {
    const r = run(
      simpleWorld(
        [listener('http', { port: 8080 })],
        [
          route('r', {
            rules: [
              rule({ matches: [prefix('/old/')], filters: [{ type: 'RequestRedirect', requestRedirect: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/new' } } }], backendRefs: [] }),
              rule({ matches: [prefix('/x')], filters: [{ type: 'RequestRedirect', requestRedirect: { scheme: 'https', hostname: 'example.org', statusCode: 301 } }], backendRefs: [] }),
            ],
          }),
        ],
      ),
    );
    const routes = Object.fromEntries(r.ir.sockets[0].vhosts[0].routes.map((x) => [x.id, x.action.redirect]));
    assert.deepEqual(routes[`${NS}/r/0/0`], { statusCode: 302, listenerPort: 8080, path: { type: 'ReplacePrefixMatch', prefix: '/old', value: '/new' } });
    assert.deepEqual(routes[`${NS}/r/1/0`], { statusCode: 301, scheme: 'https', hostname: 'example.org', listenerPort: 8080 });
  });

  test('ReplacePrefixMatch needs PathPrefix matches (spec: other match types make the route Accepted=False)', () => {
    const r = run(
      simpleWorld(
        [listener('http')],
        [route('r', { rules: [rule({ matches: [{ path: { type: 'Exact', value: '/a' } }], filters: [{ type: 'RequestRedirect', requestRedirect: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/b' } } }], backendRefs: [] })] })],
      ),
    );
    assert.equal(routeAccepted(r, 'r').split('/')[0], 'False');
  });

  test('header matches with equivalent names keep only the first (names are case-insensitive); query names are case-sensitive', () => {
    const r = run(
      simpleWorld(
        [listener('http')],
        [
          route('r', {
            rules: [
              rule({
                matches: [
                  prefix('/', {
                    headers: [{ name: 'Version', value: 'one' }, { name: 'version', value: 'two' }],
                    queryParams: [{ name: 'q', value: '1' }, { name: 'Q', value: '2' }, { name: 'q', value: '3' }],
                  }),
                ],
              }),
            ],
          }),
        ],
      ),
    );
    const m = r.ir.sockets[0].vhosts[0].routes[0].match;
    assert.deepEqual(m.headers, [{ name: 'Version', type: 'Exact', value: 'one' }]);
    assert.deepEqual(m.queryParams, [
      { name: 'q', type: 'Exact', value: '1' },
      { name: 'Q', type: 'Exact', value: '2' },
    ]);
  });

  test('PathPrefix values drop the trailing slash ("/abc/" matches like "/abc"); "/" stays', () => {
    const r = run(simpleWorld([listener('http')], [route('r', { rules: [rule({ matches: [prefix('/abc/'), prefix('/')] })] })]));
    assert.deepEqual(
      r.ir.sockets[0].vhosts[0].routes.map((x) => x.match.path.value),
      ['/abc', '/'],
    );
  });
});
