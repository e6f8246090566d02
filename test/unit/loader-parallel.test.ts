// The first load of a large directory parses its files ahead, on worker threads too: the
// snapshot, the rejected objects and every error (file, line, field) are the same as when one
// thread parses everything, whether the load fails (one-shot) or keeps going (vgw serve).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { ManifestLoadError, ManifestLoader, type LoadedManifests } from '../../src/providers/file/load.ts';
import { parseWorkerCount, PARSE_AHEAD_MIN_FILES, PARSE_WORKERS_MIN_FILES } from '../../src/providers/file/parallel-parse.ts';
import { formatRejected } from '../../src/gatewayapi/types.ts';
import { routeManifest } from '../../bench/lib/manifests.ts';

const root = mkdtempSync(join(tmpdir(), 'vgw-loader-parallel-'));
after(() => rmSync(root, { recursive: true, force: true }));

const MAX_FILE_BYTES = 4096;

/** Valid routes, a schema-rejected one, broken YAML, bad UTF-8, an oversized file, a duplicate. */
function mixedDir(): string {
  const d = mkdtempSync(join(root, 'mixed-'));
  for (let i = 0; i < 150; i++) writeFileSync(join(d, `r${i}.yaml`), routeManifest(i));
  writeFileSync(join(d, 'a-list.yaml'), `apiVersion: v1\nkind: List\nitems:\n- ${routeManifest(900).replaceAll('\n', '\n  ')}`);
  writeFileSync(join(d, 'bad-field.yaml'), routeManifest(901).replace('port: 8080', 'port: "eighty"'));
  writeFileSync(join(d, 'bad-yaml.yaml'), 'kind: HTTPRoute\nmetadata: {name: x\n');
  writeFileSync(join(d, 'bad-utf8.yaml'), Buffer.from([0x6b, 0x69, 0x6e, 0x64, 0x3a, 0x20, 0xff, 0xfe, 0x0a]));
  writeFileSync(join(d, 'big.yaml'), `# ${'x'.repeat(MAX_FILE_BYTES)}\n${routeManifest(902)}`);
  writeFileSync(join(d, 'dup.yaml'), routeManifest(3));
  writeFileSync(join(d, 'not-ours.yaml'), 'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n');
  return d;
}

/** workers null: no parse ahead at all, every file parsed by the load loop (the reference). */
async function load(d: string, workers: number | null, keepLastGood: boolean): Promise<LoadedManifests | string> {
  const parseAhead = workers === null ? { minFiles: Infinity } : { workers, minFiles: 100 };
  try {
    return await new ManifestLoader({ limits: { maxFileBytes: MAX_FILE_BYTES }, keepLastGood, parseAhead }).load(d);
  } catch (err) {
    if (err instanceof ManifestLoadError) return err.message;
    throw err;
  }
}

describe('parse ahead of the first load', () => {
  test('one-shot: the same errors, naming file, line and message, as a single-thread parse', async () => {
    const d = mixedDir();
    const serial = await load(d, null, false);
    const parallel = await load(d, 2, false);
    const ahead = await load(d, 0, false);
    assert.equal(typeof serial, 'string');
    assert.match(serial as string, /bad-yaml\.yaml:3:1: Flow map/);
    assert.match(serial as string, /bad-utf8\.yaml: is not valid UTF-8/);
    assert.match(serial as string, /big\.yaml: file is .* larger than the limit/);
    assert.match(serial as string, /r3\.yaml:1: HTTPRoute bench\/r3 is already defined at .*dup\.yaml:1/);
    assert.equal(parallel, serial);
    assert.equal(ahead, serial);
  });

  test('keepLastGood: the same snapshot, rejected objects, file errors and warnings', async () => {
    const d = mixedDir();
    const serial = (await load(d, null, true)) as LoadedManifests;
    const parallel = (await load(d, 2, true)) as LoadedManifests;
    const ahead = (await load(d, 0, true)) as LoadedManifests;
    assert.equal(serial.parsedAhead, undefined);
    // Everything small enough to read ahead was parsed ahead: all but big.yaml.
    assert.deepEqual(parallel.parsedAhead, { workers: 2, files: serial.files.length - 1 });
    assert.deepEqual(ahead.parsedAhead, { workers: 0, files: serial.files.length - 1 });
    assert.equal(serial.snapshot.httpRoutes.length, 151);
    assert.deepEqual((serial.snapshot.rejected ?? []).map(formatRejected), (parallel.snapshot.rejected ?? []).map(formatRejected));
    assert.match((serial.snapshot.rejected ?? []).map(formatRejected).join('\n'), /bad-field\.yaml:\d+: .*port/);
    for (const loaded of [parallel, ahead]) {
      const { parsedAhead: _, ...rest } = loaded;
      assert.deepEqual(rest, serial);
    }
  });

  test('a later load parses only changed files, on this thread', async () => {
    const d = mixedDir();
    const loader = new ManifestLoader({ limits: { maxFileBytes: MAX_FILE_BYTES }, keepLastGood: true, parseAhead: { workers: 2, minFiles: 100 } });
    assert.ok((await loader.load(d)).parsedAhead);
    writeFileSync(join(d, 'r0.yaml'), routeManifest(0).replace('/p0', '/q0'));
    const again = await loader.load(d);
    assert.equal(again.parsedAhead, undefined);
    assert.ok(again.snapshot.httpRoutes.some((r) => JSON.stringify(r).includes('/q0')));
  });

  test('below the threshold, one thread parses', async () => {
    const d = mixedDir();
    const loaded = await new ManifestLoader({ limits: { maxFileBytes: MAX_FILE_BYTES }, keepLastGood: true }).load(d);
    assert.ok(loaded.files.length < PARSE_AHEAD_MIN_FILES);
    assert.equal(loaded.parsedAhead, undefined);
  });

  test('workers for thousands of files: one per core besides this thread, at most two, none on one core', () => {
    assert.equal(parseWorkerCount(PARSE_WORKERS_MIN_FILES - 1, 16), 0);
    assert.equal(parseWorkerCount(PARSE_WORKERS_MIN_FILES, 1), 0);
    assert.equal(parseWorkerCount(PARSE_WORKERS_MIN_FILES, 2), 1);
    assert.equal(parseWorkerCount(PARSE_WORKERS_MIN_FILES, 16), 2);
  });
});
