// The first load of a large directory parses its files on worker threads and this one: the
// snapshot, the rejected objects and every error (file, line, field) are the same as when one
// thread parses everything, whether the load fails (one-shot) or keeps going (vgw serve).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { ManifestLoadError, ManifestLoader, type LoadedManifests } from '../../src/providers/file/load.ts';
import { parseWorkerCount, PARALLEL_PARSE_MIN_FILES } from '../../src/providers/file/parallel-parse.ts';
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

async function load(d: string, parseWorkers: number, keepLastGood: boolean): Promise<LoadedManifests | string> {
  try {
    return await new ManifestLoader({ limits: { maxFileBytes: MAX_FILE_BYTES }, keepLastGood, parallelParse: { workers: parseWorkers, minFiles: 100 } }).load(d);
  } catch (err) {
    if (err instanceof ManifestLoadError) return err.message;
    throw err;
  }
}

describe('parallel parse of the first load', () => {
  test('one-shot: the same errors, naming file, line and message, as a single-thread parse', async () => {
    const d = mixedDir();
    const serial = await load(d, 0, false);
    const parallel = await load(d, 2, false);
    assert.equal(typeof serial, 'string');
    assert.match(serial as string, /bad-yaml\.yaml:3:1: Flow map/);
    assert.match(serial as string, /bad-utf8\.yaml: is not valid UTF-8/);
    assert.match(serial as string, /big\.yaml: file is .* larger than the limit/);
    assert.match(serial as string, /r3\.yaml:1: HTTPRoute bench\/r3 is already defined at .*dup\.yaml:1/);
    assert.equal(parallel, serial);
  });

  test('keepLastGood: the same snapshot, rejected objects, file errors and warnings', async () => {
    const d = mixedDir();
    const serial = (await load(d, 0, true)) as LoadedManifests;
    const parallel = (await load(d, 2, true)) as LoadedManifests;
    assert.equal(serial.parsedInParallel, undefined);
    // Everything small enough to read ahead went through the workers: all but big.yaml.
    assert.deepEqual(parallel.parsedInParallel, { workers: 2, files: serial.files.length - 1 });
    assert.equal(serial.snapshot.httpRoutes.length, 151);
    assert.deepEqual((serial.snapshot.rejected ?? []).map(formatRejected), (parallel.snapshot.rejected ?? []).map(formatRejected));
    assert.match((serial.snapshot.rejected ?? []).map(formatRejected).join('\n'), /bad-field\.yaml:\d+: .*port/);
    const { parsedInParallel: _, ...rest } = parallel;
    assert.deepEqual(rest, serial);
  });

  test('a later load parses only changed files, on this thread', async () => {
    const d = mixedDir();
    const loader = new ManifestLoader({ limits: { maxFileBytes: MAX_FILE_BYTES }, keepLastGood: true, parallelParse: { workers: 2, minFiles: 100 } });
    assert.ok((await loader.load(d)).parsedInParallel);
    writeFileSync(join(d, 'r0.yaml'), routeManifest(0).replace('/p0', '/q0'));
    const again = await loader.load(d);
    assert.equal(again.parsedInParallel, undefined);
    assert.ok(again.snapshot.httpRoutes.some((r) => JSON.stringify(r).includes('/q0')));
  });

  test('below the threshold, one thread parses', async () => {
    const d = mixedDir();
    const loaded = await new ManifestLoader({ limits: { maxFileBytes: MAX_FILE_BYTES }, keepLastGood: true }).load(d);
    assert.ok(loaded.files.length < PARALLEL_PARSE_MIN_FILES);
    assert.equal(loaded.parsedInParallel, undefined);
  });

  test('one worker per core besides this thread, at most two, none on one core', () => {
    assert.equal(parseWorkerCount(1), 0);
    assert.equal(parseWorkerCount(2), 1);
    assert.equal(parseWorkerCount(16), 2);
  });
});
