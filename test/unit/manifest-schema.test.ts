// Manifest schemas at the loader boundary: every hostile shape in test/fixtures/hostile/ is
// rejected alone (file, line, kind, name, field), everything else in the directory keeps
// loading and serving, and nothing of a rejected object reaches the translator or VCL.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveEndpoints } from '../../src/gatewayapi/endpoints.ts';
import { parseEndpointSlice } from '../../src/gatewayapi/schema/endpointslice.ts';
import { translate } from '../../src/gatewayapi/translator.ts';
import { ofKind } from '../../src/gatewayapi/status.ts';
import { formatRejected, type EndpointSlice } from '../../src/gatewayapi/types.ts';
import { render } from '../../src/pipeline/render.ts';
import { loadManifestDir, ManifestLoadError } from '../../src/providers/file/load.ts';
import { hostileBase } from '../support/hostile-base.ts';

const HOSTILE = fileURLToPath(new URL('../fixtures/hostile/', import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'vgw-schema-test-'));
after(() => rmSync(root, { recursive: true, force: true }));

/** A class, a Gateway, the web Service with its slice, and one good route. */
const BASE = hostileBase();

let counter = 0;
function dirWith(files: Record<string, string>, fixtures: string[] = []): string {
  const d = join(root, `case-${++counter}`);
  mkdirSync(d);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(d, name), text);
  for (const f of fixtures) copyFileSync(join(HOSTILE, f), join(d, f));
  return d;
}

const NOW = '2025-01-01T00:00:00Z';

// Fixture -> what the rejection must say: kind, object as displayed, field path and problem.
const REJECTED: Record<string, { kind: string; object: string | RegExp; message: RegExp; line: number }> = {
  'route-rules-object.yaml': { kind: 'HTTPRoute', object: 'default/rules-object', message: /^spec\.rules: expected array, received object$/, line: 7 },
  'route-parentrefs-string.yaml': { kind: 'HTTPRoute', object: 'default/parentrefs-string', message: /^spec\.parentRefs: expected array, received string$/, line: 6 },
  'route-filters-null.yaml': { kind: 'HTTPRoute', object: 'default/filters-null', message: /^spec\.rules\[0\]\.filters\[0\]: expected object, received null$/, line: 8 },
  'route-hostnames-string.yaml': { kind: 'HTTPRoute', object: 'default/hostnames-string', message: /^spec\.hostnames: expected array, received string$/, line: 7 },
  'route-name-newline.yaml': { kind: 'HTTPRoute', object: 'default/"bad\\nname"', message: /^metadata\.name: must be a lowercase RFC 1123 subdomain/, line: 4 },
  'route-name-uppercase.yaml': { kind: 'HTTPRoute', object: 'default/"WebRoute"', message: /^metadata\.name: must be a lowercase RFC 1123 subdomain/, line: 4 },
  'route-name-too-long.yaml': { kind: 'HTTPRoute', object: /^default\/"a{64}…" \(254 characters\)$/, message: /^metadata\.name: Too big: expected string to have <=253 characters$/, line: 4 },
  'route-weight-out-of-range.yaml': { kind: 'HTTPRoute', object: 'default/weight-out-of-range', message: /^spec\.rules\[0\]\.backendRefs\[0\]\.weight: Too big/, line: 8 },
  'route-port-string.yaml': { kind: 'HTTPRoute', object: 'default/port-string', message: /^spec\.rules\[0\]\.backendRefs\[0\]\.port: expected number, received string$/, line: 8 },
  'endpointslice-port-injection.yaml': { kind: 'EndpointSlice', object: 'default/web-injected', message: /^ports\[0\]\.port: expected number, received string$/, line: 8 },
  'endpointslice-port-out-of-range.yaml': { kind: 'EndpointSlice', object: 'default/web-port-range', message: /^ports\[0\]\.port: Too big/, line: 8 },
  'endpointslice-hostname-address.yaml': { kind: 'EndpointSlice', object: 'default/web-hostname', message: /^endpoints\[0\]\.addresses\[0\]: must be an IPv4 address/, line: 10 },
  'endpointslice-ipv6-in-ipv4.yaml': { kind: 'EndpointSlice', object: 'default/web-family', message: /^endpoints\[0\]\.addresses\[0\]: must be an IPv4 address/, line: 10 },
  'service-port-string.yaml': { kind: 'Service', object: 'default/web', message: /^spec\.ports\[0\]\.port: expected number, received string$/, line: 7 },
  'gateway-listeners-string.yaml': { kind: 'Gateway', object: 'default/gw2', message: /^spec\.listeners: expected array, received string$/, line: 7 },
  'namespace-name-too-long.yaml': { kind: 'Namespace', object: /^"n{64}"$/, message: /^metadata\.name: Too big: expected string to have <=63 characters$/, line: 4 },
};

