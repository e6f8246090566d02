// The published routing IR bound to the pod's own address: every socket keeps its IR name and
// port (the VCL routes by name), sockets that would collide on one address:port are merged,
// and a merge that would change what a request reaches is refused.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { translate } from '../../src/gatewayapi/translator.ts';
import { emptySnapshot, type Gateway, type HTTPRoute } from '../../src/gatewayapi/types.ts';
import { bindSocketsTo } from '../../src/ir/bind-address.ts';
import { routeRequest } from '../../src/ir/route-request.ts';
import { IR_VERSION, type IRSocket, type IRVirtualHost, type RoutingIR } from '../../src/ir/types.ts';
import { compileConfig } from '../../src/pipeline/render.ts';
import { CONTROLLER_NAME } from '../../src/gatewayapi/features.ts';

const POD_IP = '10.244.1.7';
const GATEWAY_API = 'gateway.networking.k8s.io/v1';

const vhost = (hostname: string, routeId: string): IRVirtualHost => ({
  hostname,
  listener: 'infra/gw/http',
  routes: [{ id: routeId, match: { path: { type: 'PathPrefix', value: '/' }, headers: [], queryParams: [] }, action: { backends: [] } }],
});
const socket = (name: string, address: string, port: number, vhosts: IRVirtualHost[]): IRSocket => ({ name, address, port, vhosts });
const ir = (sockets: IRSocket[]): RoutingIR => ({ version: IR_VERSION, sockets, services: [] });
const get = (host: string) => ({ host, target: '/', method: 'GET', headers: [] as [string, string][] });

function bound(input: RoutingIR): RoutingIR {
  const r = bindSocketsTo(input, POD_IP);
  assert.ok(r.ok, r.ok ? '' : r.error);
  return r.ir;
}

test('each socket is bound on the listen address at its own port, keeping its IR name', () => {
  const input = ir([socket('a10_0_0_1_80', '10.0.0.1', 80, [vhost('web.example.com', 'app/web/0/0')]), socket('a10_0_0_1_8443', '10.0.0.1', 8443, [vhost('*', 'app/all/0/0')])]);
  const out = bound(input);
  assert.deepEqual(
    out.sockets.map((s) => [s.name, s.address, s.port]),
    [['a10_0_0_1_80', POD_IP, 80], ['a10_0_0_1_8443', POD_IP, 8443]],
  );
  assert.deepEqual(out.sockets.map((s) => s.vhosts), input.sockets.map((s) => s.vhosts));
  assert.equal(input.sockets[0].address, '10.0.0.1', 'the published IR is not changed in place');
  // What varnishd is told: the pod address, the IR's names (the VCL compares local.socket with them).
  const config = compileConfig(out, new Map());
  assert.deepEqual(config.sockets, [{ name: 'a10_0_0_1_80', address: POD_IP, port: 80 }, { name: 'a10_0_0_1_8443', address: POD_IP, port: 8443 }]);
  assert.match(config.vcl, /a10_0_0_1_80=web\.example\.com/);
});

