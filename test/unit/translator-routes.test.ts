// HTTPRoute attachment and route conditions: parentRef selection (sectionName, port),
// allowedRoutes (namespaces Same/All/Selector, kinds), hostname intersection at attachment,
// every Accepted reason, attachedRoutes counting, and rejection of values that cannot be served.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import type { HTTPRoute, HTTPRouteFilter, HTTPRouteMatch, Listener, ParentReference } from '../../src/gatewayapi/types.ts';
import {
  GROUP,
  NS,
  allRouteIds,
  attachedRoutes,
  backend,
  exact,
  fromAll,
  fromSame,
  fromSelector,
  gateway,
  listener,
  namespace,
  parentRef,
  prefix,
  regex,
  route,
  routeAccepted,
  routeParent,
  routeParents,
  routeResolved,
  rule,
  run,
  service,
  simpleWorld,
  world,
} from './fixtures/builders.ts';

describe('parentRef selection', () => {
  const listeners = [listener('http'), listener('alt', { port: 8080 }), listener('named', { port: 8080, hostname: 'foo.example.com' })];
  const cases: { name: string; ref: ParentReference; accepted: string; attached: Record<string, number> }[] = [
    { name: 'whole Gateway', ref: parentRef('gw'), accepted: 'True/Accepted', attached: { http: 1, alt: 1, named: 1 } },
    { name: 'sectionName', ref: parentRef('gw', { sectionName: 'alt' }), accepted: 'True/Accepted', attached: { http: 0, alt: 1, named: 0 } },
    { name: 'port 8080 (two listeners)', ref: parentRef('gw', { port: 8080 }), accepted: 'True/Accepted', attached: { http: 0, alt: 1, named: 1 } },
    { name: 'sectionName and matching port', ref: parentRef('gw', { sectionName: 'http', port: 80 }), accepted: 'True/Accepted', attached: { http: 1, alt: 0, named: 0 } },
    { name: 'unknown sectionName', ref: parentRef('gw', { sectionName: 'http1' }), accepted: 'False/NoMatchingParent', attached: { http: 0, alt: 0, named: 0 } },
    { name: 'port no listener uses', ref: parentRef('gw', { port: 81 }), accepted: 'False/NoMatchingParent', attached: { http: 0, alt: 0, named: 0 } },
    { name: 'sectionName with the wrong port', ref: parentRef('gw', { sectionName: 'http', port: 81 }), accepted: 'False/NoMatchingParent', attached: { http: 0, alt: 0, named: 0 } },
    { name: 'explicit group, kind and namespace', ref: parentRef('gw', { group: GROUP, kind: 'Gateway', namespace: NS }), accepted: 'True/Accepted', attached: { http: 1, alt: 1, named: 1 } },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const r = run(simpleWorld(listeners, [route('r', { parentRefs: [c.ref] })]));
      assert.equal(routeAccepted(r, 'r'), c.accepted);
      assert.equal(routeResolved(r, 'r'), 'True/ResolvedRefs', 'ResolvedRefs is independent of attachment');
      assert.deepEqual(attachedRoutes(r), c.attached);
    });
  }

  test('the parent status echoes the parentRef with defaults filled in', () => {
    const r = run(simpleWorld(listeners, [route('r', { parentRefs: [parentRef('gw', { sectionName: 'alt', port: 8080 })] })]));
    assert.deepEqual(routeParent(r, 'r').parentRef, { group: GROUP, kind: 'Gateway', namespace: NS, name: 'gw', sectionName: 'alt', port: 8080 });
  });

  test('parentRefs to Gateways that are not ours (missing, other kind) get no status entry', () => {
    const r = run(
      simpleWorld(
        [listener('http')],
        [
          route('mixed', { parentRefs: [parentRef('gw'), parentRef('nope'), parentRef('svc', { group: '', kind: 'Service' })] }),
          route('foreign', { parentRefs: [parentRef('nope')] }),
        ],
      ),
    );
    assert.deepEqual(routeParents(r, 'mixed')?.map((p) => p.parentRef.name), ['gw']);
    assert.equal(routeParents(r, 'foreign'), undefined, 'a route with no parent of ours gets no status at all');
  });

  test('two parentRefs to one Gateway by sectionName: one status entry each', () => {
    const r = run(simpleWorld(listeners, [route('r', { parentRefs: [parentRef('gw', { sectionName: 'http' }), parentRef('gw', { sectionName: 'missing' })] })]));
    assert.equal(routeAccepted(r, 'r', `${NS}/gw`, 'http'), 'True/Accepted');
    assert.equal(routeAccepted(r, 'r', `${NS}/gw`, 'missing'), 'False/NoMatchingParent');
    assert.deepEqual(attachedRoutes(r), { http: 1, alt: 0, named: 0 });
  });

  test('a route attached to two Gateways counts on each', () => {
    const r = run(
      world({
        gateways: [gateway('gw', [listener('http')]), gateway('gw2', [listener('http', { hostname: 'x.example.com' })])],
        httpRoutes: [route('r', { parentRefs: [parentRef('gw'), parentRef('gw2')] })],
        services: [service('svc')],
      }),
    );
    assert.equal(routeAccepted(r, 'r', `${NS}/gw`), 'True/Accepted');
    assert.equal(routeAccepted(r, 'r', `${NS}/gw2`), 'True/Accepted');
    assert.deepEqual(attachedRoutes(r, `${NS}/gw`), { http: 1 });
    assert.deepEqual(attachedRoutes(r, `${NS}/gw2`), { http: 1 });
  });
});

