import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { GCC_COMMAND } from '../../src/varnish/cc.ts';
import { VarnishCli, VarnishCliError, formatCommand, heredocToken, quoteCliArg } from '../../src/varnish/cli.ts';
import { processesOf } from '../../src/varnish/lifeline.ts';
import { VclReloader, type ReloadResult } from '../../src/varnish/reloader.ts';
import { parseVclList } from '../../src/varnish/vcl-list.ts';
import { Varnishd, type VarnishdEvent, type VarnishdOptions, type VarnishListener } from '../../src/varnish/varnishd.ts';

/** Synth-only VCL: answers with `tag` and the listener name, no backend needed. */
function vcl(tag: string, extra = ''): string {
  return `vcl 4.1;
import std;
import selector;
backend default none;
sub vcl_init {
  new paths = selector.set();
  paths.add("/sel", string = "${tag}-selected");
}
sub vcl_recv {
  if (paths.hasprefix(req.url)) {
    return (synth(200, paths.string(select = FIRST)));
  }
  return (synth(200, "${tag}"));
}
sub vcl_synth {
  set resp.http.x-tag = "${tag}";
  set resp.http.x-socket = local.socket;
  set resp.http.x-reason = resp.reason;
  set resp.http.x-upper = std.toupper("${tag}");
${extra}
}
`;
}

interface Got {
  status: number;
  headers: Record<string, string | string[] | undefined>;
}

function get(port: number, path = '/'): Promise<Got> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false, timeout: 5000 }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

async function eventually<T>(fn: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (ok(v)) return v;
      last = v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      const seen = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`condition not met in ${timeoutMs} ms; last: ${seen}`);
    }
    await sleep(50);
  }
}

