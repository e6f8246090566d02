// The routing IR as ConfigMaps: round trips, splitting over several ConfigMaps, and what a
// reader does with a half-written or foreign config.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { DECODE_LIMITS, decodeRoutingConfig, encodeRoutingConfig, headName, partName, PUBLISHED_AT_ANNOTATION, RoutingConfigReader, type ConfigMapObject } from '../../src/ir/configmap.ts';
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

/** A head ConfigMap carrying `payload` as if the operator had written it. */
function headWith(payload: Buffer, resourceVersion = '1'): ConfigMapObject & { metadata: { resourceVersion: string } } {
  const [head] = encodeRoutingConfig(irWithRoutes(1), 'infra', 'gw');
  return {
    ...head,
    metadata: { ...head.metadata, resourceVersion },
    data: { ...head.data, sha256: createHash('sha256').update(payload).digest('hex'), parts: '1', bytes: String(payload.length) },
    binaryData: { 'routing.json.gz': payload.toString('base64') },
  };
}

describe('routing ConfigMaps from an untrusted writer', () => {
  test('an inflate bomb is refused at the output limit, with bounded memory', () => {
    // 16 gzip members of 16 MiB of spaces each: 256 MiB inflated from a few hundred KiB.
    const member = gzipSync(Buffer.alloc(16 * 1024 * 1024, 0x20), { level: 9 });
    const bomb = Buffer.concat(Array.from({ length: 16 }, () => member));
    assert.ok(bomb.length < 900 * 1024, `${bomb.length} bytes compressed`);
    const rssBefore = process.memoryUsage().rss;
    const r = decodeRoutingConfig([headWith(bomb)], 'gw');
    const grown = process.memoryUsage().rss - rssBefore;
    assert.equal(r.state, 'invalid');
    assert.match(r.state === 'invalid' ? r.reason : '', /inflates to more than 67108864 bytes \(64 MiB\)/);
    assert.ok(grown < 2 * DECODE_LIMITS.inflatedBytes, `RSS grew by ${Math.round(grown / 1024 / 1024)} MiB`);
  });

  test('too many parts or too many compressed bytes are refused before anything is inflated', () => {
    const head = headWith(gzipSync('{}'));
    const many = decodeRoutingConfig([{ ...head, data: { ...head.data, parts: String(DECODE_LIMITS.parts + 1) } }], 'gw');
    assert.equal(many.state, 'invalid');
    assert.match(many.state === 'invalid' ? many.reason : '', /at most 20 are read/);
    const big = Buffer.alloc(DECODE_LIMITS.compressedBytes + 1);
    const huge = decodeRoutingConfig([headWith(big)], 'gw');
    assert.equal(huge.state, 'invalid');
    assert.match(huge.state === 'invalid' ? huge.reason : '', /larger than 16777216 bytes/);
  });

  test('an IR with an injected status code is invalid, naming the field', () => {
    const ir = irWithRoutes(1) as unknown as { sockets: { vhosts: { routes: { action: Record<string, unknown> }[] }[] }[] };
    ir.sockets[0].vhosts[0].routes[0].action.redirect = { statusCode: '301)); } sub vcl_recv { return (synth(200', listenerPort: 80 };
    const r = decodeRoutingConfig([headWith(gzipSync(JSON.stringify(ir)))], 'gw');
    assert.equal(r.state, 'invalid');
    assert.match(r.state === 'invalid' ? r.reason : '', /^the routing config is not a routing IR this agent accepts: sockets\[0\]\.vhosts\[0\]\.routes\[0\]\.action\.redirect\.statusCode: /);
  });

  test('the reader inflates only when the ConfigMaps changed', () => {
    const reader = new RoutingConfigReader('gw');
    const payload = gzipSync(JSON.stringify(irWithRoutes(3)));
    const first = reader.read([headWith(payload, '10')]);
    assert.equal(first.state, 'ok');
    for (let i = 0; i < 5; i++) assert.equal(reader.read([headWith(payload, '10')]), first, 'the same result object');
    assert.equal(reader.decodes, 1);
    // Written again with the same bytes: a new resourceVersion, still not inflated again.
    assert.equal(reader.read([headWith(payload, '11')]), first);
    assert.equal(reader.decodes, 1);
    const changed = reader.read([headWith(gzipSync(JSON.stringify(irWithRoutes(4))), '12')]);
    assert.equal(changed.state, 'ok');
    assert.equal(reader.decodes, 2);
    // Incomplete sets are never cached as a config.
    assert.equal(reader.read([]).state, 'incomplete');
    assert.equal(reader.decodes, 2);
  });
});

test('the head carries its publication time; a reader returns it, and ignores a value that is not an RFC 3339 UTC time', () => {
  const ir = irWithRoutes(2);
  const at = new Date('2026-12-06T10:00:00.123Z');
  const cms = encodeRoutingConfig(ir, 'ns', 'gw', undefined, at);
  const head = cms[cms.length - 1];
  assert.equal(head.metadata.annotations?.[PUBLISHED_AT_ANNOTATION], '2026-12-06T10:00:00.123Z');
  const decoded = decodeRoutingConfig(cms, 'gw');
  assert.equal(decoded.state === 'ok' && decoded.publishedAt, at.getTime());
  assert.equal(new RoutingConfigReader('gw').read(cms).state === 'ok' && (new RoutingConfigReader('gw').read(cms) as { publishedAt?: number }).publishedAt, at.getTime());
  for (const bad of ['yesterday', '2026-12-06 10:00:00', '2026-12-06T10:00:00+01:00', '']) {
    const tampered = cms.map((c) => (c === head ? { ...c, metadata: { ...c.metadata, annotations: { [PUBLISHED_AT_ANNOTATION]: bad } } } : c));
    const r = decodeRoutingConfig(tampered, 'gw');
    assert.equal(r.state, 'ok', bad);
    assert.equal((r as { publishedAt?: number }).publishedAt, undefined, bad);
  }
  assert.equal(encodeRoutingConfig(ir, 'ns', 'gw')[0].metadata.annotations, undefined, 'no time given, no annotation');
});