describe('hostile manifests are rejected alone', () => {
  test('every fixture in test/fixtures/hostile has a case here or below', () => {
    const covered = new Set([...Object.keys(REJECTED), 'endpointslice-fqdn.yaml', 'invalid-utf8.yaml', 'yaml-alias-bomb.yaml', 'proto-key.json']);
    assert.deepEqual(readdirSync(HOSTILE).filter((f) => !covered.has(f)), []);
  });

  for (const [fixture, want] of Object.entries(REJECTED)) {
    test(fixture, async () => {
      // The base Service is replaced when the fixture redefines it.
      const base = hostileBase({ service: fixture !== 'service-port-string.yaml' });
      const { snapshot } = await loadManifestDir(dirWith({ 'base.yaml': base }, [fixture]));
      const rejected = snapshot.rejected ?? [];
      assert.equal(rejected.length, 1, JSON.stringify(rejected));
      const r = rejected[0];
      assert.equal(r.kind, want.kind);
      if (typeof want.object === 'string') assert.equal(r.display, want.object);
      else assert.match(r.display, want.object);
      assert.match(r.message, want.message);
      assert.ok(r.file.endsWith(fixture), r.file);
      assert.equal(r.line, want.line, formatRejected(r));
      assert.ok(formatRejected(r).length < 400, 'the message stays short whatever the input');
      // Everything else still loads and the good route is still served.
      const out = render(snapshot, { defaultAddress: '127.0.22.1', now: NOW });
      const good = out.statuses.filter(ofKind('HTTPRoute')).find((s) => s.metadata.name === 'good');
      assert.ok(good, 'the good route has status');
      const accepted = good.status.parents[0].conditions.find((c) => c.type === 'Accepted');
      assert.equal(accepted?.status, 'True');
      assert.ok(out.problems.some((p) => p.kind === want.kind && p.message.includes(fixture)), JSON.stringify(out.problems));
      // Nothing of the rejected object reaches VCL.
      assert.doesNotMatch(out.vcl, /sub vcl_recv \{ return \(synth\(666\)\)|does-not-resolve|"80; evil"/);
    });
  }

  test('a rejected HTTPRoute attached to our Gateway gets Accepted=False/UnsupportedValue naming the field', async () => {
    const { snapshot } = await loadManifestDir(dirWith({ 'base.yaml': BASE }, ['route-hostnames-string.yaml']));
    const out = translate(snapshot, { defaultAddress: '127.0.22.1', now: NOW });
    const s = out.statuses.filter(ofKind('HTTPRoute')).find((x) => x.metadata.name === 'hostnames-string');
    assert.ok(s);
    const parent = s.status.parents[0];
    assert.equal(parent.parentRef.name, 'gw');
    assert.equal(parent.conditions[0].status, 'False');
    assert.equal(parent.conditions[0].reason, 'UnsupportedValue');
    assert.match(parent.conditions[0].message, /route-hostnames-string\.yaml:7\): spec\.hostnames: expected array, received string/);
    // The hosts "a", "b", "c" of the old misreading are not served.
    assert.ok(!out.ir.sockets.some((k) => k.vhosts.some((v) => ['a', 'b', 'c'].includes(v.hostname))));
  });

  test('a rejected route whose parentRefs are unreadable is a problem only', async () => {
    const { snapshot } = await loadManifestDir(dirWith({ 'base.yaml': BASE }, ['route-parentrefs-string.yaml']));
    const out = translate(snapshot, { defaultAddress: '127.0.22.1', now: NOW });
    assert.ok(!out.statuses.some((s) => s.metadata.name === 'parentrefs-string'));
    assert.match(out.problems.map((p) => `${p.kind} ${p.object}: ${p.message}`).join('\n'), /HTTPRoute default\/parentrefs-string: invalid \(.*route-parentrefs-string\.yaml:6\): spec\.parentRefs/);
  });

  test('a rejected Gateway of our class is Accepted=False (ListenersNotValid) and Programmed=False', async () => {
    const { snapshot } = await loadManifestDir(dirWith({ 'base.yaml': BASE }, ['gateway-listeners-string.yaml']));
    const out = translate(snapshot, { defaultAddress: '127.0.22.1', now: NOW });
    const s = out.statuses.filter(ofKind('Gateway')).find((x) => x.metadata.name === 'gw2');
    const conditions = s?.status.conditions ?? [];
    assert.deepEqual(conditions.map((c) => [c.type, c.status, c.reason]), [['Accepted', 'False', 'ListenersNotValid'], ['Programmed', 'False', 'Invalid']]);
  });

  test('a rejected EndpointSlice or Service makes its backends unresolvable (ResolvedRefs=False naming the field)', async () => {
    for (const [fixture, field] of [['endpointslice-port-injection.yaml', /EndpointSlice default\/web-injected is invalid .*ports\[0\]\.port/], ['service-port-string.yaml', /Service default\/web is invalid .*spec\.ports\[0\]\.port/]] as const) {
      const base = hostileBase({ service: fixture !== 'service-port-string.yaml' });
      const { snapshot } = await loadManifestDir(dirWith({ 'base.yaml': base }, [fixture]));
      const out = render(snapshot, { defaultAddress: '127.0.22.1', now: NOW });
      const good = out.statuses.filter(ofKind('HTTPRoute')).find((s) => s.metadata.name === 'good');
      const refs = good?.status.parents[0].conditions.find((c) => c.type === 'ResolvedRefs');
      assert.equal(refs?.status, 'False', fixture);
      assert.equal(refs?.reason, 'BackendNotFound');
      assert.match(refs?.message ?? '', field);
    }
  });

  test('an FQDN EndpointSlice is ignored with a warning naming it', async () => {
    const { snapshot, warnings } = await loadManifestDir(dirWith({ 'base.yaml': BASE }, ['endpointslice-fqdn.yaml']));
    assert.deepEqual(snapshot.endpointSlices.map((s) => s.metadata.name), ['web-1']);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0].message, /EndpointSlice default\/web-fqdn: addressType FQDN is not supported/);
    assert.deepEqual(snapshot.rejected, []);
  });

  test('a 1 MB name is rejected, and the message quotes 64 characters of it', async () => {
    const name = 'x'.repeat(1024 * 1024);
    const route = `apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: ${name}}\nspec: {parentRefs: [{name: gw}]}\n`;
    const { snapshot } = await loadManifestDir(dirWith({ 'base.yaml': BASE, 'big.yaml': route }));
    const [r] = snapshot.rejected ?? [];
    assert.match(formatRejected(r), /big\.yaml:3: HTTPRoute default\/"x{64}…" \(1048576 characters\): metadata\.name: Too big/);
    assert.ok(formatRejected(r).length < 300);
  });

  test('an alias bomb is refused with an error instead of being expanded', async () => {
    await assert.rejects(loadManifestDir(dirWith({}, ['yaml-alias-bomb.yaml'])), (err: unknown) => {
      assert.ok(err instanceof ManifestLoadError);
      assert.match(err.message, /yaml-alias-bomb\.yaml:\d+: .*alias/i);
      return true;
    });
  });

  test('a "__proto__" key pollutes nothing', async () => {
    const { snapshot } = await loadManifestDir(dirWith({}, ['proto-key.json']));
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    const [ns] = snapshot.namespaces;
    assert.equal(Object.getPrototypeOf(ns.metadata), Object.prototype);
    assert.equal(Object.getPrototypeOf(ns.metadata.labels), Object.prototype);
    assert.equal((ns.metadata as unknown as Record<string, unknown>).polluted, undefined);
  });
});