/** Zombies count as dead: an orphaned child is reaped by whatever init the machine has. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

async function startVarnish(
  t: TestContext,
  initial: string,
  listeners: VarnishListener[] = [{ name: 'web', address: '127.0.0.1', port: 0 }],
  overrides: Partial<VarnishdOptions> = {},
): Promise<{ v: Varnishd; port: (name?: string) => Promise<number>; events: VarnishdEvent[] }> {
  const workDir = await mkdtemp(join(tmpdir(), 'vgw-varnish-'));
  const v = new Varnishd({
    workDir,
    listeners,
    vcl: initial,
    storage: 'malloc,16m',
    pollIntervalMs: 200,
    stopTimeoutMs: 5000,
    params: { vcl_cooldown: '1' },
    ...overrides,
  });
  const events: VarnishdEvent[] = [];
  v.on('event', (e) => events.push(e));
  t.after(async () => {
    await v.stop();
    await rm(workDir, { recursive: true, force: true });
  });
  await v.start();
  const port = async (name = listeners[0].name): Promise<number> => {
    const found = (await v.listenAddresses()).find((a) => a.name === name);
    assert.ok(found, `listener ${name} not found`);
    return found.port;
  };
  return { v, port, events };
}

async function activeVclNames(v: Varnishd): Promise<string[]> {
  return parseVclList(await v.cli.expectOk('vcl.list -j'))
    .filter((e) => e.status !== 'discarded')
    .map((e) => e.name);
}

describe('varnish CLI quoting', () => {
  test('quotes arguments that would otherwise split or escape', () => {
    assert.equal(quoteCliArg('vcl.use'), 'vcl.use');
    assert.equal(quoteCliArg('a b'), '"a b"');
    assert.equal(quoteCliArg('say "hi"\\\n'), '"say \\"hi\\"\\\\\\n"');
    assert.equal(quoteCliArg(''), '""');
    assert.equal(quoteCliArg('<<'), '"<<"');
    assert.equal(quoteCliArg('\x01'), '"\\x01"');
    assert.equal(
      formatCommand(['param.set', 'cc_command', 'exec tcc -o %o %s']),
      'param.set cc_command "exec tcc -o %o %s"',
    );
    const token = heredocToken('VGW_EOF_ in text');
    assert.match(token, /^VGW_EOF_[0-9a-f]{12}$/);
  });

  test('parses vcl.list -j with labels', () => {
    const body = `[ 2, ["vcl.list", "-j"], 1795697707.139,
  { "status": "active", "state": "auto", "temperature": "warm", "busy": 0, "name": "boot" },
  { "status": "available", "state": "auto", "temperature": "warm", "busy": 0, "name": "a", "labels": 1 },
  { "status": "available", "state": "label", "temperature": "warm", "busy": 0, "name": "lab", "label": { "name": "a" } }
]`;
    assert.deepEqual(
      parseVclList(body).map((e) => [e.name, e.status, e.labels, e.labelTarget]),
      [
        ['boot', 'active', 0, undefined],
        ['a', 'available', 1, undefined],
        ['lab', 'available', 0, 'a'],
      ],
    );
  });
});

describe('varnish runtime', { concurrency: true }, () => {
  test('CLI authenticates with the secret and rejects a wrong one', async (t) => {
    const { v, port } = await startVarnish(t, vcl('auth'));
    const secret = await readFile(v.secretPath);
    const cli = await VarnishCli.connect({ host: '127.0.0.1', port: v.adminPort!, secret });
    t.after(() => cli.close());
    assert.match(cli.banner, /Varnish Cache CLI/);
    assert.equal((await cli.command('ping')).status, 200);
    await assert.rejects(cli.expectOk('no.such.command'), (e: unknown) => e instanceof VarnishCliError && e.status === 101);
    // A VCL sent as one quoted argument (quotes, backslashes, newlines, tabs) arrives intact.
    const text = vcl('quoted', '\tset resp.http.x-q = {"a "quoted" \\ value"};');
    assert.equal((await cli.commandArgs(['vcl.inline', 'quoted_arg', text])).status, 200);
    await cli.expectOk(['vcl.use', 'quoted_arg']);
    const got = await get(await port());
    assert.equal(got.headers['x-tag'], 'quoted');
    assert.equal(got.headers['x-q'], 'a "quoted" \\ value');
    await assert.rejects(
      VarnishCli.connect({ host: '127.0.0.1', port: v.adminPort!, secret: 'wrong\n' }),
      (e: unknown) => e instanceof VarnishCliError && e.command === 'auth' && e.status !== 200,
    );
  });

  test('serves synth responses through named listeners; tcc is the compiler', async (t) => {
    const listeners = [
      { name: 'web', address: '127.0.0.1', port: 0 },
      { name: 'internal', address: '127.0.0.1', port: 0 },
    ];
    const { v, port } = await startVarnish(t, vcl('one'), listeners);
    assert.equal(v.cc?.kind, 'tcc');
    const web = await get(await port('web'));
    assert.equal(web.status, 200);
    assert.equal(web.headers['x-socket'], 'web');
    assert.equal(web.headers['x-tag'], 'one');
    assert.equal(web.headers['x-upper'], 'ONE');
    const internal = await get(await port('internal'));
    assert.equal(internal.headers['x-socket'], 'internal');
    assert.equal((await get(await port('web'), '/sel')).headers['x-reason'], 'one-selected');
    const stats = await v.stats();
    assert.ok(stats.counters['MAIN.client_req'].value >= 3);
  });

  test('reloads switch responses; a broken VCL is reported and the previous one keeps serving', async (t) => {
    const { v, port } = await startVarnish(t, vcl('one'));
    const reloader = new VclReloader(v);
    const p = await port();
    const ok = await reloader.submit(vcl('two'), { rev: 2 });
    assert.equal(ok.status, 'active', ok.error);
    assert.deepEqual(ok.meta, { rev: 2 });
    assert.equal((await get(p)).headers['x-tag'], 'two');
    assert.equal(v.lastGoodVcl, vcl('two'));

    const brokenVcl = vcl('three').replace('return (synth(200, "three"));', 'return (synth(200, "three"))\n  nonsense;');
    const broken = await reloader.submit(brokenVcl);
    assert.equal(broken.status, 'failed');
    assert.match(broken.error ?? '', /Line \d+ Pos \d+/);
    assert.ok(broken.errorLocation && broken.errorLocation.line > 1);
    assert.equal((await get(p)).headers['x-tag'], 'two');
    assert.equal(v.lastGoodVcl, vcl('two'));

    // A here-document whose text contains lines that look like terminators.
    const tricky = vcl('four', '  # EOF\n  # VGW_EOF_\n  set resp.http.x-q = {"a "quoted" \\ value"};');
    const four = await reloader.submit(tricky);
    assert.equal(four.status, 'active', four.error);
    const got = await get(p);
    assert.equal(got.headers['x-tag'], 'four');
    assert.equal(got.headers['x-q'], 'a "quoted" \\ value');

    // Timing of a small VCL end to end (vcl.inline + vcl.use), reported by the test log.
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await reloader.submit(vcl(`t${i}`));
      assert.equal(r.status, 'active');
      times.push(r.compileMs! + r.useMs!);
    }
    t.diagnostic(`small VCL vcl.inline+vcl.use ms: ${times.map((x) => x.toFixed(1)).join(', ')}`);
  });

  test('coalesces a burst: the newest submission wins, the ones in between are superseded', async (t) => {
    const { v, port } = await startVarnish(t, vcl('zero'));
    const reloader = new VclReloader(v);
    const seen: ReloadResult[] = [];
    reloader.on('result', (r) => seen.push(r));
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => reloader.submit(vcl(`burst${i}`), i)));
    await reloader.waitIdle();
    assert.equal(results[9].status, 'active');
    const compiled = results.filter((r) => r.status !== 'superseded');
    assert.ok(compiled.length <= 3, `compiled ${compiled.length}`);
    assert.ok(results.slice(1, 9).every((r) => r.status === 'superseded' || r.status === 'active'));
    assert.ok(results.filter((r) => r.status === 'superseded').length >= 7);
    assert.equal(seen.length, 10);
    assert.equal((await get(await port())).headers['x-tag'], 'burst9');
  });

  test('close() ends a set being deployed before its next VCL; the live VCL keeps serving', async (t) => {
    const { v, port } = await startVarnish(t, vcl('live'));
    const reloader = new VclReloader(v);
    const set = { main: vcl('main'), shards: Array.from({ length: 6 }, (_, i) => vcl(`shard${i}`)), label: (i: number) => `closing_shard_${i}` };
    const deploying = reloader.submit(set);
    reloader.close();
    const result = await deploying;
    assert.equal(result.status, 'superseded');
    assert.equal((await reloader.submit(vcl('later'))).status, 'superseded', 'nothing is compiled after close()');
    assert.equal((await get(await port())).headers['x-tag'], 'live');
    const labels = parseVclList(await v.cli.expectOk('vcl.list -j')).filter((e) => e.name.startsWith('closing_shard_'));
    assert.deepEqual(labels, [], 'no label was moved');
  });

  test('old VCLs are discarded after reloads', async (t) => {
    const { v } = await startVarnish(t, vcl('boot'));
    const reloader = new VclReloader(v);
    for (let i = 0; i < 4; i++) assert.equal((await reloader.submit(vcl(`d${i}`))).status, 'active');
    const last = await reloader.submit(vcl('final'));
    const names = await eventually(
      () => activeVclNames(v),
      (n) => n.length === 1,
    );
    assert.deepEqual(names, [last.name]);
  });

  test('a killed child is restarted and serves again', async (t) => {
    const { v, port, events } = await startVarnish(t, vcl('before'));
    const reloader = new VclReloader(v);
    assert.equal((await reloader.submit(vcl('reloaded'))).status, 'active');
    // varnishd 7.1's manager asserts (and dies) when the child dies in the middle of a vcl.discard;
    // that case is the manager-restart test's business, so let the discards finish first.
    await reloader.waitIdle();
    const p = await port();
    const childPid = v.childPid!;
    assert.ok(childPid > 0 && alive(childPid));
    const restarted = once(v, 'event', { signal: AbortSignal.timeout(15_000) });
    process.kill(childPid, 'SIGKILL');
    await eventually(async () => v.childRestarts, (n) => n === 1).catch((err) => {
      throw new Error(`${err.message}\nevents: ${JSON.stringify(events)}\noutput:\n${v.output()}`);
    });
    await restarted;
    assert.notEqual(v.childPid, childPid);
    const got = await eventually(() => get(p), (r) => r.status === 200);
    assert.equal(got.headers['x-tag'], 'reloaded');
    assert.ok(events.some((e) => e.type === 'child-died' && e.pid === childPid));
    assert.ok(events.some((e) => e.type === 'child-started' && e.restart));
  });

  test('a killed manager is relaunched with the last good VCL', async (t) => {
    const { v, port, events } = await startVarnish(t, vcl('before'));
    const reloader = new VclReloader(v);
    assert.equal((await reloader.submit(vcl('good'))).status, 'active');
    assert.equal((await reloader.submit('vcl 4.1; sub vcl_recv { broken }')).status, 'failed');
    const oldPid = v.pid!;
    const oldChild = v.childPid!;
    process.kill(oldPid, 'SIGKILL');
    await eventually(async () => v.managerRestarts, (n) => n === 1, 20_000);
    await v.whenReady();
    assert.notEqual(v.pid, oldPid);
    assert.ok(!alive(oldChild));
    const got = await eventually(async () => get(await port()), (r) => r.status === 200);
    assert.equal(got.headers['x-tag'], 'good');
    assert.ok(events.some((e) => e.type === 'manager-exited' && e.pid === oldPid));
    // A submission made while the manager is gone waits for the relaunch (or retries) and applies.
    process.kill(v.pid!, 'SIGKILL');
    const during = await reloader.submit(vcl('during'));
    assert.equal(during.status, 'active', during.error);
    assert.equal(v.managerRestarts, 2);
    assert.equal((await get(await port())).headers['x-tag'], 'during');
    assert.equal(v.lastGoodVcl, vcl('during'));
  });

  test('a child panic is reported from panic.show and the child comes back', async (t) => {
    const { v, port, events } = await startVarnish(t, vcl('panicky'));
    const panicked = new Promise<VarnishdEvent>((resolve) =>
      v.on('event', (e) => {
        if (e.type === 'child-panic') resolve(e);
      }),
    );
    await v.cli.command('debug.panic.worker');
    const timeout = sleep(15_000, undefined, { ref: false }).then(() => assert.fail('no child-panic event'));
    const ev = await Promise.race([panicked, timeout]);
    assert.ok(ev.type === 'child-panic' && ev.panic.includes('You asked for it'));
    assert.equal(v.childRestarts, 1);
    assert.equal((await eventually(async () => get(await port()), (r) => r.status === 200)).headers['x-tag'], 'panicky');
    assert.ok(events.some((e) => e.type === 'child-died'));
  });

  test('stop() falls back to SIGKILL and still leaves no process', async (t) => {
    const { v } = await startVarnish(t, vcl('frozen'), undefined, { stopTimeoutMs: 1000 });
    const pid = v.pid!;
    const childPid = v.childPid!;
    assert.ok(childPid > 0, 'the child pid is known once start() resolves');
    process.kill(pid, 'SIGSTOP');
    const started = Date.now();
    await v.stop();
    assert.ok(Date.now() - started >= 900, 'stop() did not wait for the grace period');
    // Checked the moment stop() resolves, no waiting: every process of the tree is gone.
    assert.ok(!alive(pid) && !alive(childPid));
    assert.deepEqual(await processesOf(v.instanceDir), []);
  });

  test('falls back to gcc when the preferred cc_command fails at boot', async (t) => {
    const { v, port, events } = await startVarnish(t, vcl('gcc'), undefined, {
      ccCommand: 'exec tcc -shared --no-such-flag -o %o %s',
    });
    assert.equal(v.cc?.kind, 'gcc');
    assert.equal(v.cc?.command, GCC_COMMAND);
    assert.match(v.cc?.fallbackReason ?? '', /no-such-flag/);
    assert.ok(events.some((e) => e.type === 'cc-fallback'));
    assert.equal((await get(await port())).headers['x-tag'], 'gcc');
  });

  test('falls back to gcc when the C compiler starts failing on reload', async (t) => {
    const preferred = 'exec tcc -shared -o %o %s ';
    const { v, port } = await startVarnish(t, vcl('tcc'), undefined, { ccCommand: preferred });
    assert.equal(v.cc?.command, preferred);
    await v.cli.expectOk(['param.set', 'cc_command', 'exec false %o %s']);
    const r = await new VclReloader(v).submit(vcl('after-fallback'));
    assert.equal(r.status, 'active', r.error);
    assert.equal(v.cc?.kind, 'gcc');
    assert.equal((await get(await port())).headers['x-tag'], 'after-fallback');
  });

  test('stop() leaves no varnishd process', async (t) => {
    const { v } = await startVarnish(t, vcl('bye'));
    const pid = v.pid!;
    const childPid = v.childPid!;
    assert.ok(alive(pid) && alive(childPid));
    await v.stop();
    assert.ok(!alive(pid), 'manager still alive');
    assert.ok(!alive(childPid), 'child still alive');
    assert.deepEqual(await processesOf(v.instanceDir), [], 'a process of the tree is still alive');
    assert.equal(v.pid, undefined);
  });

  test('start() rejects with varnishd output when the boot VCL does not compile', async (t) => {
    const workDir = await mkdtemp(join(tmpdir(), 'vgw-varnish-'));
    t.after(() => rm(workDir, { recursive: true, force: true }));
    const v = new Varnishd({
      workDir,
      listeners: [{ name: 'web', address: '127.0.0.1', port: 0 }],
      vcl: 'vcl 4.1;\nbackend default none;\nsub vcl_recv { nope; }\n',
      storage: 'malloc,16m',
    });
    await assert.rejects(v.start(), /exited during startup[\s\S]*Line 3/);
    await v.stop();
  });
});