describe('allowedRoutes.namespaces', () => {
  const namespaces = [namespace('infra', { team: 'infra' }), namespace('apps', { team: 'apps', env: 'prod' }), namespace('web')];
  // The Gateway lives in "infra"; the route's namespace varies.
  const cases: { name: string; l: Listener; routeNs: string; accepted: string }[] = [
    { name: 'default (Same), same namespace', l: listener('http'), routeNs: 'infra', accepted: 'True/Accepted' },
    { name: 'default (Same), other namespace', l: listener('http'), routeNs: 'apps', accepted: 'False/NotAllowedByListeners' },
    { name: 'Same, other namespace', l: listener('http', { allowedRoutes: fromSame }), routeNs: 'apps', accepted: 'False/NotAllowedByListeners' },
    { name: 'All, other namespace', l: listener('http', { allowedRoutes: fromAll }), routeNs: 'apps', accepted: 'True/Accepted' },
    { name: 'Selector matchLabels hit', l: listener('http', { allowedRoutes: fromSelector({ matchLabels: { team: 'apps' } }) }), routeNs: 'apps', accepted: 'True/Accepted' },
    { name: 'Selector matchLabels miss', l: listener('http', { allowedRoutes: fromSelector({ matchLabels: { team: 'apps' } }) }), routeNs: 'web', accepted: 'False/NotAllowedByListeners' },
    {
      name: 'Selector on the synthesized kubernetes.io/metadata.name label',
      l: listener('http', { allowedRoutes: fromSelector({ matchLabels: { 'kubernetes.io/metadata.name': 'web' } }) }),
      routeNs: 'web',
      accepted: 'True/Accepted',
    },
    {
      name: 'Selector on kubernetes.io/metadata.name for a namespace with no Namespace object',
      l: listener('http', { allowedRoutes: fromSelector({ matchLabels: { 'kubernetes.io/metadata.name': 'ghost' } }) }),
      routeNs: 'ghost',
      accepted: 'True/Accepted',
    },
    {
      name: 'Selector on kubernetes.io/metadata.name of another namespace',
      l: listener('http', { allowedRoutes: fromSelector({ matchLabels: { 'kubernetes.io/metadata.name': 'infra' } }) }),
      routeNs: 'web',
      accepted: 'False/NotAllowedByListeners',
    },
    { name: 'Selector matchExpressions In', l: listener('http', { allowedRoutes: fromSelector({ matchExpressions: [{ key: 'team', operator: 'In', values: ['apps', 'x'] }] }) }), routeNs: 'apps', accepted: 'True/Accepted' },
    { name: 'Selector matchExpressions NotIn', l: listener('http', { allowedRoutes: fromSelector({ matchExpressions: [{ key: 'team', operator: 'NotIn', values: ['apps'] }] }) }), routeNs: 'apps', accepted: 'False/NotAllowedByListeners' },
    { name: 'Selector matchExpressions Exists', l: listener('http', { allowedRoutes: fromSelector({ matchExpressions: [{ key: 'env', operator: 'Exists' }] }) }), routeNs: 'apps', accepted: 'True/Accepted' },
    { name: 'Selector matchExpressions DoesNotExist', l: listener('http', { allowedRoutes: fromSelector({ matchExpressions: [{ key: 'env', operator: 'DoesNotExist' }] }) }), routeNs: 'apps', accepted: 'False/NotAllowedByListeners' },
    {
      name: 'Selector matchLabels and matchExpressions are ANDed',
      l: listener('http', { allowedRoutes: fromSelector({ matchLabels: { team: 'apps' }, matchExpressions: [{ key: 'env', operator: 'In', values: ['dev'] }] }) }),
      routeNs: 'apps',
      accepted: 'False/NotAllowedByListeners',
    },
    { name: 'Selector with an empty selector matches every namespace', l: listener('http', { allowedRoutes: fromSelector({}) }), routeNs: 'web', accepted: 'True/Accepted' },
    { name: 'Selector allows the Gateway namespace only by label', l: listener('http', { allowedRoutes: fromSelector({ matchLabels: { team: 'apps' } }) }), routeNs: 'infra', accepted: 'False/NotAllowedByListeners' },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const r = run(
        world({
          namespaces,
          gateways: [gateway('gw', [c.l], { namespace: 'infra' })],
          httpRoutes: [route('r', { namespace: c.routeNs, parentRefs: [parentRef('gw', { namespace: 'infra' })], rules: [rule({ backendRefs: [] })] })],
        }),
      );
      assert.equal(routeAccepted(r, `${c.routeNs}/r`, 'infra/gw'), c.accepted);
      assert.deepEqual(attachedRoutes(r, 'infra/gw'), { http: c.accepted.startsWith('True') ? 1 : 0 });
    });
  }

  test('attachment succeeds when one of two listeners allows the route (spec: 1 of 2 listeners suffices)', () => {
    const r = run(
      world({
        gateways: [gateway('gw', [listener('same', { allowedRoutes: fromSame }), listener('all', { port: 8080, allowedRoutes: fromAll })], { namespace: 'infra' })],
        httpRoutes: [route('r', { namespace: 'apps', parentRefs: [parentRef('gw', { namespace: 'infra' })], rules: [rule({ backendRefs: [] })] })],
      }),
    );
    assert.equal(routeAccepted(r, 'apps/r', 'infra/gw'), 'True/Accepted');
    assert.deepEqual(attachedRoutes(r, 'infra/gw'), { same: 0, all: 1 });
  });

  test('a sectionName naming a listener that does not allow the route: NotAllowedByListeners', () => {
    const r = run(
      world({
        gateways: [gateway('gw', [listener('same', { allowedRoutes: fromSame }), listener('all', { port: 8080, allowedRoutes: fromAll })], { namespace: 'infra' })],
        httpRoutes: [route('r', { namespace: 'apps', parentRefs: [parentRef('gw', { namespace: 'infra', sectionName: 'same' })], rules: [rule({ backendRefs: [] })] })],
      }),
    );
    assert.equal(routeAccepted(r, 'apps/r', 'infra/gw'), 'False/NotAllowedByListeners');
  });

  test('a route to an unsupported-protocol listener is NotAllowedByListeners (HTTPRouteDisallowedKind)', () => {
    const r = run(
      simpleWorld([listener('tls', { port: 443, protocol: 'TLS', tls: { mode: 'Passthrough' }, allowedRoutes: { namespaces: { from: 'Same' }, kinds: [{ kind: 'TLSRoute' }] } })], [route('r')]),
    );
    assert.equal(routeAccepted(r, 'r'), 'False/NotAllowedByListeners');
    assert.equal(routeResolved(r, 'r'), 'True/ResolvedRefs');
    assert.deepEqual(attachedRoutes(r), { tls: 0 });
  });
});

