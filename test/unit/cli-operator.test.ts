// `vgw operator` flags: typed, with defaults, and a bad value names its flag.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseOperatorArgs } from '../../src/cli/operator.ts';

test('defaults: probes on all addresses, metrics on loopback, lease vgw-operator in vgw-system', () => {
  const a = parseOperatorArgs([], {});
  assert.deepEqual(
    { ...a },
    { 'probe-port': 9901, 'probe-address': '0.0.0.0', 'metrics-port': 9902, 'metrics-address': '127.0.0.1', namespace: 'vgw-system', 'lease-name': 'vgw-operator' },
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
});
