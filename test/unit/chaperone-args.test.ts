// `vgw chaperone` flags: probes on all addresses, /status and /metrics on loopback by default,
// every flag checked before anything starts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UsageError } from '../../src/cli/args.ts';
import { join } from 'node:path';
import { parseChaperoneArgs, varnishdSettings } from '../../src/cli/chaperone.ts';
import type { GatewayInfra } from '../../src/ir/infra.ts';
import { FORBIDDEN_VARNISHD_PARAMS } from '../../src/ir/varnishd-settings.ts';
import { renderInfrastructure, VSM_DIR, WORK_DIR } from '../../src/operator/infrastructure.ts';
import { parseParameters, type GatewayClassParametersInput } from '../../src/operator/parameters.ts';
import { VARNISHD_DIR } from '../../src/runtime/data-plane.ts';
import { INSTANCE_DIR_NAME } from '../../src/varnish/lifeline.ts';

test('defaults: probes on 0.0.0.0:9901, status and metrics on 127.0.0.1:9902', () => {
  const a = parseChaperoneArgs(['--gateway', 'shop/public'], {});
  assert.deepEqual([a.gateway, a['probe-address'], a['probe-port'], a['metrics-address'], a['metrics-port']], ['shop/public', '0.0.0.0', 9901, '127.0.0.1', 9902]);
  assert.equal(parseChaperoneArgs([], { GATEWAY_NAMESPACE: 'shop', GATEWAY_NAME: 'public' }).gateway, 'shop/public');
});

test('--listen-ports: the ports the pod listens on, sorted and unique; absent means every port of the config', () => {
  assert.equal(parseChaperoneArgs(['--gateway', 'a/b'], {})['listen-ports'], undefined);
  assert.deepEqual(parseChaperoneArgs(['--gateway', 'a/b', '--listen-ports=9090,8080,9090'], {})['listen-ports'], [8080, 9090]);
  assert.deepEqual(parseChaperoneArgs(['--gateway', 'a/b', '--listen-ports='], {})['listen-ports'], []);
  for (const bad of ['0', '65536', '80,', 'http', '1,2,x']) {
    assert.throws(() => parseChaperoneArgs(['--gateway', 'a/b', `--listen-ports=${bad}`], {}), (err: Error) => err instanceof UsageError && /--listen-ports/.test(err.message), bad);
  }
  const many = Array.from({ length: 65 }, (_, i) => 1000 + i).join(',');
  assert.throws(() => parseChaperoneArgs(['--gateway', 'a/b', `--listen-ports=${many}`], {}), /at most 64 ports/);
});

