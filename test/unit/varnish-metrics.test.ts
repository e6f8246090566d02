// varnishstat JSON -> snapshot -> varnish_* metrics, on a captured varnishstat 7.1 output
// (fixtures/varnishstat-7.1.json, trimmed): VCL vgw_1 (available) and vgw_2 (active) loaded,
// both declaring the backend of 127.0.0.1:18999, vgw_1 also 127.0.0.1:1 and vgw_2 also
// 127.0.0.1:2 (backends named after their address, src/vcl/backend-names.ts); 9 client
// requests, 2 keep-alive connections open.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { Registry } from 'prom-client';
import { registerVarnishMetrics, varnishMetricOf } from '../../src/metrics/varnish.ts';
import {
  activeSessions,
  parseCounters,
  parseVarnishstat,
  SnapshotBuilder,
  splitVbe,
  type StatsCounter,
  type StatsSnapshot,
} from '../../src/varnish/stats.ts';

const FIXTURE = readFileSync(new URL('./fixtures/varnishstat-7.1.json', import.meta.url), 'utf8');

/** The fixture's backends: in both VCLs, in vgw_1 only, in vgw_2 only. */
const LIVE = 'vgw_e4_127_0_0_1_18999';
const FAIL1 = 'vgw_e4_127_0_0_1_1';
const FAIL2 = 'vgw_e4_127_0_0_1_2';

/** The fixture's counters with some changed: a value, a new name, or undefined to remove. */
function edit(changes: Record<string, number | string | undefined>, base: ReadonlyMap<string, StatsCounter> = parseCounters(FIXTURE)): Map<string, StatsCounter> {
  const out = new Map(base);
  for (const [name, v] of Object.entries(changes)) {
    if (v === undefined) out.delete(name);
    else if (typeof v === 'string') {
      // Rename: the counter `v` now lives under `name`.
      out.set(name, out.get(v)!);
      out.delete(v);
    } else out.set(name, { ...(out.get(name) ?? { type: 'counter', description: '', format: 'i' }), value: v });
  }
  return out;
}

function sum(s: StatsSnapshot, pattern: RegExp): number {
  let n = 0;
  for (const [name, c] of s.counters) if (pattern.test(name)) n += c.value;
  return n;
}

function samples(text: string): string[] {
  return text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
}

/** Series identity: name and labels, value left out. */
function seriesKeys(text: string): string[] {
  return samples(text)
    .map((l) => l.slice(0, l.lastIndexOf(' ')))
    .sort();
}

describe('varnishstat JSON parsing', () => {
  const s = parseVarnishstat(FIXTURE, new Date(0));

  test('every counter with its type, format and description', () => {
    assert.equal(s.counters.size, 83);
    assert.deepEqual(s.counters.get('MAIN.client_req'), { value: 9, type: 'counter', description: 'Good client requests received', format: 'i' });
    assert.equal(s.counters.get('MAIN.n_backend')?.type, 'gauge');
    assert.equal(s.counters.get('MAIN.uptime')?.format, 'd');
    assert.equal(s.counters.get('MAIN.s_resp_bodybytes')?.format, 'B');
    assert.equal(s.counters.get(`VBE.vgw_1.${LIVE}.happy`)?.type, 'bitmap');
    assert.equal(s.time.getTime(), 0);
  });

  test('counter() reads one value; unknown names are undefined', () => {
    assert.equal(s.counter('MAIN.cache_hit'), 3);
    assert.equal(s.counter('MAIN.cache_miss'), 6);
    assert.equal(s.counter('MAIN.nope'), undefined);
  });

  test('snapshots are immutable', () => {
    assert.ok(Object.isFrozen(s));
    assert.ok(Object.isFrozen(s.counters.get('MAIN.client_req')));
    assert.throws(() => {
      (s as { time: Date }).time = new Date();
    });
  });

  test('malformed entries are skipped; 6.x output (counters at the top level) is read too', () => {
    const six = parseCounters(JSON.stringify({ timestamp: 'x', 'MAIN.a': { description: 'A', flag: 'c', format: 'i', value: 1 }, 'MAIN.b': { flag: 'z', value: 2 }, 'MAIN.c': 'junk' }));
    assert.deepEqual([...six.keys()], ['MAIN.a']);
    assert.throws(() => parseCounters('not json'));
  });
});

