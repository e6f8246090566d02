// GatewayClass, Gateway and listener status as the Gateway API spec (standard channel v1.x)
// defines them: which objects are ours, listener protocols, supportedKinds, conflicts,
// addresses, and observedGeneration on every condition.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { CONTROLLER_NAME } from '../../src/gatewayapi/features.ts';
import { ofKind } from '../../src/gatewayapi/status.ts';
import type { Listener } from '../../src/gatewayapi/types.ts';
import {
  CLASS,
  DEFAULT_ADDRESS,
  GROUP,
  NOW,
  NS,
  attachedRoutes,
  classStatus,
  cond,
  gateway,
  gatewayClass,
  gatewayStatus,
  listener,
  listenerStatus,
  parentRef,
  route,
  routeAccepted,
  run,
  service,
  simpleWorld,
  summary,
  vhostOf,
  world,
} from './fixtures/builders.ts';

const HTTP_ROUTE_KIND = { group: GROUP, kind: 'HTTPRoute' };

describe('GatewayClass', () => {
  test('a class with our controllerName is Accepted, with observedGeneration and supportedFeatures', () => {
    const r = run(world({ gatewayClasses: [gatewayClass(CLASS, { generation: 4 })] }));
    const s = classStatus(r);
    assert.ok(s, 'our GatewayClass gets a status');
    const accepted = cond(s.status.conditions, 'Accepted');
    assert.equal(accepted.status, 'True');
    assert.equal(accepted.reason, 'Accepted');
    assert.equal(accepted.observedGeneration, 4);
    assert.equal(accepted.lastTransitionTime, NOW);
    assert.equal(s.metadata.generation, 4);
    const features = s.status.supportedFeatures.map((f) => f.name);
    for (const f of ['Gateway', 'HTTPRoute', 'ReferenceGrant']) assert.ok(features.includes(f), `core feature ${f} is reported`);
    assert.deepEqual(features, [...features].sort(), 'supportedFeatures are sorted');
  });

  test('a class of another controller gets no status, and its Gateways are left alone', () => {
    const r = run(
      world({
        gatewayClasses: [gatewayClass('other', { controllerName: 'example.com/other' })],
        gateways: [gateway('gw', [listener('http')], { className: 'other' })],
        httpRoutes: [route('r')],
      }),
    );
    assert.equal(r.statuses.length, 0);
    assert.deepEqual(r.ir.sockets, []);
  });

  test('a Gateway naming a class that does not exist is not ours', () => {
    const r = run(world({ gateways: [gateway('gw', [listener('http')], { className: 'missing' })] }));
    assert.deepEqual(r.statuses.map((s) => s.kind), ['GatewayClass']);
    assert.deepEqual(r.ir.sockets, []);
  });

  test('a class with parametersRef (unsupported) is Accepted=False with reason InvalidParameters', () => {
    const r = run(world({ gatewayClasses: [gatewayClass(CLASS, { parametersRef: { group: 'example.com', kind: 'Config', name: 'x' } })] }));
    const s = classStatus(r);
    assert.ok(s);
    assert.equal(summary(s.status.conditions, 'Accepted'), 'False/InvalidParameters');
  });
});

