// Golden files: an input file per case next to the output it must produce. Tests compare
// the output text with the stored file; `UPDATE_GOLDEN=1` rewrites the stored files instead,
// so a change in behaviour is reviewed as a diff of the expected files (see docs/testing.md).
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';

export const UPDATE_GOLDEN = process.env.UPDATE_GOLDEN === '1';

/** Case names in `dir`: the file names ending in `inputSuffix`, without it, sorted. */
export function goldenCases(dir: string, inputSuffix: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith(inputSuffix))
    .map((f) => f.slice(0, -inputSuffix.length))
    .sort();
}

/**
 * Compares `actual` with the golden file at `path`, or writes it when regenerating. A missing
 * golden file fails: every case must have its expected output committed.
 */
export function assertGolden(path: string, actual: string): void {
  if (UPDATE_GOLDEN) {
    if (!existsSync(path) || readFileSync(path, 'utf8') !== actual) writeFileSync(path, actual);
    return;
  }
  assert.ok(existsSync(path), `${path} is missing: run with UPDATE_GOLDEN=1 to create it, then review it`);
  // assert.equal on strings makes node:test print a line diff of expected and actual.
  assert.equal(actual, readFileSync(path, 'utf8'), `${basename(path)} differs from the output (UPDATE_GOLDEN=1 rewrites it)`);
}

/**
 * Output files in `dir` that no case produced: stale leftovers of a renamed or removed case.
 * `isOutput` tells which file names are outputs; `expected` holds the outputs the cases wrote.
 * When regenerating they are deleted; otherwise they are returned for the test to fail on.
 */
export function staleGoldenFiles(dir: string, isOutput: (file: string) => boolean, expected: ReadonlySet<string>): string[] {
  const stale = readdirSync(dir).filter((f) => isOutput(f) && !expected.has(f));
  if (UPDATE_GOLDEN) {
    for (const f of stale) rmSync(join(dir, f));
    return [];
  }
  return stale;
}