describe('active sessions', () => {
  test('sum of the session mempools in use', () => {
    const s = parseVarnishstat(FIXTURE);
    assert.equal(activeSessions(s), 2);
    // At rest, the counter formula agrees: sessions accepted minus sessions closed, all reasons.
    assert.equal(s.counter('MAIN.sess_conn')! - sum(s, /^MAIN\.sc_/), 2);
    // sess_closed + sess_closed_err miss the sessions the client closed.
    assert.notEqual(s.counter('MAIN.sess_conn')! - s.counter('MAIN.sess_closed')! - s.counter('MAIN.sess_closed_err')!, 2);
  });

  test('without mempool counters, sess_conn minus the sc_* counters', () => {
    const counters = edit({ 'MEMPOOL.sess0.live': undefined, 'MEMPOOL.sess1.live': undefined });
    assert.equal(activeSessions(new SnapshotBuilder().build(counters, new Date())), 2);
    const none = edit({ 'MEMPOOL.sess0.live': undefined, 'MEMPOOL.sess1.live': undefined, 'MAIN.sess_conn': undefined });
    assert.equal(activeSessions(new SnapshotBuilder().build(none, new Date())), undefined);
  });
});

describe('counter names to metric names and labels', () => {
  test('type and field, object part as a label', () => {
    const cases: [string, ReturnType<typeof varnishMetricOf>][] = [
      ['MAIN.client_req', { name: 'varnish_main_client_req', labels: {} }],
      ['MAIN.cache_hit', { name: 'varnish_main_cache_hit', labels: {} }],
      ['MGT.child_start', { name: 'varnish_mgt_child_start', labels: {} }],
      ['SMA.s0.c_req', { name: 'varnish_sma_c_req', labels: { storage: 's0' } }],
      ['SMA.Transient.c_req', { name: 'varnish_sma_c_req', labels: { storage: 'Transient' } }],
      ['LCK.sma.locks', { name: 'varnish_lck_locks', labels: { lock: 'sma' } }],
      ['MEMPOOL.sess0.live', { name: 'varnish_mempool_live', labels: { pool: 'sess0' } }],
      ['KVSTORE.vmod.x.hits', { name: 'varnish_kvstore_hits', labels: { id: 'vmod.x' } }],
      ['FOO.Bad-Name', { name: 'varnish_foo_bad_name', labels: {} }],
      [`VBE.vgw_1.${LIVE}.req`, null],
      ['nodot', null],
      ['MAIN.', null],
    ];
    for (const [counter, want] of cases) assert.deepEqual(varnishMetricOf(counter), want, counter);
  });

  test('VBE names split into VCL, backend and field; backend names may hold dots', () => {
    assert.deepEqual(splitVbe(`VBE.vgw_1.${LIVE}.req`), { vcl: 'vgw_1', backend: LIVE, field: 'req' });
    assert.deepEqual(splitVbe('VBE.vgw_2.d1(10.0.0.1:80).conn'), { vcl: 'vgw_2', backend: 'd1(10.0.0.1:80)', field: 'conn' });
    assert.equal(splitVbe('VBE.x'), null);
    assert.equal(splitVbe('MAIN.client_req'), null);
  });
});

