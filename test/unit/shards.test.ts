// Shard assignment and the shard cache: cached output must equal a fresh compile.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { IR_VERSION, type EndpointMap, type IRVirtualHost, type RoutingIR } from '../../src/ir/types.ts';
import { compileSharded, HOST_KEY_MEMO_LIMIT, hostKeyMemoSize, MAX_SHARDS, shardCount, shardGroup, shardOf, UNSHARDED_VHOSTS, VHOSTS_PER_SHARD, type ShardCache } from '../../src/vcl/shards.ts';

function ir(hosts: string[], backendPort = 3000): { ir: RoutingIR; endpoints: EndpointMap } {
  const vhost = (hostname: string, i: number): IRVirtualHost => ({
    hostname,
    listener: 'ns/gw/http',
    routes: [{ id: `ns/r${i}/0/0`, match: { path: { type: 'PathPrefix', value: '/' }, headers: [], queryParams: [] }, action: { backends: [{ weight: 1, service: 0 }] } }],
  });
  return {
    ir: { version: IR_VERSION, sockets: [{ name: 'a127_0_0_1_80', address: '127.0.0.1', port: 80, vhosts: hosts.map(vhost) }], services: [{ namespace: 'ns', name: 'svc', port: 80, portName: '' }] },
    endpoints: new Map([['ns/svc:80', [{ address: '127.0.0.1', port: backendPort }]]]),
  };
}

test('shardOf is the last four bytes of SHA-256, little endian, modulo the count', () => {
  const h = 'foo.example.com';
  assert.equal(shardOf(h, 1 << 30), createHash('sha256').update(h).digest().readUInt32LE(28) % (1 << 30));
  // Value read off varnishd 7.1: directors.shard().key("foo.example.com") = 3750604989.
  assert.equal(shardOf(h, 2 ** 32), 3750604989);
});

test('shard keys are remembered per host, in a memo that stays bounded and gives the same answers', () => {
  const hash = (h: string) => createHash('sha256').update(h).digest().readUInt32LE(28);
  for (let i = 0; i < HOST_KEY_MEMO_LIMIT + 10; i++) shardOf(`memo${i}.test`, 64);
  assert.ok(hostKeyMemoSize() <= HOST_KEY_MEMO_LIMIT);
  // Asked again (remembered or not), every host gets the key SHA-256 gives it.
  for (const h of ['memo0.test', `memo${HOST_KEY_MEMO_LIMIT + 9}.test`, 'foo.example.com']) {
    assert.equal(shardOf(h, 2 ** 32), hash(h));
    assert.equal(shardOf(h, 2 ** 32), hash(h));
    assert.equal(shardOf(h, 7), hash(h) % 7);
  }
});

test('shard count doubles with the number of exact hosts and stays 1 for small configs', () => {
  const hosts = (n: number) => Array.from({ length: n }, (_, i) => `h${i}.test`);
  assert.equal(shardCount(ir(hosts(UNSHARDED_VHOSTS)).ir), 1);
  // Beyond the unsharded size, shards of at most VHOSTS_PER_SHARD vhosts, in powers of two.
  assert.equal(VHOSTS_PER_SHARD, 128);
  assert.equal(shardCount(ir(hosts(UNSHARDED_VHOSTS + 1)).ir), 4, '257 vhosts need 3 shards of 128: the next power of two is 4');
  assert.equal(shardCount(ir(hosts(2 * VHOSTS_PER_SHARD + 1)).ir), 4);
  assert.equal(shardCount(ir(hosts(4 * VHOSTS_PER_SHARD)).ir), 4);
  assert.equal(shardCount(ir(hosts(4 * VHOSTS_PER_SHARD + 1)).ir), 8);
  assert.equal(shardCount(ir(hosts(256 * VHOSTS_PER_SHARD)).ir), 64, 'the default count stops at 64');
  assert.equal(shardCount(ir([...hosts(10), '*.wild.test', '*']).ir), 1);
});