test('varnishd listens on --listen-address (default all addresses), whatever addresses the routing config names', () => {
  assert.equal(parseChaperoneArgs(['--gateway', 'a/b'], {})['listen-address'], '0.0.0.0');
  // The flag only: a POD_IP in the environment is not read (the Deployment passes it as the flag).
  assert.equal(parseChaperoneArgs(['--gateway', 'a/b'], { POD_IP: '10.1.2.3' })['listen-address'], '0.0.0.0');
  assert.equal(parseChaperoneArgs(['--gateway', 'a/b', '--listen-address=10.1.2.3'], {})['listen-address'], '10.1.2.3');
  assert.equal(parseChaperoneArgs(['--gateway', 'a/b', '--listen-address', 'fd00::7'], {})['listen-address'], 'fd00::7');
  for (const bad of ['$(POD_IP)', '', 'pod.local', '10.0.0.1:80']) {
    assert.throws(() => parseChaperoneArgs(['--gateway', 'a/b', `--listen-address=${bad}`], {}), (err: Error) => err instanceof UsageError && /--listen-address must be an IP address/.test(err.message), bad);
  }
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

// The flags the operator's Deployment passes, taken straight from renderInfrastructure so that
// renderer and agent cannot drift apart.
const gatewayIdentity = { namespace: 'shop', name: 'public', uid: 'u-1' };
const oneListener: GatewayInfra = { listeners: [{ name: 'http', protocol: 'HTTP', port: 80, hostname: '*', certificateRefs: [] }], addresses: [], labels: {}, annotations: {} };

function renderedArgs(spec: GatewayClassParametersInput): string[] {
  const parsed = parseParameters({ apiVersion: 'gateway.vgw.dev/v1alpha1', kind: 'GatewayClassParameters', metadata: { name: 'p' }, spec });
  assert.ok(parsed.ok, parsed.ok ? '' : parsed.error);
  const r = renderInfrastructure(gatewayIdentity, oneListener, parsed.value.spec, { defaultImage: 'vgw:test' });
  const c = r.deployment.spec?.template.spec?.containers[0];
  assert.deepEqual(c?.command, ['tini', '--', 'vgw', 'chaperone']);
  // As the kubelet starts the container: $(POD_IP) expanded from the downward-API variable.
  assert.equal(c?.env?.find((e) => e.name === 'POD_IP')?.valueFrom?.fieldRef?.fieldPath, 'status.podIP');
  return (c?.args ?? []).map((a) => a.replaceAll('$(POD_IP)', POD_IP));
}
const POD_IP = '10.244.1.7';

test('every flag the rendered Deployment passes parses, into the varnishd settings it names', () => {
  const argv = renderedArgs({
    varnish: {
      storageSize: '1Gi',
      parameters: { thread_pools: '4', feature: '+http2', max_retries: '1', workspace_client: '128k' },
      extraArgs: ['-t', '60', '-p', 'thread_pool_min=20', '-W', 'epoll', '-i', 'gw-1', '-h', 'critbit'],
    },
  });
  const a = parseChaperoneArgs(argv, {});
  assert.equal(a.gateway, 'shop/public');
  assert.equal(a['listen-address'], POD_IP);
  assert.equal(a['work-dir'], WORK_DIR);
  assert.equal(a.storage, 2 ** 30);
  const settings = varnishdSettings(a);
  assert.equal(settings.storageBytes, 2 ** 30);
  assert.deepEqual(settings.params, { feature: '+http2', max_retries: '1', thread_pools: '4', workspace_client: '128k', thread_pool_min: '20' });
  assert.deepEqual(settings.varnishdArgs, ['-t', '60', '-W', 'epoll', '-i', 'gw-1', '-h', 'critbit']);
  // The defaults too: storage only.
  const plain = parseChaperoneArgs(renderedArgs({}), {});
  assert.equal(plain.storage, 256 * 2 ** 20);
  assert.deepEqual(varnishdSettings(plain), { params: {}, varnishdArgs: [], storageBytes: 256 * 2 ** 20 });
});

test('the agent refuses the varnishd settings the parameters schema refuses, naming the flag', () => {
  const base = ['--gateway', 'a/b'];
  const cases: [string[], RegExp][] = [
    ...FORBIDDEN_VARNISHD_PARAMS.map((name): [string[], RegExp] => [['--varnishd-param', `${name}=x`], new RegExp(`--varnishd-param "${name}=x": parameter ${name} is not allowed`)]),
    [['--varnishd-param', 'thread_pools'], /--varnishd-param "thread_pools": must be NAME=VALUE/],
    [['--varnishd-param', 'Thread=1'], /--varnishd-param "Thread=1": parameter name must match/],
    [['--varnishd-param', 'thread_pools=1 2'], /--varnishd-param "thread_pools=1 2": parameter value must match/],
    [['--varnishd-param', 'vcl_path=/tmp'], /--varnishd-param "vcl_path=\/tmp": parameter vcl_path is not allowed/],
    [['--varnishd-arg=-p', '--varnishd-arg=cc_command=sh'], /--varnishd-arg \(2\. of 2\): -p parameter cc_command is not allowed/],
    [['--varnishd-arg=-p', '--varnishd-arg=vcc_allow_inline_c=on'], /--varnishd-arg .*vcc_allow_inline_c is not allowed/],
    [['--varnishd-arg=-f', '--varnishd-arg=/etc/evil.vcl'], /--varnishd-arg \(1\. of 2\): option "-f" is not allowed/],
    [['--varnishd-arg=-a', '--varnishd-arg=:81'], /--varnishd-arg .*option "-a" is not allowed/],
    [['--varnishd-arg=-s', '--varnishd-arg=file,/tmp/x'], /--varnishd-arg .*option "-s" is not allowed/],
    [['--varnishd-arg=-t'], /--varnishd-arg .*option -t needs a value/],
    [['--varnishd-arg=-t', '--varnishd-arg=6 0'], /--varnishd-arg .*value of -t must match/],
    [['--varnishd-arg', '-t'], /--varnishd-arg/],
    [['--storage', 'file,/tmp/x,1G'], /--storage must be BYTES or malloc,BYTES/],
    [['--storage', '1G'], /--storage must be BYTES or malloc,BYTES/],
    [['--storage', 'malloc,1000'], /--storage: storage must be whole bytes from 1048576/],
    [['--storage', '99999999999999999'], /--storage must be BYTES or malloc,BYTES/],
    [Array.from({ length: 65 }, (_, i) => ['--varnishd-param', `p${i}=1`]).flat(), /--varnishd-param may be given at most 64 times/],
  ];
  for (const [argv, message] of cases) {
    assert.throws(() => parseChaperoneArgs([...base, ...argv], {}), (err: Error) => err instanceof UsageError && message.test(err.message), `${argv.join(' ')}`);
  }
  assert.equal(parseChaperoneArgs([...base, '--storage', '1048576'], {}).storage, 2 ** 20);
});

test('the sidecar reads the VSM directory every varnishd of the agent uses', () => {
  assert.equal(VSM_DIR, join(WORK_DIR, VARNISHD_DIR, INSTANCE_DIR_NAME));
});
