// The gateway's own varnishd parameters win over the admin's; `-p` in extra options is merged
// like any parameter rather than following ours on the command line.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { splitVarnishdArgs } from '../../src/ir/varnishd-settings.ts';
import { DataPlane, GATEWAY_PARAMS, varnishdParams } from '../../src/runtime/data-plane.ts';

test('GATEWAY_PARAMS win over admin parameters; forbidden ones are left out', () => {
  const { params, ignored } = varnishdParams({ max_retries: '1', vsl_reclen: '255', thread_pools: '4', cc_command: 'sh', vcc_allow_inline_c: 'on' });
  assert.deepEqual(params, { thread_pools: '4', ...GATEWAY_PARAMS });
  assert.deepEqual(ignored.sort(), ['cc_command', 'max_retries', 'vcc_allow_inline_c', 'vsl_reclen']);
});

test('-p options become parameters in command-line order; the others stay options', () => {
  assert.deepEqual(splitVarnishdArgs(['a=1', 'b=2'], ['-t', '60', '-p', 'a=3', '-W', 'epoll', '-p', 'max_retries=1']), {
    params: { a: '3', b: '2', max_retries: '1' },
    args: ['-t', '60', '-W', 'epoll'],
  });
});

test('the data plane merges -p options under the gateway parameters and refuses unchecked options', () => {
  const state = { ready: false, generation: 0, listeners: [] };
  const logger = pino({ level: 'silent' });
  const dp = new DataPlane({ workDir: '/nonexistent', logger, state, params: { thread_pools: '3' }, extraArgs: ['-p', 'max_retries=1', '-p', 'thread_pool_min=9', '-t', '5'] });
  assert.equal(dp.params.max_retries, GATEWAY_PARAMS.max_retries);
  assert.equal(dp.params.thread_pool_min, '9');
  assert.equal(dp.params.thread_pools, '3');
  assert.throws(() => new DataPlane({ workDir: '/x', logger, state, extraArgs: ['-f', '/etc/evil.vcl'] }), /option "-f" is not allowed/);
  assert.throws(() => new DataPlane({ workDir: '/x', logger, state, extraArgs: ['-p', 'cc_command=sh'] }), /cc_command is not allowed/);
  assert.throws(() => new DataPlane({ workDir: '/x', logger, state, storageBytes: 1000 }), /storage must be whole bytes/);
});

test('-r (read-only parameters) is refused: the agent changes cc_command at run time', () => {
  assert.throws(() => new DataPlane({ workDir: '/x', logger: pino({ level: 'silent' }), state: { ready: false, generation: 0, listeners: [] }, extraArgs: ['-r', 'cc_command'] }), /option "-r" is not allowed/);
});
