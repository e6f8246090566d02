// The routing IR as ConfigMaps: round trips, splitting over several ConfigMaps, and what a
// reader does with a half-written or foreign config.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { decodeRoutingConfig, encodeRoutingConfig, headName, partName } from '../../src/ir/configmap.ts';
import { IR_VERSION, type RoutingIR } from '../../src/ir/types.ts';

function irWithRoutes(n: number): RoutingIR {
  return {
    version: IR_VERSION,
    routeGenerations: { 'app/r': 3 },
    services: [{ namespace: 'app', name: 'web', port: 80, portName: 'http', targetPort: 8080 }],
    sockets: [
      {
        name: 'a0_0_0_0_80',
        address: '0.0.0.0',
        port: 80,
        vhosts: Array.from({ length: n }, (_, i) => ({
          hostname: `h${i}.example.com`,
          listener: 'app/gw/http',
          routes: [{ id: `app/r${i}/0/0`, match: { path: { type: 'PathPrefix' as const, value: `/p${i}` }, headers: [], queryParams: [] }, action: { backends: [{ weight: 1, service: 0 }] } }],
        })),
      },
    ],
  };
}

describe('routing ConfigMaps', () => {
  test('a small config is one head ConfigMap and decodes to the same IR', () => {
    const ir = irWithRoutes(3);
    const cms = encodeRoutingConfig(ir, 'infra', 'gw');
    assert.deepEqual(cms.map((c) => c.metadata.name), [headName('gw')]);
    assert.equal(cms[0].metadata.labels['gateway.vgw.dev/gateway'], 'gw');
    const out = decodeRoutingConfig(cms, 'gw');
    assert.equal(out.state, 'ok');
    assert.deepEqual(out.state === 'ok' && out.ir, ir);
  });

  test('5 000 routes compress into one ConfigMap', () => {
    const cms = encodeRoutingConfig(irWithRoutes(5000), 'infra', 'gw');
    assert.equal(cms.length, 1);
    assert.ok(Number(cms[0].data.bytes) < 900 * 1024);
  });

  test('a large config is split into parts written before the head, in any order on read', () => {
    const ir = irWithRoutes(2000);
    const cms = encodeRoutingConfig(ir, 'infra', 'gw', 4096);
    assert.ok(cms.length > 2);
    assert.equal(cms.at(-1)?.metadata.name, headName('gw'), 'the head comes last');
    assert.equal(cms[0].metadata.name, partName('gw', 1));
    const out = decodeRoutingConfig([...cms].reverse(), 'gw');
    assert.equal(out.state, 'ok');
    assert.deepEqual(out.state === 'ok' && out.ir, ir);
  });

  test('a part from another config makes the set incomplete, not invalid', () => {
    const a = encodeRoutingConfig(irWithRoutes(2000), 'infra', 'gw', 4096);
    const b = encodeRoutingConfig(irWithRoutes(2001), 'infra', 'gw', 4096);
    const mixed = [b.at(-1)!, ...a.slice(0, -1)];
    assert.equal(decodeRoutingConfig(mixed, 'gw').state, 'incomplete');
    const missing = decodeRoutingConfig([a.at(-1)!], 'gw');
    assert.equal(missing.state, 'incomplete');
  });

  test('no head yet: incomplete; a head of another IR version or corrupt payload: invalid', () => {
    assert.equal(decodeRoutingConfig([], 'gw').state, 'incomplete');
    const [head] = encodeRoutingConfig(irWithRoutes(1), 'infra', 'gw');
    const old = { ...head, data: { ...head.data, irVersion: '1' } };
    const r = decodeRoutingConfig([old], 'gw');
    assert.equal(r.state, 'invalid');
    assert.match(r.state === 'invalid' ? r.reason : '', /version 1/);
    const corrupt = { ...head, binaryData: { 'routing.json.gz': Buffer.from('not gzip').toString('base64') } };
    assert.equal(decodeRoutingConfig([corrupt], 'gw').state, 'invalid', 'the payload no longer matches its checksum');
  });
});