describe('per-backend counters', () => {
  test('one label per address:port, decoded from the backend name, summed over the loaded VCLs', () => {
    const s = parseVarnishstat(FIXTURE);
    assert.deepEqual([...s.backends.keys()].sort(), ['127.0.0.1:1', '127.0.0.1:18999', '127.0.0.1:2']);
    assert.equal(s.backends.get('127.0.0.1:18999')?.get('req')?.value, s.counter(`VBE.vgw_1.${LIVE}.req`)! + s.counter(`VBE.vgw_2.${LIVE}.req`)!);
    assert.equal(s.backends.get('127.0.0.1:1')?.get('fail_econnrefused')?.value, s.counter(`VBE.vgw_1.${FAIL1}.fail_econnrefused`));
    assert.equal(s.backends.get('127.0.0.1:2')?.get('fail_econnrefused')?.value, s.counter(`VBE.vgw_2.${FAIL2}.fail_econnrefused`));
    assert.equal(s.backends.get('127.0.0.1:18999')?.get('conn')?.type, 'gauge');
    assert.equal(s.backends.get('127.0.0.1:18999')?.get('happy'), undefined, 'bitmaps are left out');
  });

  test('IPv6 backends are labelled [address]:port; backends not named by us keep their name', () => {
    const req = (n: number) => ({ value: n, type: 'counter', description: 'Backend requests sent', format: 'i' }) as const;
    const counters = new Map([
      ['VBE.vgw_1.vgw_e6_fd00__1_80.req', req(1)],
      ['VBE.vgw_2.vgw_e6_fd00__1_80.req', req(2)],
      ['VBE.vgw_2.default.req', req(3)],
      ['VBE.vgw_2.vgw_e0.req', req(4)],
      ['VBE.vgw_2.d1(10.0.0.1:80).req', req(5)],
    ]);
    const s = new SnapshotBuilder().build(counters, new Date());
    assert.deepEqual(
      Object.fromEntries([...s.backends].map(([label, fields]) => [label, fields.get('req')?.value])),
      { '[fd00::1]:80': 3, default: 3, vgw_e0: 4, 'd1(10.0.0.1:80)': 5 },
    );
  });

  test('a discarded VCL keeps counting in its backends while they are loaded; a gone backend takes its counts along', () => {
    const b = new SnapshotBuilder();
    const first = b.build(parseCounters(FIXTURE), new Date());
    const req0 = first.backends.get('127.0.0.1:18999')!.get('req')!.value;
    // vgw_1 discarded, one more backend request through vgw_2.
    const vgw1 = [...parseCounters(FIXTURE).keys()].filter((n) => n.startsWith('VBE.vgw_1.'));
    const second = b.build(edit({ ...Object.fromEntries(vgw1.map((n) => [n, undefined])), [`VBE.vgw_2.${LIVE}.req`]: first.counter(`VBE.vgw_2.${LIVE}.req`)! + 1 }), new Date());
    assert.equal(second.backends.get('127.0.0.1:18999')!.get('req')!.value, req0 + 1);
    assert.equal(second.backends.get('127.0.0.1:18999')!.get('conn')!.value, second.counter(`VBE.vgw_2.${LIVE}.conn`), 'gauges: loaded VCLs only');
    assert.equal(second.backends.has('127.0.0.1:1'), false);
    // Reload: vgw_3 (same backends) replaces vgw_2 and starts from 0.
    const renamed = Object.fromEntries([...second.counters.keys()].filter((n) => n.startsWith('VBE.vgw_2.')).map((n) => [n.replace('vgw_2', 'vgw_3'), n]));
    const third = b.build(edit({ [`VBE.vgw_3.${LIVE}.req`]: 0 }, edit(renamed, second.counters)), new Date());
    assert.equal(third.backends.get('127.0.0.1:18999')!.get('req')!.value, req0 + 1, 'never goes back across reloads');
    const fourth = b.build(edit({ [`VBE.vgw_3.${LIVE}.req`]: 2 }, third.counters), new Date());
    assert.equal(fourth.backends.get('127.0.0.1:18999')!.get('req')!.value, req0 + 3);
  });

  test('a restarted child starts every sum again', () => {
    const b = new SnapshotBuilder();
    const first = b.build(parseCounters(FIXTURE), new Date());
    const vgw1 = Object.fromEntries([...first.counters.keys()].filter((n) => n.startsWith('VBE.vgw_1.')).map((n) => [n, undefined]));
    const second = b.build(edit(vgw1), new Date());
    assert.equal(second.backends.get('127.0.0.1:18999')!.get('req')!.value, first.backends.get('127.0.0.1:18999')!.get('req')!.value, 'vgw_1 kept');
    // New child: varnishd's counters start from 0, so do the kept ones.
    const third = b.build(edit({ ...vgw1, 'MGT.child_start': 2, 'MAIN.uptime': 1, [`VBE.vgw_2.${LIVE}.req`]: 0 }), new Date());
    assert.equal(third.backends.get('127.0.0.1:18999')!.get('req')!.value, 0);
  });
});