test('each exact host lands in exactly one shard; wildcards in all', () => {
  const hosts = [...Array.from({ length: 40 }, (_, i) => `h${i}.test`), '*.wild.test'];
  const out = compileSharded(ir(hosts).ir, ir(hosts).endpoints, 4);
  assert.equal(out.shards.length, 4);
  for (let i = 0; i < 40; i++) {
    const holders = out.shards.filter((s) => s.includes(`"a127_0_0_1_80=h${i}.test"`)).length;
    assert.equal(holders, 1, `h${i}.test`);
  }
  assert.ok(out.shards.every((s) => s.includes('"a127_0_0_1_80*wild.test"')));
  assert.match(out.main, /return \(vcl\(vgw_shard_4_3\)\)/);
});

test('the shard cache returns exactly what a fresh compile would, and notices changes', () => {
  const cache: ShardCache = new Map();
  const hosts = Array.from({ length: 30 }, (_, i) => `h${i}.test`);
  const a = ir(hosts);
  assert.deepEqual(compileSharded(a.ir, a.endpoints, 4, cache), compileSharded(a.ir, a.endpoints, 4));
  const b = ir([...hosts, 'new.test']);
  assert.deepEqual(compileSharded(b.ir, b.endpoints, 4, cache), compileSharded(b.ir, b.endpoints, 4));
  const c = ir([...hosts, 'new.test'], 4000);
  const cached = compileSharded(c.ir, c.endpoints, 4, cache);
  assert.deepEqual(cached, compileSharded(c.ir, c.endpoints, 4));
  assert.ok(cached.shards.every((s) => s.includes('.port = "4000"')), 'an endpoint change reaches every shard using the Service');
});

test('the shard cache compares vhosts by identity first, and by content when identities differ', () => {
  const cache: ShardCache = new Map();
  const hosts = Array.from({ length: 30 }, (_, i) => `h${i}.test`);
  const a = ir(hosts);
  const first = compileSharded(a.ir, a.endpoints, 4, cache);
  // The same vhost objects (as an incremental translation hands out for untouched hosts): the
  // cached text is taken without looking inside. Changing an object in place is therefore not
  // seen, which is what shows the identity path was taken (the IR is never changed in place).
  const vhosts = a.ir.sockets[0].vhosts;
  const shardOfH0 = first.shards.findIndex((s) => s.includes('=h0.test"'));
  assert.ok(shardOfH0 >= 0);
  vhosts[0].routes[0].match.path.value = '/moved';
  assert.equal(compileSharded(a.ir, a.endpoints, 4, cache).shards[shardOfH0], first.shards[shardOfH0]);
  // New objects with that content (a full translation, a decoded config): compared as JSON.
  const copy = structuredClone(a.ir);
  const second = compileSharded(copy, a.endpoints, 4, cache);
  assert.deepEqual(second, compileSharded(copy, a.endpoints, 4));
  assert.ok(second.shards[shardOfH0].includes('/moved'));
  // An equal copy again: same texts as a fresh compile.
  const third = structuredClone(copy);
  assert.deepEqual(compileSharded(third, a.endpoints, 4, cache), compileSharded(third, a.endpoints, 4));
});

test('--shards accepts exactly the counts the compiler can build', async () => {
  const { SHARDS_FLAG_MAX, serveFlags } = await import('../../src/util/flags.ts');
  assert.equal(SHARDS_FLAG_MAX, MAX_SHARDS);
  const flags = (shards: string) => serveFlags.safeParse({ address: '0.0.0.0', 'path-normalization': 'on', 'admin-port': '9901', 'admin-address': '127.0.0.1', shards });
  assert.equal(flags(String(MAX_SHARDS)).success, true);
  assert.equal(flags('1').success, true);
  assert.match(flags(String(MAX_SHARDS + 1)).error?.issues[0]?.message ?? '', /--shards must be 1-256/);
  assert.equal(flags('0').success, false);
});

test('the dispatcher switch groups shards by about the square root of their count', () => {
  assert.deepEqual([2, 8, 16, 64, 128, 256].map(shardGroup), [8, 8, 8, 8, 16, 16]);
  // Every shard is reachable exactly once, through its own label.
  for (const count of [16, 128, 256]) {
    const main = compileSharded(ir(Array.from({ length: count * 2 }, (_, i) => `g${i}.test`)).ir, new Map(), count).main;
    for (let i = 0; i < count; i++) assert.equal(main.split(`vgw_shard_${count}_${i})`).length - 1, 1, `shard ${i} of ${count}`);
  }
});