describe('Gateway and listener conditions', () => {
  test('a plain HTTP Gateway is Accepted and Programmed, its listener fully healthy', () => {
    const r = run(simpleWorld([listener('http')], []));
    const gw = gatewayStatus(r);
    assert.equal(summary(gw.conditions, 'Accepted'), 'True/Accepted');
    assert.equal(summary(gw.conditions, 'Programmed'), 'True/Programmed');
    assert.deepEqual(gw.addresses, [{ type: 'IPAddress', value: DEFAULT_ADDRESS }]);
    const l = listenerStatus(r, 'http');
    assert.equal(summary(l.conditions, 'Accepted'), 'True/Accepted');
    assert.equal(summary(l.conditions, 'Programmed'), 'True/Programmed');
    assert.equal(summary(l.conditions, 'ResolvedRefs'), 'True/ResolvedRefs');
    assert.equal(summary(l.conditions, 'Conflicted'), 'False/NoConflicts');
    assert.deepEqual(l.supportedKinds, [HTTP_ROUTE_KIND]);
    assert.equal(l.attachedRoutes, 0);
    assert.equal(r.problems.length, 0);
  });

  // Spec (ProtocolType): an implementation that does not support a protocol MUST set Accepted=False
  // with reason UnsupportedProtocol on the listener. TLS passthrough is not implemented here.
  for (const protocol of ['TLS', 'TCP', 'UDP', 'INVALID', 'example.com/custom']) {
    test(`a listener with protocol ${protocol} is Accepted=False/UnsupportedProtocol and not Programmed`, () => {
      const tls = protocol === 'TLS' ? { mode: 'Terminate' as const, certificateRefs: [{ name: 'cert' }] } : undefined;
      const r = run(simpleWorld([listener('l', { protocol, port: 443, ...(tls ? { tls } : {}) })], [route('r')]));
      const l = listenerStatus(r, 'l');
      assert.equal(summary(l.conditions, 'Accepted'), 'False/UnsupportedProtocol');
      assert.equal(cond(l.conditions, 'Programmed').status, 'False');
      assert.equal(l.attachedRoutes, 0);
      // Conformance GatewayListenerUnsupportedProtocol: only unsupported listeners -> Accepted=False/ListenersNotValid.
      const gw = gatewayStatus(r);
      assert.equal(summary(gw.conditions, 'Accepted'), 'False/ListenersNotValid');
      assert.equal(cond(gw.conditions, 'Programmed').status, 'False');
      assert.deepEqual(r.ir.sockets, [], 'nothing listens for an unsupported listener');
    });
  }

  test('a Gateway with one HTTP and one unsupported listener stays Accepted (ListenersNotValid) and serves HTTP', () => {
    const r = run(simpleWorld([listener('http'), listener('invalid', { port: 1111, protocol: 'INVALID' })], [route('r')]));
    const gw = gatewayStatus(r);
    assert.equal(summary(gw.conditions, 'Accepted'), 'True/ListenersNotValid');
    assert.equal(summary(gw.conditions, 'Programmed'), 'True/Programmed');
    assert.equal(summary(listenerStatus(r, 'http').conditions, 'Accepted'), 'True/Accepted');
    assert.equal(summary(listenerStatus(r, 'invalid').conditions, 'Accepted'), 'False/UnsupportedProtocol');
    assert.deepEqual(r.ir.sockets.map((s) => s.port), [80]);
    assert.deepEqual(attachedRoutes(r), { http: 1, invalid: 0 });
  });

  // Spec (ListenerStatus.supportedKinds): kinds that are not supported MUST NOT appear, and
  // ResolvedRefs MUST be False with InvalidRouteKinds; valid kinds that were given MUST be listed.
  const kindCases: { name: string; kinds: { group?: string; kind: string }[] | undefined; supported: { group: string; kind: string }[]; resolved: string }[] = [
    { name: 'kinds omitted', kinds: undefined, supported: [HTTP_ROUTE_KIND], resolved: 'True/ResolvedRefs' },
    { name: 'kinds empty', kinds: [], supported: [HTTP_ROUTE_KIND], resolved: 'True/ResolvedRefs' },
    { name: 'HTTPRoute with defaulted group', kinds: [{ kind: 'HTTPRoute' }], supported: [HTTP_ROUTE_KIND], resolved: 'True/ResolvedRefs' },
    { name: 'HTTPRoute with explicit group', kinds: [{ group: GROUP, kind: 'HTTPRoute' }], supported: [HTTP_ROUTE_KIND], resolved: 'True/ResolvedRefs' },
    { name: 'only an unknown kind', kinds: [{ kind: 'InvalidRoute' }], supported: [], resolved: 'False/InvalidRouteKinds' },
    { name: 'unknown kind and HTTPRoute', kinds: [{ kind: 'InvalidRoute' }, { kind: 'HTTPRoute' }], supported: [HTTP_ROUTE_KIND], resolved: 'False/InvalidRouteKinds' },
    { name: 'HTTPRoute in a foreign group', kinds: [{ group: 'example.com', kind: 'HTTPRoute' }], supported: [], resolved: 'False/InvalidRouteKinds' },
    { name: 'TLSRoute on an HTTP listener', kinds: [{ kind: 'TLSRoute' }], supported: [], resolved: 'False/InvalidRouteKinds' },
  ];
  for (const c of kindCases) {
    test(`supportedKinds: ${c.name}`, () => {
      const allowedRoutes = c.kinds === undefined ? undefined : { kinds: c.kinds };
      const r = run(simpleWorld([listener('http', allowedRoutes ? { allowedRoutes } : {})], []));
      const l = listenerStatus(r, 'http');
      assert.deepEqual(l.supportedKinds, c.supported);
      assert.equal(summary(l.conditions, 'ResolvedRefs'), c.resolved);
    });
  }

  test('a listener whose only kind is unsupported takes no HTTPRoute (NotAllowedByListeners, 0 attached)', () => {
    const r = run(simpleWorld([listener('http', { allowedRoutes: { kinds: [{ kind: 'InvalidRoute' }] } })], [route('r')]));
    assert.equal(routeAccepted(r, 'r'), 'False/NotAllowedByListeners');
    assert.equal(listenerStatus(r, 'http').attachedRoutes, 0);
  });

  test('a listener with an invalid hostname is not programmed and serves nothing', () => {
    for (const hostname of ['Upper.Example.com', '1.2.3.4', 'bad_label.example.com', '*']) {
      const r = run(simpleWorld([listener('http', { hostname })], [route('r')]));
      const l = listenerStatus(r, 'http');
      assert.equal(cond(l.conditions, 'Programmed').status, 'False', hostname);
      assert.equal(cond(l.conditions, 'Accepted').status, 'False', hostname);
      assert.deepEqual(r.ir.sockets, [], hostname);
    }
  });

  test('spec.infrastructure.parametersRef (unsupported) makes the Gateway Accepted=False/InvalidParameters', () => {
    const r = run(world({ gateways: [gateway('gw', [listener('http')], { infrastructure: { parametersRef: { group: 'x', kind: 'Y', name: 'z' } } })] }));
    assert.equal(summary(gatewayStatus(r).conditions, 'Accepted'), 'False/InvalidParameters');
    assert.deepEqual(r.ir.sockets, []);
  });
});