describe('hostnames at attachment', () => {
  test('no intersecting hostname: NoMatchingListenerHostname, not counted (GatewayWithAttachedRoutes)', () => {
    const r = run(
      simpleWorld(
        [listener('http', { hostname: 'foo.example.com' })],
        [route('r1'), route('r2'), route('not-accepted', { hostnames: ['not-accepted.test.com'] })],
      ),
    );
    assert.equal(routeAccepted(r, 'not-accepted'), 'False/NoMatchingListenerHostname');
    assert.equal(routeAccepted(r, 'r1'), 'True/Accepted');
    assert.deepEqual(attachedRoutes(r), { http: 2 });
    assert.ok(!allRouteIds(r.ir).some((id) => id.startsWith(`${NS}/not-accepted/`)));
  });

  test('a route that intersects only one of two listeners is accepted and counted there', () => {
    const r = run(
      simpleWorld([listener('foo', { hostname: 'foo.example.com' }), listener('bar', { hostname: 'bar.example.com' })], [route('r', { hostnames: ['foo.example.com'] })]),
    );
    assert.equal(routeAccepted(r, 'r'), 'True/Accepted');
    assert.equal(attachedRoutes(r).foo, 1);
  });

  test('a sectionName listener whose hostname does not intersect: NoMatchingListenerHostname even if another listener would', () => {
    const r = run(
      simpleWorld(
        [listener('foo', { hostname: 'foo.example.com' }), listener('bar', { hostname: 'bar.example.com' })],
        [route('r', { hostnames: ['foo.example.com'], parentRefs: [parentRef('gw', { sectionName: 'bar' })] })],
      ),
    );
    assert.equal(routeAccepted(r, 'r'), 'False/NoMatchingListenerHostname');
    assert.deepEqual(attachedRoutes(r), { foo: 0, bar: 0 });
  });

  test('allowedRoutes is checked before hostnames: a disallowed namespace reports NotAllowedByListeners', () => {
    const r = run(
      world({
        gateways: [gateway('gw', [listener('http', { hostname: 'foo.example.com' })], { namespace: 'infra' })],
        httpRoutes: [route('r', { namespace: 'apps', hostnames: ['bar.example.com'], parentRefs: [parentRef('gw', { namespace: 'infra' })] })],
      }),
    );
    assert.equal(routeAccepted(r, 'apps/r', 'infra/gw'), 'False/NotAllowedByListeners');
  });
});

