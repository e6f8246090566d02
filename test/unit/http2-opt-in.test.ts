// HTTP/2 is opt-in everywhere it can be turned on: `vgw serve --http2`, `vgw chaperone --http2`
// and GatewayClass parameters `http2`, which the operator passes into the pod's arguments.
// Off, varnishd runs with feature -http2 whatever feature flags the admin set.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Container } from '@kubernetes/client-node';
import { parseChaperoneArgs } from '../../src/cli/chaperone.ts';
import { serveFlags } from '../../src/util/flags.ts';
import { renderInfrastructure } from '../../src/operator/infrastructure.ts';
import { parseParameters, type GatewayClassParametersInput } from '../../src/operator/parameters.ts';
import { withHttp2 } from '../../src/runtime/data-plane.ts';

function params(spec: GatewayClassParametersInput) {
  const r = parseParameters({ apiVersion: 'gateway.vgw.dev/v1alpha1', kind: 'GatewayClassParameters', metadata: { name: 'p' }, spec });
  assert.ok(r.ok, r.ok ? '' : r.error);
  return r.value.spec;
}

function podArgs(spec: GatewayClassParametersInput): string[] {
  const infra = { listeners: [{ name: 'https', protocol: 'HTTPS', port: 443, hostname: '*', certificateRefs: [] }], addresses: [], labels: {}, annotations: {} };
  const r = renderInfrastructure({ namespace: 'shop', name: 'public', uid: '1b7e1b4c-0000-4000-8000-000000000001' }, infra, params(spec), { defaultImage: 'vgw:0.1.0' });
  return (r.deployment.spec?.template.spec?.containers[0] as V1Container).args ?? [];
}

test('GatewayClass parameters: http2 is off unless set; true reaches the pod as --http2', () => {
  assert.equal(params({}).http2, undefined);
  assert.ok(!podArgs({ http2: false }).includes('--http2'));
  assert.ok(!podArgs({}).includes('--http2'));
  assert.ok(podArgs({ http2: true }).includes('--http2'));
  const r = parseParameters({ apiVersion: 'gateway.vgw.dev/v1alpha1', kind: 'GatewayClassParameters', metadata: { name: 'p' }, spec: { http2: 'yes' } });
  assert.ok(!r.ok && /http2/.test(r.error), JSON.stringify(r));
});

test('vgw chaperone --http2 and vgw serve --http2 parse; both default to off', () => {
  assert.equal(parseChaperoneArgs(['--gateway', 'shop/public'], {}).http2, false);
  assert.equal(parseChaperoneArgs(['--gateway', 'shop/public', '--http2'], {}).http2, true);
  const serve = (values: Record<string, unknown>) => serveFlags.parse({ address: '127.0.0.1', 'path-normalization': 'on', 'admin-port': '9901', 'admin-address': '127.0.0.1', ...values });
  assert.equal(serve({}).http2, false);
  assert.equal(serve({ http2: true }).http2, true);
});

test('varnishd feature: +http2 only with the opt-in; an admin feature flag cannot turn it on', () => {
  assert.deepEqual(withHttp2({}, true), { feature: '+http2' });
  assert.deepEqual(withHttp2({}, false), { feature: '-http2' });
  assert.deepEqual(withHttp2({ feature: '+http2' }, false), { feature: '+http2,-http2' });
  assert.deepEqual(withHttp2({ feature: '+esi_ignore_https', x: 'y' }, true), { feature: '+esi_ignore_https,+http2', x: 'y' });
});
