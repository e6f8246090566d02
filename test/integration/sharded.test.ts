// Sharded VCL end to end: exact hosts spread over shard VCLs behind a dispatcher, a route
// change recompiles one shard, wildcard vhosts reach every shard, and the set survives a
// crash of varnishd's manager.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { startEchoServer, type EchoServer } from '../../src/echo/server.ts';
import { StandaloneServer } from '../../src/standalone/server.ts';
import { silentLogger } from '../../src/util/log.ts';
import { shardOf } from '../../src/vcl/shards.ts';
import { GATEWAY_CLASS, httpGateway, loopbackService, yamlDocs } from './support/manifests.ts';
import { eventually } from './support/poll.ts';

const ADDRESS = '127.0.7.2';
const PORT = 18081;
const NS = 'shop';
// More than one group of the dispatcher's two-level switch (src/vcl/shards.ts, shardGroup).
const SHARDS = 16;

function get(host: string, path = '/'): Promise<{ status: number; pod?: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: ADDRESS, port: PORT, path, headers: { host }, agent: false, timeout: 5000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString();
        resolve({ status: res.statusCode ?? 0, pod: res.statusCode === 200 ? (JSON.parse(body) as { pod: string }).pod : undefined });
      });
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

const route = (name: string, hostname: string) => ({
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'HTTPRoute',
  metadata: { name, namespace: NS },
  spec: { parentRefs: [{ name: 'gw' }], hostnames: [hostname], rules: [{ backendRefs: [{ name: 'web', port: 80 }] }] },
});

describe('sharded VCL', () => {
  let dir = '';
  let server: StandaloneServer;
  let echo: EchoServer;
  // Hosts chosen so that every shard holds at least one.
  const hosts: string[] = [];

  before(async () => {
    for (let i = 0; new Set(hosts.map((h) => shardOf(h, SHARDS))).size < SHARDS; i++) {
      const h = `h${i}.shop.test`;
      if (hosts.filter((x) => shardOf(x, SHARDS) === shardOf(h, SHARDS)).length < 2) hosts.push(h);
    }
    assert.equal(new Set(hosts.map((h) => shardOf(h, SHARDS))).size, SHARDS);
    dir = await mkdtemp(join(tmpdir(), 'vgw-sharded-'));
    echo = await startEchoServer({ port: 0, pod: 'web-1-1', namespace: NS });
    const port = Number(new URL(echo.url).port);
    const docs = [
      GATEWAY_CLASS,
      httpGateway(NS, ADDRESS, PORT),
      ...loopbackService(NS, 'web', port),
      ...hosts.map((h, i) => route(`r${i}`, h)),
    ];
    await writeFile(join(dir, 'all.yaml'), yamlDocs(docs));
    server = new StandaloneServer({ dir, defaultAddress: '127.0.0.1', logger: silentLogger(), shards: SHARDS });
    await server.start();
    // start() returns once a first attempt is made; a varnishd that could not start yet (its
    // port still held by a process that is going away) is started again in the background.
    await eventually('the config is live', () => server.state.ready, 60_000);
  });

  after(async () => {
    await server?.stop();
    await echo?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('every host is served through its shard; unknown hosts get 404', async () => {
    assert.equal(server.state.ready, true, server.state.lastError?.message);
    for (const h of hosts) assert.equal((await get(h)).pod, 'web-1-1', h);
    assert.equal((await get('H0.SHOP.TEST:18081')).status, 200, 'host is lowercased and its port dropped before hashing');
    assert.equal((await get('nope.shop.test')).status, 404);
  });

  test('adding a route recompiles only its shard', async () => {
    await writeFile(join(dir, 'new.yaml'), stringify(route('added', 'added.shop.test')));
    const before = server.state.generation;
    await eventually('new route live', async () => server.state.generation > before && (await get('added.shop.test')).status === 200);
    assert.equal(server.state.lastReload?.compiled, 1, 'one shard VCL compiled, dispatcher untouched');
    for (const h of hosts) assert.equal((await get(h)).status, 200, h);
  });

  test('a wildcard route reaches hosts of every shard', async () => {
    await writeFile(join(dir, 'wild.yaml'), stringify(route('wild', '*.wild.test')));
    // Each shard's label moves on its own, so one host answering is not the reload done: wait for it.
    const before = server.state.generation;
    await eventually('wildcard live', async () => server.state.generation > before && (await get('a.wild.test')).status === 200);
    assert.equal(server.state.lastReload?.compiled, SHARDS, 'the wildcard vhost lives in every shard');
    for (let i = 0; i < 16; i++) assert.equal((await get(`x${i}.wild.test`)).status, 200);
    assert.equal((await get('wild.test')).status, 404, 'the apex is not covered by the wildcard');
  });

  test('after varnishd\'s manager dies, the whole set is deployed again', async () => {
    const varnish = server.varnish;
    assert.ok(varnish?.pid);
    const before = varnish.managerRestarts;
    process.kill(varnish.pid, 'SIGKILL');
    await eventually('manager relaunched', async () => varnish.managerRestarts > before);
    await eventually('set redeployed', async () => (await get(hosts[0])).status === 200 && (await get('added.shop.test')).status === 200);
    for (const h of hosts) assert.equal((await get(h)).status, 200, h);
    assert.equal((await get('b.wild.test')).status, 200);
  });
});