describe('attachedRoutes', () => {
  test('counts accepted routes per listener; a route attached to two listeners counts on each', () => {
    const r = run(
      simpleWorld(
        [listener('a', { hostname: 'a.example.com' }), listener('b', { hostname: 'b.example.com' }), listener('c', { port: 8080 })],
        [
          route('both', { hostnames: ['a.example.com', 'b.example.com'] }),
          route('only-a', { hostnames: ['a.example.com'], parentRefs: [parentRef('gw', { sectionName: 'a' })] }),
          route('port', { parentRefs: [parentRef('gw', { port: 8080 })] }),
          route('wrong-host', { hostnames: ['z.example.org'], parentRefs: [parentRef('gw', { sectionName: 'a' })] }),
          route('bad-section', { parentRefs: [parentRef('gw', { sectionName: 'zzz' })] }),
          route('bad-value', { rules: [rule({ matches: [regex('([a-z')] })] }),
        ],
      ),
    );
    assert.deepEqual(attachedRoutes(r), { a: 2, b: 1, c: 2 });
  });

  test('a route whose backends do not resolve is still attached and counted (ResolvedRefs is separate)', () => {
    const r = run(simpleWorld([listener('http')], [route('r', { rules: [rule({ backendRefs: [backend('does-not-exist')] })] })]));
    assert.equal(routeAccepted(r, 'r'), 'True/Accepted');
    assert.equal(routeResolved(r, 'r'), 'False/BackendNotFound');
    assert.deepEqual(attachedRoutes(r), { http: 1 });
  });

  test('GatewayWithAttachedRoutesWithPort8080: a sectionName route counts only on its listener', () => {
    const r = run(
      simpleWorld(
        [listener('http-unattached', { port: 8080, allowedRoutes: { kinds: [{ kind: 'HTTPRoute' }], namespaces: { from: 'All' } } }), listener('http', { allowedRoutes: { kinds: [{ kind: 'HTTPRoute' }], namespaces: { from: 'All' } } })],
        [route('r', { parentRefs: [parentRef('gw', { kind: 'Gateway', sectionName: 'http' })] })],
      ),
    );
    assert.deepEqual(attachedRoutes(r), { 'http-unattached': 0, http: 1 });
  });
});