test('a Gateway with two addresses: one socket per port, routing as on either address', () => {
  const gw: Gateway = {
    apiVersion: GATEWAY_API,
    kind: 'Gateway',
    metadata: { name: 'gw', namespace: 'infra', generation: 1 },
    spec: {
      gatewayClassName: 'vgw',
      addresses: [{ type: 'IPAddress', value: '10.0.0.2' }, { type: 'IPAddress', value: '10.0.0.1' }],
      listeners: [
        { name: 'http', protocol: 'HTTP', port: 80, allowedRoutes: { namespaces: { from: 'All' } } },
        { name: 'alt', protocol: 'HTTP', port: 8080, hostname: 'alt.example.com', allowedRoutes: { namespaces: { from: 'All' } } },
      ],
    },
  };
  const route: HTTPRoute = {
    apiVersion: GATEWAY_API,
    kind: 'HTTPRoute',
    metadata: { name: 'web', namespace: 'infra', generation: 1 },
    spec: { parentRefs: [{ name: 'gw' }], hostnames: ['web.example.com', 'alt.example.com'], rules: [{ backendRefs: [{ name: 'web', port: 80 }] }] },
  };
  const snapshot = emptySnapshot();
  snapshot.gatewayClasses = [{ apiVersion: GATEWAY_API, kind: 'GatewayClass', metadata: { name: 'vgw' }, spec: { controllerName: CONTROLLER_NAME } }];
  snapshot.gateways = [gw];
  snapshot.httpRoutes = [route];
  snapshot.services = [{ apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'infra' }, spec: { ports: [{ name: 'http', port: 80, targetPort: 8080 }] } }];
  const published = translate(snapshot, { defaultAddress: '127.0.0.1', now: '2026-01-01T00:00:00Z' }).ir;
  assert.deepEqual(published.sockets.map((s) => s.name), ['a10_0_0_1_80', 'a10_0_0_1_8080', 'a10_0_0_2_80', 'a10_0_0_2_8080']);

  const out = bound(published);
  assert.deepEqual(out.sockets.map((s) => [s.name, s.address, s.port]), [['a10_0_0_1_80', POD_IP, 80], ['a10_0_0_1_8080', POD_IP, 8080]]);
  for (const [name, host, expected] of [
    ['a10_0_0_1_80', 'web.example.com', 'route'],
    ['a10_0_0_1_80', 'alt.example.com', 'route'],
    ['a10_0_0_1_8080', 'alt.example.com', 'route'],
    ['a10_0_0_1_8080', 'web.example.com', 'status'],
  ] as const) {
    const before = routeRequest(published, name, get(host));
    const after = routeRequest(out, name, get(host));
    assert.equal(after.kind, expected, `${name} ${host}`);
    assert.deepEqual(after.kind === 'route' ? after.id : after, before.kind === 'route' ? before.id : before, `${name} ${host} routes as published`);
  }
  // varnishd can start with it: one -a per port.
  assert.deepEqual(compileConfig(out, new Map()).sockets.map((s) => `${s.address}:${s.port}`), [`${POD_IP}:80`, `${POD_IP}:8080`]);
});

test('same-port sockets with different hostnames: tables concatenated in IR order under the first name', () => {
  const out = bound(
    ir([
      socket('a10_0_0_1_80', '10.0.0.1', 80, [vhost('a.example.com', 'app/a/0/0')]),
      socket('a10_0_0_2_80', '10.0.0.2', 80, [vhost('b.example.com', 'app/b/0/0'), vhost('a.example.com', 'app/a/0/0')]),
    ]),
  );
  assert.equal(out.sockets.length, 1);
  assert.equal(out.sockets[0].name, 'a10_0_0_1_80');
  assert.deepEqual(out.sockets[0].vhosts.map((v) => v.hostname), ['a.example.com', 'b.example.com']);
  const decision = routeRequest(out, 'a10_0_0_1_80', get('b.example.com'));
  assert.equal(decision.kind === 'route' ? decision.id : decision.kind, 'app/b/0/0');
});

test('a hostname routed differently on two addresses of one port is refused, naming both sockets', () => {
  const r = bindSocketsTo(
    ir([socket('a10_0_0_1_80', '10.0.0.1', 80, [vhost('a.example.com', 'app/one/0/0')]), socket('a10_0_0_2_80', '10.0.0.2', 80, [vhost('a.example.com', 'app/two/0/0')])]),
    POD_IP,
  );
  assert.equal(r.ok, false);
  assert.match(r.ok ? '' : r.error, /sockets a10_0_0_1_80 and a10_0_0_2_80 share port 80 but route hostname "a\.example\.com" differently/);
});

test('a TLS socket keeps its client certificate validation and TLS options when bound (never served without them)', () => {
  const validation = { mode: 'AllowValidOnly' as const, caCertificates: [{ namespace: 'infra', name: 'client-ca' }] };
  const tls = (name: string) => ({ certificates: [{ namespace: 'infra', name, hostnames: [] }], clientValidation: validation, options: { minVersion: 'TLSv1.3' as const }, listeners: ['*'] });
  const input = ir([
    { ...socket('a10_0_0_2_443', '10.0.0.2', 443, [vhost('*', 'app/all/0/0')]), tls: tls('www') },
    { ...socket('a10_0_0_1_443', '10.0.0.1', 443, [vhost('*', 'app/all/0/0')]), tls: tls('api') },
  ]);
  const out = bound(input);
  assert.equal(out.sockets.length, 1);
  assert.deepEqual(out.sockets[0].tls, { certificates: [{ namespace: 'infra', name: 'www', hostnames: [] }, { namespace: 'infra', name: 'api', hostnames: [] }], listeners: ['*'], clientValidation: validation, options: { minVersion: 'TLSv1.3' } });
});