describe('registerVarnishMetrics', () => {
  const snapshot = new SnapshotBuilder().build(parseCounters(FIXTURE), new Date());

  test('every non-bitmap counter, typed, with its description as HELP', async () => {
    const registry = new Registry();
    registerVarnishMetrics(registry, () => snapshot);
    const text = await registry.metrics();
    assert.match(text, /^# HELP varnish_main_client_req Good client requests received$/m);
    assert.match(text, /^# TYPE varnish_main_client_req counter$/m);
    assert.match(text, /^varnish_main_client_req 9$/m);
    assert.match(text, /^varnish_main_cache_hit 3$/m);
    assert.match(text, /^varnish_main_cache_miss 6$/m);
    assert.match(text, /^# TYPE varnish_main_n_backend gauge$/m);
    assert.match(text, /^varnish_mgt_child_start 1$/m);
    assert.match(text, /^varnish_sma_c_req\{storage="s0"\} \d+$/m);
    assert.match(text, /^varnish_lck_locks\{lock="sma"\} \d+$/m);
    assert.match(text, /^varnish_mempool_live\{pool="sess0"\} 1$/m);
    assert.match(text, /^# TYPE varnish_sessions_active gauge$/m);
    assert.match(text, /^varnish_sessions_active 2$/m);
    const req = snapshot.backends.get('127.0.0.1:18999')!.get('req')!.value;
    assert.match(text, new RegExp(`^varnish_backend_req\\{backend="127.0.0.1:18999"\\} ${req}$`, 'm'));
    assert.match(text, /^# TYPE varnish_backend_conn gauge$/m);
    assert.match(text, /^varnish_backend_fail_econnrefused\{backend="127.0.0.1:2"\} 1$/m);
    assert.doesNotMatch(text, /happy|vgw_1|vgw_2|vgw_e/, 'no bitmaps, no VCL or backend names');
    // Every counter of the fixture is a series: 83 counters, 4 bitmaps, 6x2 VBE fields folded
    // into 3 labels, plus varnish_sessions_active.
    assert.equal(samples(text).length, 83 - 4 - 20 + 5 * 3 + 1);
  });

  test('nothing before the first snapshot; families appear in the first scrape that has one', async () => {
    const registry = new Registry();
    let current: StatsSnapshot | null = null;
    registerVarnishMetrics(registry, () => current);
    assert.equal(samples(await registry.metrics()).length, 0);
    current = snapshot;
    assert.match(await registry.metrics(), /^varnish_main_client_req 9$/m);
  });

  test('a reload (same backends under a new VCL name) changes no series', async () => {
    // vgw_4 has the same text as vgw_1.
    const b = new SnapshotBuilder();
    let current = b.build(parseCounters(FIXTURE), new Date());
    const registry = new Registry();
    registerVarnishMetrics(registry, () => current);
    const before = seriesKeys(await registry.metrics());
    const vgw1 = Object.fromEntries([...current.counters.keys()].filter((n) => n.startsWith('VBE.vgw_1.')).map((n) => [n.replace('vgw_1', 'vgw_4'), n]));
    current = b.build(edit(vgw1), new Date());
    assert.deepEqual(seriesKeys(await registry.metrics()), before);
  });

  test('once per registry', () => {
    const registry = new Registry();
    registerVarnishMetrics(registry, () => null);
    assert.throws(() => registerVarnishMetrics(registry, () => null), /already registered/);
  });
});