describe('observedGeneration and timestamps', () => {
  test('every condition carries its own object generation and the translation time', () => {
    const r = run(
      world({
        gatewayClasses: [gatewayClass(CLASS, { generation: 2 })],
        gateways: [gateway('gw', [listener('http'), listener('other', { port: 8080 })], { generation: 7 })],
        httpRoutes: [route('r', { generation: 3 })],
        services: [service('svc')],
      }),
    );
    const gw = gatewayStatus(r);
    for (const c of gw.conditions) {
      assert.equal(c.observedGeneration, 7, `Gateway ${c.type}`);
      assert.equal(c.lastTransitionTime, NOW);
    }
    for (const l of gw.listeners) {
      for (const c of l.conditions) assert.equal(c.observedGeneration, 7, `listener ${l.name} ${c.type}`);
    }
    const routeStatus = r.statuses.find(ofKind('HTTPRoute'));
    assert.ok(routeStatus);
    assert.equal(routeStatus.metadata.generation, 3);
    for (const p of routeStatus.status.parents) {
      for (const c of p.conditions) {
        assert.equal(c.observedGeneration, 3);
        assert.equal(c.lastTransitionTime, NOW);
      }
    }
    const gc = classStatus(r);
    assert.ok(gc);
    for (const c of gc.status.conditions) assert.equal(c.observedGeneration, 2);
  });

  test('a generation bump is reflected in observedGeneration (GatewayObservedGenerationBump)', () => {
    const before = run(simpleWorld([listener('http')], []));
    const bumped = simpleWorld([listener('http'), listener('http-2', { port: 8080 })], []);
    bumped.gateways[0].metadata.generation = 2;
    const after = run(bumped);
    assert.equal(cond(gatewayStatus(before).conditions, 'Accepted').observedGeneration, 1);
    assert.equal(cond(gatewayStatus(after).conditions, 'Accepted').observedGeneration, 2);
    assert.equal(cond(listenerStatus(after, 'http-2').conditions, 'Programmed').observedGeneration, 2);
  });
});

