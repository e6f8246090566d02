// Filters, timeouts and retries as the translator puts them into the IR: what reaches the VCL
// compiler for each one, how mirror backendRefs resolve, and backendRef-level filters.
// (Values that must be refused are listed in translator-routes.test.ts.)
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { HTTPRouteFilter, HTTPRouteRule } from '../../src/gatewayapi/types.ts';
import type { IRAction, IRRoute } from '../../src/ir/types.ts';
import { parseDuration } from '../../src/gatewayapi/duration.ts';
import { NS, backend, exact, listener, prefix, referenceGrant, route, routeAccepted, routeResolved, rule, run, service, simpleWorld } from './fixtures/builders.ts';

function routesOf(rules: HTTPRouteRule[], extra: Parameters<typeof simpleWorld>[2] = {}) {
  const r = run(simpleWorld([listener('http')], [route('r', { rules })], extra));
  const routes: IRRoute[] = r.ir.sockets.flatMap((s) => s.vhosts.flatMap((v) => v.routes));
  return { result: r, routes, services: r.ir.services };
}

function actionOf(filters: HTTPRouteFilter[], extra: Partial<HTTPRouteRule> = {}): IRAction {
  const { result, routes } = routesOf([{ ...rule({ filters }), ...extra }]);
  assert.equal(routeAccepted(result, 'r'), 'True/Accepted');
  assert.equal(routes.length, 1);
  return routes[0].action;
}

describe('durations', () => {
  const cases: [string, number | null][] = [
    ['0s', 0],
    ['500ms', 500],
    ['1h30m', 5_400_000],
    ['1h2m3s4ms', 3_723_004],
    ['99999ms', 99_999],
    ['1.5s', null],
    ['-1s', null],
    ['1d', null],
    ['1s1s1s1s1s', null],
    ['', null],
    ['100000s', null],
  ];
  for (const [text, ms] of cases) test(`${JSON.stringify(text)} -> ${ms}`, () => assert.equal(parseDuration(text), ms));
});

