// Standalone mode end to end: manifests on disk -> varnishd -> real echo backends.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile, unlink, readFile } from 'node:fs/promises';
import { createServer, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { startEchoServer, type EchoServer } from '../../src/echo/server.ts';
import { ofKind } from '../../src/gatewayapi/status.ts';
import { StandaloneServer } from '../../src/standalone/server.ts';
import { silentLogger } from '../../src/util/log.ts';
import { GATEWAY_CLASS, gwRoute, httpGateway, loopbackService, yamlDocs } from './support/manifests.ts';
import { eventually } from './support/poll.ts';

const service = (name: string, backend: EchoServer) => loopbackService(NS, name, Number(new URL(backend.url).port));
const route = (name: string, hostnames: string[], rules: object[]) => gwRoute(NS, name, hostnames, rules);

const GW_ADDRESS = '127.0.7.1';
const GW_PORT = 18080;
const NS = 'app';

interface Got {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

function get(host: string, path: string, headers: Record<string, string> = {}): Promise<Got> {
  return new Promise((resolve, reject) => {
    const req = request({ host: GW_ADDRESS, port: GW_PORT, path, headers: { host, ...headers }, agent: false, timeout: 5000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), headers: res.headers }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

const podOf = (g: Got) => (g.status === 200 ? (JSON.parse(g.body) as { pod: string }).pod : `status ${g.status}`);

describe('vgw serve (standalone)', () => {
  let dir = '';
  let server: StandaloneServer;
  let a: EchoServer;
  let b: EchoServer;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vgw-standalone-'));
    a = await startEchoServer({ port: 0, pod: 'svc-a-1-1', namespace: NS });
    b = await startEchoServer({ port: 0, pod: 'svc-b-1-1', namespace: NS });
    await writeFile(
      join(dir, 'gateway.yaml'),
      yamlDocs([
        GATEWAY_CLASS,
        httpGateway(NS, GW_ADDRESS, GW_PORT),
        ...service('svc-a', a),
        ...service('svc-b', b),
      ]),
    );
    await writeFile(join(dir, 'route-a.yaml'), yamlDocs([route('a', ['a.example.com'], [{ backendRefs: [{ name: 'svc-a', port: 80 }] }])]));
    server = new StandaloneServer({ dir, defaultAddress: '127.0.0.1', logger: silentLogger() });
    await server.start();
  });

  after(async () => {
    await server?.stop();
    await a?.close();
    await b?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('serves the initial config', async () => {
    assert.equal(server.state.ready, true);
    assert.equal(podOf(await get('a.example.com', '/')), 'svc-a-1-1');
    assert.equal((await get('A.Example.COM:18080', '/x')).status, 200, 'host is case-insensitive, port ignored');
    assert.equal((await get('unknown.example.com', '/')).status, 404);
  });

  test('a new route file goes live without a restart', async () => {
    const generation = server.state.generation;
    await writeFile(join(dir, 'route-b.yaml'), yamlDocs([route('b', ['b.example.com'], [{ backendRefs: [{ name: 'svc-b', port: 80 }] }])]));
    await eventually('route b serving', async () => (await get('b.example.com', '/')).status === 200, 15_000);
    assert.equal(podOf(await get('b.example.com', '/')), 'svc-b-1-1');
    assert.ok(server.state.generation > generation);
    assert.equal(server.state.activeVcl?.startsWith('vgw_'), true, 'reloaded through vcl.inline, not a varnishd restart');
  });

  test('an unparsable file is reported and the last good config keeps serving', async () => {
    await writeFile(join(dir, 'broken.yaml'), 'kind: HTTPRoute\nmetadata: [unclosed\n');
    await eventually('error reported', async () => server.state.lastError !== undefined, 15_000);
    assert.match(server.state.lastError?.message ?? '', /broken\.yaml:\d+/);
    assert.equal(podOf(await get('a.example.com', '/')), 'svc-a-1-1');
    assert.equal(podOf(await get('b.example.com', '/')), 'svc-b-1-1');
    // One author's broken file holds back nobody else's change...
    await writeFile(join(dir, 'route-d.yaml'), yamlDocs([route('d', ['d.example.com'], [{ backendRefs: [{ name: 'svc-a', port: 80 }] }])]));
    await eventually('route d serving beside the broken file', async () => (await get('d.example.com', '/')).status === 200, 15_000);
    assert.match(server.state.lastError?.message ?? '', /broken\.yaml:\d+/, 'still reported');
    // ...and a file that breaks keeps serving what it held at its last good parse.
    const routeB = await readFile(join(dir, 'route-b.yaml'), 'utf8');
    await writeFile(join(dir, 'route-b.yaml'), `${routeB}\n---\nkind: [unclosed\n`);
    await eventually('route-b.yaml reported', async () => /route-b\.yaml:\d+/.test(server.state.lastError?.message ?? ''), 15_000);
    assert.equal(podOf(await get('b.example.com', '/')), 'svc-b-1-1', 'route b keeps its last good content');
    await writeFile(join(dir, 'route-b.yaml'), routeB);
    await unlink(join(dir, 'route-d.yaml'));
    await unlink(join(dir, 'broken.yaml'));
    await eventually('error cleared after the fix', async () => server.state.lastError === undefined, 15_000);
    await eventually('route d gone', async () => (await get('d.example.com', '/')).status === 404, 15_000);
  });

  test('an invalid route is rejected alone; adversarial match values route literally', async () => {
    const nasty = 'v"}{"; return (synth(200)); } sub vcl_recv { C{ abort(); }C';
    await writeFile(
      join(dir, 'route-c.yaml'),
      yamlDocs([
        route('c', ['c.example.com'], [
          { matches: [{ headers: [{ name: 'X-Nasty', value: nasty }], path: { type: 'Exact', value: '/p"}{' } }], backendRefs: [{ name: 'svc-b', port: 80 }] },
          { backendRefs: [{ name: 'svc-a', port: 80 }] },
        ]),
        route('bad', ['bad.example.com'], [{ matches: [{ path: { type: 'RegularExpression', value: '(unclosed' } }], backendRefs: [{ name: 'svc-a', port: 80 }] }]),
      ]),
    );
    await eventually('route c serving', async () => (await get('c.example.com', '/')).status === 200, 15_000);
    assert.equal(podOf(await get('c.example.com', '/p"}{', { 'X-Nasty': nasty })), 'svc-b-1-1');
    assert.equal(podOf(await get('c.example.com', '/p"}{', { 'X-Nasty': `${nasty} ` + 'x' })), 'svc-a-1-1');
    assert.equal(podOf(await get('c.example.com', '/p"}{', { 'X-Nasty': 'v' })), 'svc-a-1-1');
    assert.equal((await get('bad.example.com', '/')).status, 404, 'the invalid route is not served');
    assert.ok(server.state.problems.some((p) => p.object === 'app/bad' && p.message.includes('UnsupportedValue')), JSON.stringify(server.state.problems));
    assert.equal(podOf(await get('a.example.com', '/')), 'svc-a-1-1', 'other routes keep serving');
  });

  test('a Service without ready endpoints answers 500, and serves once one is ready', async () => {
    const slice = (ready: boolean) => ({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: 'svc-e-1', namespace: NS, labels: { 'kubernetes.io/service-name': 'svc-e' } },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: Number(new URL(a.url).port) }],
      endpoints: [{ addresses: ['127.0.0.1'], conditions: { ready } }],
    });
    const svc = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'svc-e', namespace: NS }, spec: { ports: [{ name: 'http', port: 80 }] } };
    await writeFile(join(dir, 'route-e.yaml'), yamlDocs([svc, slice(false), route('e', ['e.example.com'], [{ backendRefs: [{ name: 'svc-e', port: 80 }] }])]));
    await eventually('no endpoints: 500', async () => (await get('e.example.com', '/')).status === 500, 15_000);
    await writeFile(join(dir, 'route-e.yaml'), yamlDocs([svc, slice(true), route('e', ['e.example.com'], [{ backendRefs: [{ name: 'svc-e', port: 80 }] }])]));
    await eventually('endpoint ready: 200', async () => (await get('e.example.com', '/')).status === 200, 15_000);
    await unlink(join(dir, 'route-e.yaml'));
  });

  test('removing a route file removes the route', async () => {
    await unlink(join(dir, 'route-b.yaml'));
    await eventually('route b gone', async () => (await get('b.example.com', '/')).status === 404, 15_000);
  });

  test('a listener that cannot be bound is reported and the previous listeners keep serving', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(GW_PORT + 10, GW_ADDRESS, resolve));
    try {
      await writeFile(join(dir, 'gateway2.yaml'), yamlDocs([httpGateway(NS, GW_ADDRESS, GW_PORT + 10, 'gw2')]));
      const pid = server.varnish?.pid;
      // Found by the bind probe: reported and left out, no varnishd restart for the others.
      await eventually('busy port reported', async () => (server.state.unavailableSockets ?? []).some((s) => s.port === GW_PORT + 10), 15_000);
      const gw2 = server.state.gateways?.find((g) => g.metadata.name === 'gw2');
      assert.match(JSON.stringify(gw2?.status), /PortUnavailable/);
      assert.equal(podOf(await get('a.example.com', '/')), 'svc-a-1-1');
      assert.equal(server.varnish?.pid, pid, 'varnishd was restarted');
    } finally {
      await unlink(join(dir, 'gateway2.yaml')).catch(() => undefined);
      blocker.close();
    }
  });

  test('a reload caused by an unrelated file keeps the lastTransitionTime of unchanged conditions', async () => {
    const routeA = () => server.statuses.filter(ofKind('HTTPRoute')).find((s) => s.metadata.name === 'a');
    const gatewayTimes = () => server.state.gateways?.find((g) => g.metadata.name === 'gw')?.status.conditions.map((c) => `${c.type} ${c.lastTransitionTime}`);
    await eventually('gw2 gone', async () => !server.statuses.some((s) => s.metadata.name === 'gw2'), 15_000);
    const before = routeA()?.status.parents[0].conditions;
    assert.ok(before?.length, 'route a has status');
    const gwBefore = gatewayTimes();
    await writeFile(join(dir, 'unrelated.yaml'), yamlDocs([route('z', ['z.example.com'], [{ backendRefs: [{ name: 'svc-b', port: 80 }] }])]));
    try {
      await eventually('route z reported', async () => server.statuses.some((s) => s.metadata.name === 'z'), 15_000);
      assert.deepEqual(routeA()?.status.parents[0].conditions, before, 'route a: same conditions, same times');
      assert.deepEqual(gatewayTimes(), gwBefore, 'the Gateway /status shows keeps its times');
    } finally {
      await unlink(join(dir, 'unrelated.yaml')).catch(() => undefined);
    }
  });
});