describe('listener conflicts within one Gateway', () => {
  // Spec (GatewaySpec.listeners, "Handling indistinct Listeners"): indistinct listeners are
  // Conflicted; "The implementation MUST NOT pick one conflicting Listener as the winner. ALL
  // indistinct Listeners must not be accepted for processing."
  const pairs: { name: string; a: Listener; b: Listener }[] = [
    { name: 'same port and hostname', a: listener('a', { hostname: 'foo.example.com' }), b: listener('b', { hostname: 'foo.example.com' }) },
    { name: 'same port and no hostname', a: listener('a'), b: listener('b') },
    { name: 'same port and wildcard hostname', a: listener('a', { hostname: '*.example.com' }), b: listener('b', { hostname: '*.example.com' }) },
  ];
  for (const p of pairs) {
    test(`${p.name}: both listeners are Conflicted=True/HostnameConflict and neither is programmed`, () => {
      const r = run(simpleWorld([p.a, p.b, listener('distinct', { port: 8080 })], []));
      for (const name of ['a', 'b']) {
        const l = listenerStatus(r, name);
        assert.equal(summary(l.conditions, 'Conflicted'), 'True/HostnameConflict', `listener ${name}`);
        assert.equal(cond(l.conditions, 'Programmed').status, 'False', `listener ${name}`);
      }
      assert.deepEqual(r.ir.sockets.map((s) => s.port), [8080], 'no socket serves the conflicted port');
    });
  }

  test('a conflicted listener is Accepted=False with a reason other than "Accepted"', () => {
    const r = run(simpleWorld([listener('a'), listener('b'), listener('distinct', { port: 8080 })], []));
    const conflicted = ['a', 'b'].map((n) => listenerStatus(r, n)).filter((l) => cond(l.conditions, 'Conflicted').status === 'True');
    assert.ok(conflicted.length > 0);
    for (const l of conflicted) {
      const accepted = cond(l.conditions, 'Accepted');
      assert.equal(accepted.status, 'False', `listener ${l.name}`);
      // Spec: reason "Accepted" is defined for Accepted=True only.
      assert.notEqual(accepted.reason, 'Accepted', `listener ${l.name}: Accepted=False must not carry reason Accepted`);
    }
  });

  test('a Gateway with conflicted listeners reports ListenersNotValid and stays Accepted while a distinct listener remains', () => {
    const r = run(simpleWorld([listener('a'), listener('b'), listener('distinct', { port: 8080 })], []));
    assert.equal(summary(gatewayStatus(r).conditions, 'Accepted'), 'True/ListenersNotValid');
    assert.equal(summary(listenerStatus(r, 'distinct').conditions, 'Programmed'), 'True/Programmed');
  });

  test('a Gateway whose listeners are all conflicted is not Accepted', () => {
    const r = run(simpleWorld([listener('a'), listener('b')], []));
    assert.equal(summary(gatewayStatus(r).conditions, 'Accepted'), 'False/ListenersNotValid');
    assert.deepEqual(r.ir.sockets, []);
  });

  test('listeners distinct by port or by hostname do not conflict', () => {
    const r = run(
      simpleWorld(
        [
          listener('a'),
          listener('b', { port: 8080 }),
          listener('c', { hostname: 'foo.example.com' }),
          listener('d', { hostname: '*.example.com' }),
          listener('e', { hostname: 'foo.example.com', port: 8080 }),
        ],
        [],
      ),
    );
    for (const l of gatewayStatus(r).listeners) {
      assert.equal(summary(l.conditions, 'Conflicted'), 'False/NoConflicts', l.name);
      assert.equal(cond(l.conditions, 'Programmed').status, 'True', l.name);
    }
    assert.equal(summary(gatewayStatus(r).conditions, 'Accepted'), 'True/Accepted');
  });
});

