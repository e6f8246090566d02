// A large gateway starts with a few large shard VCLs and is split to its normal shard count
// right after it serves: the split happens without waiting for a change, and every existing
// host keeps answering 200 while it is deployed.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { startEchoServer, type EchoServer } from '../../src/echo/server.ts';
import { StandaloneServer } from '../../src/standalone/server.ts';
import { shardOf } from '../../src/vcl/shards.ts';
import { memoryLogger } from './support/chaperone-world.ts';
import { GATEWAY_CLASS, httpGateway, loopbackService, yamlDocs } from './support/manifests.ts';
import { eventually } from './support/poll.ts';

const ADDRESS = '127.0.117.1';
const PORT = 18081;
const NS = 'shop';
const SHARDS = 4;
const START_SHARDS = 2;

function get(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: ADDRESS, port: PORT, path: '/', headers: { host }, agent: false, timeout: 5000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
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

describe('coarse start', () => {
  let dir = '';
  let server: StandaloneServer;
  let echo: EchoServer;
  const log = memoryLogger('info');
  const live = () => log.lines().filter((l) => l.event === 'vcl-active') as { shards?: number; compiled?: number }[];
  const hosts: string[] = [];

  before(async () => {
    for (let i = 0; hosts.length < 8; i++) {
      const h = `h${i}.shop.test`;
      if (hosts.filter((x) => shardOf(x, SHARDS) === shardOf(h, SHARDS)).length < 2) hosts.push(h);
    }
    dir = await mkdtemp(join(tmpdir(), 'vgw-coarse-'));
    echo = await startEchoServer({ port: 0, pod: 'web-1-1', namespace: NS });
    const port = Number(new URL(echo.url).port);
    const docs = [GATEWAY_CLASS, httpGateway(NS, ADDRESS, PORT), ...loopbackService(NS, 'web', port), ...hosts.map((h, i) => route(`r${i}`, h))];
    await writeFile(join(dir, 'all.yaml'), yamlDocs(docs));
    server = new StandaloneServer({ dir, defaultAddress: '127.0.0.1', logger: log.logger, shards: SHARDS, startShards: START_SHARDS });
    await server.start();
  });

  after(async () => {
    await server?.stop();
    await echo?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('the first config goes live with the start shard count, then splits by itself, answering 200 throughout', async () => {
    assert.equal(server.state.ready, true, server.state.lastError?.message);
    assert.equal(live()[0]?.shards, START_SHARDS, 'the first config is coarse');
    const statuses = new Map<string, number>();
    let rounds = 0;
    // Every host, again and again, while the split set is compiled and put in use.
    await eventually('split to the normal shard count', async () => {
      for (const h of hosts) {
        const s = await get(h);
        statuses.set(`${h} ${s}`, (statuses.get(`${h} ${s}`) ?? 0) + 1);
      }
      rounds++;
      return live().some((l) => l.shards === SHARDS);
    }, 60_000, 0);
    for (const h of hosts) assert.equal(await get(h), 200, h);
    const other = [...statuses].filter(([k]) => !k.endsWith(' 200'));
    assert.deepEqual(other, [], `only 200s during the split (${rounds} rounds)`);
    assert.equal(live().length, 2, 'one coarse config, one split, nothing else');
    await eventually('/status says the split is live', () => server.state.startSplitPending === false && server.state.shardVcls === SHARDS);
  });

  test('after the split, a new route recompiles one shard of the normal count', async () => {
    await writeFile(join(dir, 'new.yaml'), stringify(route('added', 'added.shop.test')));
    await eventually('new route live', async () => (await get('added.shop.test')) === 200);
    assert.equal(server.state.lastReload?.compiled, 1);
    assert.equal(live().at(-1)?.shards, SHARDS);
  });
});