describe('UnsupportedValue: values that cannot be served are rejected, other routes still served', () => {
  const match = (m: HTTPRouteMatch) => [rule({ matches: [m] })];
  const filter = (...f: HTTPRouteFilter[]) => [rule({ filters: f, backendRefs: [backend('svc')] })];
  const cases: { name: string; spec: Partial<HTTPRoute['spec']> }[] = [
    { name: 'path regex that does not compile', spec: { rules: match(regex('([a-z')) } },
    { name: 'path regex with a backreference', spec: { rules: match(regex('/(a)\\1')) } },
    { name: 'path regex with lookahead', spec: { rules: match(regex('/(?=x)')) } },
    { name: 'header regex that does not compile', spec: { rules: match(prefix('/', { headers: [{ type: 'RegularExpression', name: 'x-a', value: '*a' }] })) } },
    { name: 'query regex that does not compile', spec: { rules: match(prefix('/', { queryParams: [{ type: 'RegularExpression', name: 'q', value: '(' }] })) } },
    { name: 'unknown path match type', spec: { rules: match({ path: { type: 'Glob', value: '/*' } }) } },
    { name: 'unknown header match type', spec: { rules: match(prefix('/', { headers: [{ type: 'Prefix', name: 'x-a', value: 'a' }] })) } },
    { name: 'unknown query match type', spec: { rules: match(prefix('/', { queryParams: [{ type: 'Prefix', name: 'q', value: 'a' }] })) } },
    { name: 'unknown method', spec: { rules: match(prefix('/', { method: 'FETCH' })) } },
    { name: 'lowercase method', spec: { rules: match(prefix('/', { method: 'get' })) } },
    { name: 'header name with a dot (an HTTP token VCL cannot name)', spec: { rules: match(prefix('/', { headers: [{ name: 'x.version', value: 'a' }] })) } },
    { name: 'header name with a colon', spec: { rules: match(prefix('/', { headers: [{ name: ':authority', value: 'a' }] })) } },
    { name: 'header name with a space', spec: { rules: match(prefix('/', { headers: [{ name: 'x version', value: 'a' }] })) } },
    { name: 'header name with a quote', spec: { rules: match(prefix('/', { headers: [{ name: 'x"y', value: 'a' }] })) } },
    { name: 'header value with a newline', spec: { rules: match(prefix('/', { headers: [{ name: 'x-a', value: 'a\nX-Injected: 1' }] })) } },
    { name: 'header value with NUL', spec: { rules: match(prefix('/', { headers: [{ name: 'x-a', value: 'a\u0000' }] })) } },
    { name: 'header value with DEL', spec: { rules: match(prefix('/', { headers: [{ name: 'x-a', value: 'a\u007f' }] })) } },
    { name: 'query value with a carriage return', spec: { rules: match(prefix('/', { queryParams: [{ name: 'q', value: 'a\rb' }] })) } },
    { name: 'query name that is not a token', spec: { rules: match(prefix('/', { queryParams: [{ name: 'a b', value: 'x' }] })) } },
    { name: 'path with a control character', spec: { rules: match(prefix('/a\u0001b')) } },
    { name: 'exact path not starting with /', spec: { rules: match(exact('abc')) } },
    { name: 'path with a query string', spec: { rules: match(exact('/a?b=c')) } },
    { name: 'URLRewrite with neither hostname nor path', spec: { rules: filter({ type: 'URLRewrite', urlRewrite: {} }) } },
    { name: 'URLRewrite ReplacePrefixMatch on an Exact match', spec: { rules: [rule({ matches: [exact('/a')], filters: [{ type: 'URLRewrite', urlRewrite: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/b' } } }] })] } },
    { name: 'URLRewrite with RequestRedirect in the same rule', spec: { rules: filter({ type: 'URLRewrite', urlRewrite: { hostname: 'a.example.com' } }, { type: 'RequestRedirect', requestRedirect: { statusCode: 301 } }) } },
    { name: 'URLRewrite hostname with a wildcard', spec: { rules: filter({ type: 'URLRewrite', urlRewrite: { hostname: '*.example.com' } }) } },
    { name: 'URLRewrite path with a space', spec: { rules: filter({ type: 'URLRewrite', urlRewrite: { path: { type: 'ReplaceFullPath', replaceFullPath: '/a b' } } }) } },
    { name: 'URLRewrite path with non-ASCII', spec: { rules: filter({ type: 'URLRewrite', urlRewrite: { path: { type: 'ReplaceFullPath', replaceFullPath: '/caf\u00e9' } } }) } },
    { name: 'URLRewrite path with CR LF', spec: { rules: filter({ type: 'URLRewrite', urlRewrite: { path: { type: 'ReplaceFullPath', replaceFullPath: '/a\r\nX: y' } } }) } },
    { name: 'redirect path with a quote and a brace', spec: { rules: [rule({ filters: [{ type: 'RequestRedirect', requestRedirect: { path: { type: 'ReplaceFullPath', replaceFullPath: '/a"}' } } }], backendRefs: [] })] } },
    { name: 'two URLRewrite filters', spec: { rules: filter({ type: 'URLRewrite', urlRewrite: { hostname: 'a.example.com' } }, { type: 'URLRewrite', urlRewrite: { hostname: 'b.example.com' } }) } },
    { name: 'ResponseHeaderModifier value with CR LF', spec: { rules: filter({ type: 'ResponseHeaderModifier', responseHeaderModifier: { set: [{ name: 'x-a', value: 'b\r\nSet-Cookie: x=1' }] } }) } },
    { name: 'ResponseHeaderModifier with nothing to do', spec: { rules: filter({ type: 'ResponseHeaderModifier', responseHeaderModifier: {} }) } },
    { name: 'RequestHeaderModifier setting a gateway-internal header', spec: { rules: filter({ type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'X-Vgw-Route', value: 'other' }] } }) } },
    { name: 'RequestHeaderModifier setting one header twice', spec: { rules: filter({ type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'x-a', value: '1' }, { name: 'X-A', value: '2' }] } }) } },
    { name: 'RequestMirror with percent and fraction', spec: { rules: filter({ type: 'RequestMirror', requestMirror: { backendRef: { name: 'svc', port: 8080 }, percent: 10, fraction: { numerator: 1 } } }) } },
    { name: 'RequestMirror percent above 100', spec: { rules: filter({ type: 'RequestMirror', requestMirror: { backendRef: { name: 'svc', port: 8080 }, percent: 150 } }) } },
    { name: 'RequestMirror fraction above 1', spec: { rules: filter({ type: 'RequestMirror', requestMirror: { backendRef: { name: 'svc', port: 8080 }, fraction: { numerator: 3, denominator: 2 } } }) } },
    { name: 'RequestMirror without backendRef', spec: { rules: filter({ type: 'RequestMirror', requestMirror: {} }) } },
    { name: 'CORS origin with a path', spec: { rules: filter({ type: 'CORS', cors: { allowOrigins: ['https://a.example.com/x'] } }) } },
    { name: 'CORS origin "*" beside others', spec: { rules: filter({ type: 'CORS', cors: { allowOrigins: ['*', 'https://a.example.com'] } }) } },
    { name: 'CORS method that is not a token', spec: { rules: filter({ type: 'CORS', cors: { allowOrigins: ['*'], allowMethods: ['GET POST'] } }) } },
    { name: 'CORS header name with a newline', spec: { rules: filter({ type: 'CORS', cors: { allowOrigins: ['*'], allowHeaders: ['x-a\nx-b'] } }) } },
    { name: 'CORS negative maxAge', spec: { rules: filter({ type: 'CORS', cors: { allowOrigins: ['*'], maxAge: -1 } }) } },
    { name: 'timeouts.request that is not a duration', spec: { rules: [{ ...rule(), timeouts: { request: '1 s' } }] } },
    { name: 'timeouts.request with a fraction', spec: { rules: [{ ...rule(), timeouts: { request: '1.5s' } }] } },
    { name: 'timeouts.backendRequest longer than request', spec: { rules: [{ ...rule(), timeouts: { request: '1s', backendRequest: '2s' } }] } },
    { name: 'retry attempts above the limit', spec: { rules: [{ ...rule(), retry: { attempts: 100 } }] } },
    { name: 'retry code that is not an error', spec: { rules: [{ ...rule(), retry: { attempts: 2, codes: [200] } }] } },
    { name: 'retry backoff that is not a duration', spec: { rules: [{ ...rule(), retry: { attempts: 2, backoff: 'fast' } }] } },
    { name: 'URLRewrite on a backendRef', spec: { rules: [rule({ backendRefs: [backend('svc', 8080, { filters: [{ type: 'URLRewrite', urlRewrite: { hostname: 'a.example.com' } }] })] })] } },
    { name: 'sessionPersistence', spec: { rules: [{ ...rule(), sessionPersistence: { sessionName: 'x' } } as never] } },
    { name: 'filter ExtensionRef', spec: { rules: filter({ type: 'ExtensionRef', extensionRef: { group: 'example.com', kind: 'Filter', name: 'f' } }) } },
    { name: 'unknown filter type', spec: { rules: filter({ type: 'Bogus' }) } },
    { name: 'RequestHeaderModifier with a header name VCL cannot take', spec: { rules: filter({ type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'x.y', value: 'v' }] } }) } },
    { name: 'RequestHeaderModifier value with a newline', spec: { rules: filter({ type: 'RequestHeaderModifier', requestHeaderModifier: { add: [{ name: 'x-y', value: 'v\r\nx: 1' }] } }) } },
    { name: 'RequestHeaderModifier remove with a bad name', spec: { rules: filter({ type: 'RequestHeaderModifier', requestHeaderModifier: { remove: ['bad name'] } }) } },
    { name: 'redirect status code 305', spec: { rules: [rule({ filters: [{ type: 'RequestRedirect', requestRedirect: { statusCode: 305 } }], backendRefs: [] })] } },
    { name: 'redirect scheme ftp', spec: { rules: [rule({ filters: [{ type: 'RequestRedirect', requestRedirect: { scheme: 'ftp' } }], backendRefs: [] })] } },
    { name: 'redirect path modifier of unknown type', spec: { rules: [rule({ filters: [{ type: 'RequestRedirect', requestRedirect: { path: { type: 'ReplaceQuery' } } }], backendRefs: [] })] } },
    { name: 'route hostname with uppercase letters', spec: { hostnames: ['Foo.Example.com'] } },
    { name: 'route hostname that is an IP address', spec: { hostnames: ['10.0.0.1'] } },
    { name: 'route hostname with a wildcard not in front', spec: { hostnames: ['foo.*.example.com'] } },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const bad = route('bad', { creationTimestamp: '2020-01-01T00:00:00Z' });
      Object.assign(bad.spec, c.spec);
      const good = route('good', { rules: [rule({ matches: [prefix('/good')] })] });
      const r = run(simpleWorld([listener('http')], [bad, good]));
      assert.equal(routeAccepted(r, 'bad'), 'False/UnsupportedValue');
      assert.ok((routeParent(r, 'bad').conditions.find((x) => x.type === 'Accepted')?.message ?? '').length > 0, 'the message explains what is wrong');
      assert.equal(routeAccepted(r, 'good'), 'True/Accepted');
      assert.deepEqual(attachedRoutes(r), { http: 1 }, 'the rejected route is not counted');
      assert.deepEqual(allRouteIds(r.ir), [`${NS}/good/0/0`], 'only the valid route reaches the IR');
      assert.ok(r.problems.some((p) => p.object === `${NS}/bad` && p.message.includes('UnsupportedValue')), 'the rejection is listed in problems');
    });
  }

  test('a route with a valid regex path, header and query match is accepted', () => {
    const r = run(
      simpleWorld(
        [listener('http')],
        [route('ok', { rules: [rule({ matches: [regex('^/v[0-9]+/.*$', { headers: [{ type: 'RegularExpression', name: 'x-a', value: '^a+$' }], queryParams: [{ type: 'RegularExpression', name: 'q', value: '[0-9]{2}' }] })] })] })],
      ),
    );
    assert.equal(routeAccepted(r, 'ok'), 'True/Accepted');
  });

  test('header values with tabs, spaces, quotes and braces are fine', () => {
    const r = run(simpleWorld([listener('http')], [route('ok', { rules: [rule({ matches: [prefix('/', { headers: [{ name: 'x-a', value: 'a\tb c"}{' }] })] })] })]));
    assert.equal(routeAccepted(r, 'ok'), 'True/Accepted');
  });
});