describe('listener conflicts across Gateways sharing an address', () => {
  const twoGateways = (second: { hostname?: string; addresses?: { value: string }[] } = {}) =>
    world({
      gateways: [
        // Input order is the reverse of age: the translator must order by creationTimestamp.
        gateway('newer', [listener('http', second.hostname ? { hostname: second.hostname } : {})], {
          creationTimestamp: '2024-01-02T00:00:00Z',
          ...(second.addresses ? { addresses: second.addresses } : {}),
        }),
        gateway('older', [listener('http')], { creationTimestamp: '2024-01-01T00:00:00Z' }),
      ],
    });

  test('same address:port and hostname: the newer Gateway listener is Conflicted and not programmed', () => {
    const r = run(twoGateways());
    const newer = listenerStatus(r, 'http', `${NS}/newer`);
    assert.equal(summary(newer.conditions, 'Conflicted'), 'True/HostnameConflict');
    assert.equal(cond(newer.conditions, 'Programmed').status, 'False');
    const older = listenerStatus(r, 'http', `${NS}/older`);
    assert.equal(summary(older.conditions, 'Programmed'), 'True/Programmed');
    assert.equal(r.ir.sockets.length, 1);
    assert.equal(vhostOf(r.ir.sockets[0], '*')?.listener, `${NS}/older/http`);
  });

  test('a Gateway whose only listener is conflicted across Gateways reports ListenersNotValid and is not programmed', () => {
    // Spec: "The implementation MUST set a ListenersNotValid condition on the Gateway Status when
    // the Gateway contains Conflicted Listeners"; with no distinct listener left the Gateway "must
    // be rejected from processing as a whole". The distinctness rules also apply when Gateways
    // are merged onto one data plane.
    const r = run(twoGateways());
    const gw = gatewayStatus(r, `${NS}/newer`);
    assert.equal(summary(gw.conditions, 'Accepted'), 'False/ListenersNotValid');
    assert.equal(cond(gw.conditions, 'Programmed').status, 'False');
  });

  test(
    'same address:port and hostname across Gateways: no Gateway wins (both Conflicted)',
    { todo: 'spec says the distinctness rules "also apply" to merged Gateways, but whether an older Gateway may keep an address is not spelled out' },
    () => {
      const r = run(twoGateways());
      assert.equal(cond(listenerStatus(r, 'http', `${NS}/older`).conditions, 'Conflicted').status, 'True');
    },
  );

  test('different hostnames on one address:port share a socket without conflict', () => {
    const r = run(twoGateways({ hostname: 'foo.example.com' }));
    assert.equal(summary(listenerStatus(r, 'http', `${NS}/newer`).conditions, 'Conflicted'), 'False/NoConflicts');
    assert.equal(r.ir.sockets.length, 1);
    assert.deepEqual(
      r.ir.sockets[0].vhosts.map((v) => [v.hostname, v.listener]),
      [
        ['*', `${NS}/older/http`],
        ['foo.example.com', `${NS}/newer/http`],
      ],
    );
  });

  test('the same hostname on different addresses does not conflict', () => {
    const r = run(twoGateways({ addresses: [{ value: '127.0.0.2' }] }));
    assert.equal(summary(listenerStatus(r, 'http', `${NS}/newer`).conditions, 'Programmed'), 'True/Programmed');
    assert.deepEqual(r.ir.sockets.map((s) => `${s.address}:${s.port}`).sort(), ['127.0.0.1:80', '127.0.0.2:80']);
  });
});

