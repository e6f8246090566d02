// `vgw operator` flags: typed, with defaults, and a bad value names its flag.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readFileSync } from 'node:fs';
import { DEFAULT_GATEWAY_IMAGE, parseOperatorArgs } from '../../src/cli/operator.ts';

test('defaults: probes on all addresses, metrics on loopback, lease vgw-operator in vgw-system', () => {
  const a = parseOperatorArgs([], {});
  assert.deepEqual(
    { ...a },
    {
      'probe-port': 9901, 'probe-address': '0.0.0.0', 'metrics-port': 9902, 'metrics-address': '127.0.0.1', namespace: 'vgw-system', 'lease-name': 'vgw-operator',
      'gateway-image': DEFAULT_GATEWAY_IMAGE, 'resync-seconds': 300,
    },
  );
  assert.equal(parseOperatorArgs([], { POD_NAMESPACE: 'gateways' }).namespace, 'gateways');
  assert.equal(parseOperatorArgs(['--namespace', 'ops', '--kubeconfig', '/k'], { POD_NAMESPACE: 'gateways' }).namespace, 'ops');
});

test('a bad value is a usage error naming the flag', () => {
  assert.throws(() => parseOperatorArgs(['--probe-port', '70000'], {}), /--probe-port must be a port number/);
  assert.throws(() => parseOperatorArgs(['--metrics-address', 'localhost'], {}), /--metrics-address must be an IP address/);
  assert.throws(() => parseOperatorArgs(['--namespace', 'Bad_NS'], {}), /--namespace must be a DNS label/);
  assert.throws(() => parseOperatorArgs(['--lease-name', 'a b'], {}), /--lease-name must be a DNS subdomain/);
  assert.throws(() => parseOperatorArgs(['--probe-port', '9000', '--metrics-port', '9000'], {}), /must differ/);
  assert.throws(() => parseOperatorArgs(['--unknown'], {}), /unknown/i);
  assert.throws(() => parseOperatorArgs(['--gateway-image', 'vgw:1 --privileged'], {}), /--gateway-image must be an image reference/);
  assert.throws(() => parseOperatorArgs(['--gateway-image', ''], {}), /--gateway-image must be an image reference/);
  assert.throws(() => parseOperatorArgs(['--resync-seconds=-1'], {}), /--resync-seconds must be a whole number/);
  assert.throws(() => parseOperatorArgs(['--resync-seconds', '1.5'], {}), /--resync-seconds must be a whole number/);
  assert.throws(() => parseOperatorArgs(['--resync-seconds', '90000'], {}), /--resync-seconds must be at most 86400/);
});

test('--gateway-image and --resync-seconds are taken as given; 0 turns resync off', () => {
  const a = parseOperatorArgs(['--gateway-image', 'registry.example.com/vgw@sha256:' + 'a'.repeat(64), '--resync-seconds', '0'], {});
  assert.equal(a['gateway-image'], `registry.example.com/vgw@sha256:${'a'.repeat(64)}`);
  assert.equal(a['resync-seconds'], 0);
});

test('the default gateway image is the image of this version', () => {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  assert.equal(DEFAULT_GATEWAY_IMAGE, `vgw:${pkg.version}`);
});
