// `vgw chaperone` flags: probes on all addresses, /status and /metrics on loopback by default,
// every flag checked before anything starts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UsageError } from '../../src/cli/args.ts';
import { parseChaperoneArgs } from '../../src/cli/chaperone.ts';

test('defaults: probes on 0.0.0.0:9901, status and metrics on 127.0.0.1:9902', () => {
  const a = parseChaperoneArgs(['--gateway', 'shop/public'], {});
  assert.deepEqual([a.gateway, a['probe-address'], a['probe-port'], a['metrics-address'], a['metrics-port']], ['shop/public', '0.0.0.0', 9901, '127.0.0.1', 9902]);
  assert.equal(parseChaperoneArgs([], { GATEWAY_NAMESPACE: 'shop', GATEWAY_NAME: 'public' }).gateway, 'shop/public');
});

test('bad flags are usage errors naming the flag', () => {
  const cases: [string[], RegExp][] = [
    [[], /--gateway NAMESPACE\/NAME is required/],
    [['--gateway', 'Shop/x'], /--gateway must be NAMESPACE\/NAME/],
    [['--gateway', 'a/b', '--probe-port', '70000'], /--probe-port must be a port number/],
    [['--gateway', 'a/b', '--metrics-port', '1e3'], /--metrics-port must be a port number/],
    [['--gateway', 'a/b', '--metrics-address', 'localhost'], /--metrics-address must be an IP address/],
    [['--gateway', 'a/b', '--metrics-port', '9901'], /must differ/],
    [['--gateway', 'a/b', '--admin-port', '1'], /Unknown option '--admin-port'/],
  ];
  for (const [argv, message] of cases) assert.throws(() => parseChaperoneArgs(argv, {}), (err: Error) => err instanceof UsageError && message.test(err.message), argv.join(' '));
});