describe('Gateway spec.addresses', () => {
  test('every listener binds every address; status lists them', () => {
    const r = run(
      world({
        gateways: [
          gateway('gw', [listener('http'), listener('alt', { port: 8080, hostname: 'foo.example.com' })], {
            addresses: [{ type: 'IPAddress', value: '127.0.0.10' }, { value: '127.0.0.11' }],
          }),
        ],
      }),
    );
    assert.deepEqual(gatewayStatus(r).addresses, [
      { type: 'IPAddress', value: '127.0.0.10' },
      { type: 'IPAddress', value: '127.0.0.11' },
    ]);
    assert.deepEqual(
      r.ir.sockets.map((s) => [s.address, s.port, s.vhosts.map((v) => v.hostname)]),
      [
        ['127.0.0.10', 80, ['*']],
        ['127.0.0.10', 8080, ['foo.example.com']],
        ['127.0.0.11', 80, ['*']],
        ['127.0.0.11', 8080, ['foo.example.com']],
      ],
    );
    const names = r.ir.sockets.map((s) => s.name);
    assert.equal(new Set(names).size, names.length, 'socket names are unique');
  });

  test('an IPv6 address is used as given', () => {
    const r = run(world({ gateways: [gateway('gw', [listener('http')], { addresses: [{ type: 'IPAddress', value: '::1' }] })] }));
    assert.deepEqual(r.ir.sockets.map((s) => [s.address, s.port]), [['::1', 80]]);
    assert.match(r.ir.sockets[0].name, /^[A-Za-z0-9_]+$/);
  });

  test('duplicate addresses bind once', () => {
    const r = run(world({ gateways: [gateway('gw', [listener('http')], { addresses: [{ value: '127.0.0.5' }, { value: '127.0.0.5' }] })] }));
    assert.equal(r.ir.sockets.length, 1);
  });

  test('without spec.addresses the default address is used', () => {
    const r = run(world({ gateways: [gateway('gw', [listener('http')])] }), '127.0.0.9');
    assert.deepEqual(r.ir.sockets.map((s) => s.address), ['127.0.0.9']);
    assert.deepEqual(gatewayStatus(r).addresses, [{ type: 'IPAddress', value: '127.0.0.9' }]);
  });

  for (const a of [
    { type: 'Hostname', value: 'gw.example.com' },
    { type: 'example.com/named', value: 'pool-1' },
    { type: 'IPAddress', value: 'not-an-ip' },
  ]) {
    test(`an unusable address ${a.type}=${a.value} leaves the Gateway unprogrammed`, () => {
      const r = run(world({ gateways: [gateway('gw', [listener('http')], { addresses: [a] })] }));
      const gw = gatewayStatus(r);
      assert.equal(cond(gw.conditions, 'Programmed').status, 'False');
      if (a.type !== 'IPAddress') assert.equal(summary(gw.conditions, 'Accepted'), 'False/UnsupportedAddress');
      assert.deepEqual(r.ir.sockets, []);
    });
  }

  test('an address entry without a value is either assigned an address or reported as AddressNotAssigned', () => {
    // Spec (GatewaySpecAddress.value): "When a value is unspecified, an implementation SHOULD
    // automatically assign an address ... If an implementation does not support an empty value,
    // they MUST set the Programmed condition in status to False with a reason of AddressNotAssigned."
    const r = run(world({ gateways: [gateway('gw', [listener('http')], { addresses: [{ type: 'IPAddress' }] })] }));
    const gw = gatewayStatus(r);
    const programmed = cond(gw.conditions, 'Programmed');
    if (programmed.status === 'True') {
      assert.ok((gw.addresses ?? []).length > 0, 'an address was assigned');
    } else {
      assert.equal(programmed.reason, 'AddressNotAssigned');
    }
  });
});

describe('determinism', () => {
  test('the result does not depend on the order objects were listed in', () => {
    const build = () =>
      world({
        gateways: [
          gateway('b', [listener('http', { hostname: 'b.example.com', allowedRoutes: { namespaces: { from: 'All' } } })]),
          gateway('a', [listener('http', { hostname: 'a.example.com' }), listener('x', { port: 8080 })]),
        ],
        httpRoutes: [
          route('r1', { parentRefs: [parentRef('a'), parentRef('b')] }),
          route('r2', { parentRefs: [parentRef('a', { sectionName: 'x' })], namespace: NS }),
          route('r3', { parentRefs: [parentRef('b', { namespace: NS })], namespace: 'other' }),
        ],
        services: [service('svc'), service('svc', [8080], 'other')],
      });
    const forward = build();
    const reversed = build();
    for (const k of Object.keys(reversed) as (keyof typeof reversed)[]) (reversed[k] as unknown[]).reverse();
    const a = run(forward);
    const b = run(reversed);
    assert.deepEqual(b.ir, a.ir);
    const byKey = (x: typeof a) => [...x.statuses].sort((p, q) => JSON.stringify(p.metadata).localeCompare(JSON.stringify(q.metadata)));
    assert.deepEqual(byKey(b), byKey(a));
  });

  test('translate does not mutate its input', () => {
    const snap = simpleWorld([listener('http')], [route('r')]);
    const copy = structuredClone(snap);
    run(snap);
    assert.deepEqual(snap, copy);
  });

  test('route status names our controller', () => {
    const r = run(simpleWorld([listener('http')], [route('r')]));
    const s = r.statuses.find(ofKind('HTTPRoute'));
    assert.equal(s?.status.parents[0].controllerName, CONTROLLER_NAME);
  });
});
