// The settle window on a mocked clock: when batches are handed over is a function of the events
// and the options alone.
import assert from 'node:assert/strict';
import { mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, mock, test } from 'node:test';
import { ManifestLoader } from '../../src/providers/file/load.ts';
import { SettleWindow, type SettledBatch } from '../../src/util/coalesce.ts';

const OPTS = { quietMs: 5, burstQuietMs: 100, maxDelayMs: 1_000, loneLimit: 4 };

describe('SettleWindow', () => {
  let batches: SettledBatch[];
  let win: SettleWindow;

  beforeEach(() => {
    mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_000_000 });
    batches = [];
    win = new SettleWindow(OPTS, (b) => batches.push(b), () => Date.now());
  });

  afterEach(() => {
    win.close();
    mock.timers.reset();
  });

  test('a lone change after a quiet spell is handed over after quietMs', () => {
    win.add('/d/a.yaml');
    win.add('/d/a.yaml');
    mock.timers.tick(4);
    assert.equal(batches.length, 0);
    mock.timers.tick(1);
    assert.deepEqual(batches.map((b) => [...b.keys]), [['/d/a.yaml']]);
  });

  test('more files than loneLimit wait for burstQuietMs of quiet', () => {
    for (let i = 0; i < 5; i++) win.add(`/d/${i}.yaml`);
    mock.timers.tick(99);
    assert.equal(batches.length, 0);
    mock.timers.tick(1);
    assert.equal(batches.length, 1);
    assert.equal(batches[0].keys.size, 5);
  });

  test('changes close behind a batch are a burst, even a single one', () => {
    win.add('/d/a.yaml');
    mock.timers.tick(5);
    assert.equal(batches.length, 1);
    mock.timers.tick(50);
    win.add('/d/b.yaml');
    mock.timers.tick(5);
    assert.equal(batches.length, 1, 'the directory was not quiet for burstQuietMs');
    mock.timers.tick(95);
    assert.equal(batches.length, 2);
  });

  test('a source that never goes quiet is handed over every maxDelayMs, one batch per window', () => {
    // 10 000 files, one every millisecond for 10 s.
    for (let i = 0; i < 10_000; i++) {
      win.add(`/d/${i}.yaml`);
      mock.timers.tick(1);
    }
    mock.timers.tick(OPTS.burstQuietMs);
    const total = batches.reduce((n, b) => n + b.keys.size, 0);
    assert.equal(total, 10_000);
    assert.ok(batches.length <= 1 + Math.ceil(10_000 / OPTS.maxDelayMs), `${batches.length} batches`);
    assert.ok(batches.length >= 10_000 / OPTS.maxDelayMs - 1);
  });

  test('an unknown change (null) is a burst that asks for everything', () => {
    win.add(null);
    mock.timers.tick(5);
    assert.equal(batches.length, 0);
    mock.timers.tick(95);
    assert.equal(batches[0].all, true);
  });
});

describe('ManifestLoader told which files changed', () => {
  let dir = '';
  const route = (name: string, host: string) =>
    `apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: ${name}\n  namespace: app\nspec:\n  hostnames: [${host}]\n`;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vgw-loader-changed-'));
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('reads the files named, keeps the rest, and gives the same snapshot as a full load', async () => {
    await writeFile(join(dir, 'a.yaml'), route('a', 'a.test'));
    await writeFile(join(dir, 'b.yaml'), route('b', 'b.test'));
    const loader = new ManifestLoader();
    await loader.load(dir);
    // Changed, added and removed files, named by the caller.
    await writeFile(join(dir, 'a.yaml'), route('a', 'a2.test'));
    await writeFile(join(dir, 'c.yaml'), route('c', 'c.test'));
    await unlink(join(dir, 'b.yaml'));
    const changed = await loader.load(dir, [join(dir, 'a.yaml'), join(dir, 'b.yaml'), join(dir, 'c.yaml')]);
    const full = await new ManifestLoader().load(dir);
    assert.deepEqual(changed.files, full.files);
    assert.deepEqual(changed.snapshot, full.snapshot);
    assert.equal(changed.unchanged, false);
    // Nothing changed since: the same content, reported as such.
    const again = await loader.load(dir, [join(dir, 'a.yaml')]);
    assert.equal(again.unchanged, true);
    assert.deepEqual(again.snapshot, full.snapshot);
  });
});