describe('defaults the API server would apply', () => {
  test('no rules: one rule, prefix "/", no backends (500)', () => {
    const r0 = route('r');
    delete r0.spec.rules;
    const r = run(simpleWorld([listener('http')], [r0]));
    assert.equal(routeAccepted(r, 'r'), 'True/Accepted');
    const routes = r.ir.sockets[0].vhosts[0].routes;
    assert.deepEqual(routes.map((x) => [x.id, x.match.path]), [[`${NS}/r/0/0`, { type: 'PathPrefix', value: '/' }]]);
    assert.deepEqual(routes[0].action.backends, []);
  });

  test('a match without a path is prefix "/"; header and query type default to Exact', () => {
    const r = run(simpleWorld([listener('http')], [route('r', { rules: [rule({ matches: [{ headers: [{ name: 'x-a', value: '1' }], queryParams: [{ name: 'q', value: '2' }] }] })] })]));
    const m = r.ir.sockets[0].vhosts[0].routes[0].match;
    assert.deepEqual(m.path, { type: 'PathPrefix', value: '/' });
    assert.deepEqual(m.headers, [{ name: 'x-a', type: 'Exact', value: '1' }]);
    assert.deepEqual(m.queryParams, [{ name: 'q', type: 'Exact', value: '2' }]);
  });

  test('a route without parentRefs is nobody\'s', () => {
    const r0 = route('r');
    delete r0.spec.parentRefs;
    const r = run(simpleWorld([listener('http')], [r0]));
    assert.equal(routeParents(r, 'r'), undefined);
    assert.deepEqual(allRouteIds(r.ir), []);
  });

  test('a parentRef namespace defaults to the route namespace', () => {
    const r = run(
      world({
        gateways: [gateway('gw', [listener('http', { allowedRoutes: fromAll })], { namespace: 'infra' })],
        httpRoutes: [route('r', { namespace: 'apps', parentRefs: [parentRef('gw')] })],
      }),
    );
    assert.equal(routeParents(r, 'apps/r'), undefined, 'apps/gw does not exist, so the route is not ours');
  });
});