describe('EndpointSlices from any source', () => {
  const slice = (extra: Record<string, unknown>) => ({
    metadata: { name: 's', namespace: 'default', labels: { 'kubernetes.io/service-name': 'web' }, creationTimestamp: new Date(0) },
    addressType: 'IPv4',
    ports: [{ port: 8080, name: null }],
    endpoints: [{ addresses: ['10.0.0.1'], conditions: { ready: true } }],
    ...extra,
  });

  test('parseEndpointSlice accepts an API object (no apiVersion/kind, Dates, nulls)', () => {
    const r = parseEndpointSlice(slice({}));
    assert.ok(r.ok, r.ok ? '' : r.message);
  });

  for (const [name, extra, message] of [
    ['string port', { ports: [{ port: '80"; }' }] }, /ports\[0\]\.port: expected number/],
    ['fractional port', { ports: [{ port: 80.5 }] }, /ports\[0\]\.port: expected int/],
    ['hostname address', { endpoints: [{ addresses: ['evil.example'] }] }, /endpoints\[0\]\.addresses\[0\]: must be an IPv4 address/],
    ['IPv4 in an IPv6 slice', { addressType: 'IPv6' }, /must be an IPv6 address/],
    ['unknown addressType', { addressType: 'Carrier-Pigeon' }, /addressType/],
  ] as const) {
    test(`parseEndpointSlice rejects a ${name}`, () => {
      const r = parseEndpointSlice(slice(extra));
      assert.ok(!r.ok);
      assert.match(r.message, message);
    });
  }

  test('resolveEndpoints skips addresses and ports the API would not allow, and says so', () => {
    const services = [{ namespace: 'default', name: 'web', port: 80, portName: '' }];
    const bad = [
      { ...slice({ ports: [{ port: '1"; }' }] }), metadata: { name: 'a', namespace: 'default', labels: { 'kubernetes.io/service-name': 'web' } } },
      { ...slice({ endpoints: [{ addresses: ['evil.example', '10.0.0.9'] }] }), metadata: { name: 'b', namespace: 'default', labels: { 'kubernetes.io/service-name': 'web' } } },
    ] as unknown as EndpointSlice[];
    const told: string[] = [];
    const map = resolveEndpoints(services, bad, (s, m) => told.push(`${s.metadata.name}: ${m}`));
    assert.deepEqual([...map.values()][0], [{ address: '10.0.0.9', port: 8080 }]);
    assert.equal(told.length, 2);
    assert.match(told.join('\n'), /a: port .* is not an integer 1-65535/);
    assert.match(told.join('\n'), /b: address "evil.example" is not an IPv4 address/);
  });
});