describe('filters in the IR', () => {
  test('the rule lists its filter types in order, for metrics', () => {
    const a = actionOf([
      { type: 'ResponseHeaderModifier', responseHeaderModifier: { add: [{ name: 'x-a', value: '1' }] } },
      { type: 'RequestHeaderModifier', requestHeaderModifier: { remove: ['x-b'] } },
    ]);
    assert.deepEqual(a.filters, ['ResponseHeaderModifier', 'RequestHeaderModifier']);
    assert.deepEqual(a.responseHeaders, { set: [], add: [{ name: 'x-a', value: '1' }], remove: [] });
    assert.deepEqual(a.requestHeaders, { set: [], add: [], remove: ['x-b'] });
  });

  test('URLRewrite ReplacePrefixMatch carries the prefix of each match', () => {
    const { routes } = routesOf([
      rule({ matches: [prefix('/a/'), prefix('/bb')], filters: [{ type: 'URLRewrite', urlRewrite: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/x' } } }] }),
    ]);
    const byPrefix = Object.fromEntries(routes.map((r) => [r.match.path.value, r.action.rewrite?.path]));
    assert.deepEqual(byPrefix, {
      '/a': { type: 'ReplacePrefixMatch', prefix: '/a', value: '/x' },
      '/bb': { type: 'ReplacePrefixMatch', prefix: '/bb', value: '/x' },
    });
  });

  test('URLRewrite hostname and ReplaceFullPath', () => {
    const a = actionOf([{ type: 'URLRewrite', urlRewrite: { hostname: 'internal.example.com', path: { type: 'ReplaceFullPath', replaceFullPath: '/v2/%7Eitem' } } }]);
    assert.deepEqual(a.rewrite, { hostname: 'internal.example.com', path: { type: 'ReplaceFullPath', value: '/v2/%7Eitem' } });
  });

  test('URLRewrite ReplaceFullPath is fine with an Exact match', () => {
    const { result } = routesOf([rule({ matches: [exact('/a')], filters: [{ type: 'URLRewrite', urlRewrite: { path: { type: 'ReplaceFullPath', replaceFullPath: '/b' } } }] })]);
    assert.equal(routeAccepted(result, 'r'), 'True/Accepted');
  });

  test('CORS origins are lowercased and deduplicated; maxAge stays absent unless given', () => {
    const a = actionOf([{ type: 'CORS', cors: { allowOrigins: ['https://A.example.com', 'https://a.example.com', 'http://*.b.example:8080'], allowMethods: ['GET', 'GET', 'PUT'], allowCredentials: true } }]);
    assert.deepEqual(a.cors, {
      allowOrigins: ['https://a.example.com', 'http://*.b.example:8080'],
      allowMethods: ['GET', 'PUT'],
      allowHeaders: [],
      exposeHeaders: [],
      allowCredentials: true,
    });
  });

  test('timeouts are in milliseconds; 0s stays 0 (disabled)', () => {
    assert.deepEqual(actionOf([], { timeouts: { request: '10s', backendRequest: '0s' } }).timeouts, { request: 10_000, backendRequest: 0 });
    assert.deepEqual(actionOf([], { timeouts: { backendRequest: '1m' } }).timeouts, { backendRequest: 60_000 });
    assert.equal(actionOf([], { timeouts: {} }).timeouts, undefined);
  });

  test('retry: attempts default to 1, codes deduplicated, attempts 0 kept', () => {
    assert.deepEqual(actionOf([], { retry: { codes: [503, 503, 500] } }).retry, { attempts: 1, codes: [503, 500] });
    assert.deepEqual(actionOf([], { retry: { attempts: 0, codes: [500] } }).retry, { attempts: 0, codes: [500] });
    assert.deepEqual(actionOf([], { retry: { attempts: 3, backoff: '250ms' } }).retry, { attempts: 3, codes: [], backoffMs: 250 });
  });
});

describe('RequestMirror', () => {
  const mirror = (ref: object, extra: object = {}): HTTPRouteFilter => ({ type: 'RequestMirror', requestMirror: { backendRef: ref as never, ...extra } });

  test('mirrors resolve to service ids; percent and fraction become a percentage', () => {
    const { routes, services } = routesOf([
      rule({ filters: [mirror({ name: 'svc2', port: 8080 }), mirror({ name: 'svc3', port: 8080 }, { fraction: { numerator: 1, denominator: 8 } }), mirror({ name: 'svc2', port: 8080 }, { percent: 20 })] }),
    ]);
    const names = (ids: number[]) => ids.map((i) => services[i].name);
    const m = routes[0].action.mirrors ?? [];
    assert.deepEqual(names(m.map((x) => x.service)), ['svc2', 'svc3', 'svc2']);
    assert.deepEqual(m.map((x) => x.percent), [100, 12.5, 20]);
    assert.deepEqual(routes[0].action.filters, ['RequestMirror', 'RequestMirror', 'RequestMirror']);
  });

  test('percent 0 mirrors nothing', () => {
    assert.equal(actionOf([mirror({ name: 'svc2', port: 8080 }, { percent: 0 })]).mirrors, undefined);
  });

  test('a mirror to a missing Service: ResolvedRefs=False/BackendNotFound, the route still serves without it', () => {
    const { result, routes } = routesOf([rule({ filters: [mirror({ name: 'nope', port: 8080 })] })]);
    assert.equal(routeAccepted(result, 'r'), 'True/Accepted');
    assert.equal(routeResolved(result, 'r'), 'False/BackendNotFound');
    assert.equal(routes[0].action.mirrors, undefined);
    assert.equal(routes[0].action.backends.length, 1);
  });

  test('a mirror to another namespace needs a ReferenceGrant', () => {
    const other = service('shadow', [8080], 'other');
    const ref = { name: 'shadow', namespace: 'other', port: 8080 };
    const denied = routesOf([rule({ filters: [mirror(ref)] })], { services: [service('svc'), other] });
    assert.equal(routeResolved(denied.result, 'r'), 'False/RefNotPermitted');
    assert.equal(denied.routes[0].action.mirrors, undefined);
    const granted = routesOf([rule({ filters: [mirror(ref)] })], {
      services: [service('svc'), other],
      referenceGrants: [referenceGrant('g', 'other', [{ namespace: NS }], [{ name: 'shadow' }])],
    });
    assert.equal(routeResolved(granted.result, 'r'), 'True/ResolvedRefs');
    assert.equal(granted.services[granted.routes[0].action.mirrors?.[0].service ?? -1]?.name, 'shadow');
  });
});

describe('backendRef-level filters', () => {
  test('each backendRef keeps its own header modifiers, aligned with weights', () => {
    const { routes } = routesOf([
      rule({
        backendRefs: [
          backend('svc', 8080, { weight: 0, filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'x-b', value: 'zero' }] } }] }),
          backend('svc2', 8080, { filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'x-b', value: 'two' }] } }] }),
          backend('svc3', 8080, { filters: [{ type: 'ResponseHeaderModifier', responseHeaderModifier: { remove: ['server'] } }] }),
        ],
      }),
    ]);
    const b = routes[0].action.backends;
    assert.equal(b.length, 2, 'the weight-0 backendRef is dropped with its filters');
    assert.deepEqual(b[0].requestHeaders?.set, [{ name: 'x-b', value: 'two' }]);
    assert.deepEqual(b[1].responseHeaders?.remove, ['server']);
    assert.equal(routes[0].action.filters, undefined, 'no rule-level filters');
  });
});

describe('backend protocols', () => {
  test('appProtocol kubernetes.io/h2c is refused with UnsupportedProtocol; kubernetes.io/ws is served', () => {
    const svc = service('multi', [{ port: 8080 }, { port: 8081, appProtocol: 'kubernetes.io/h2c' }, { port: 8082, appProtocol: 'kubernetes.io/ws' }]);
    const h2c = routesOf([rule({ backendRefs: [backend('multi', 8081)] })], { services: [svc] });
    assert.equal(routeResolved(h2c.result, 'r'), 'False/UnsupportedProtocol');
    assert.deepEqual(h2c.routes[0].action.backends, [{ weight: 1, service: null }]);
    const ws = routesOf([rule({ backendRefs: [backend('multi', 8082)] })], { services: [svc] });
    assert.equal(routeResolved(ws.result, 'r'), 'True/ResolvedRefs');
  });
});
