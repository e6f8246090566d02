// Property A: any manifests, valid, wrong-typed or hostile, go through the loader, the
// translator and the VCL compiler without an undocumented exception. Pure and fast: 200 runs
// in CI; FUZZ_RUNS / FUZZ_SEED for longer runs (or `npm run fuzz`).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ALL_MODES, snapshotArb } from './arbitraries.ts';
import { fuzzSettings, runProperty } from './harness.ts';
import { pipelineHolds, scratchDir } from './pipeline-properties.ts';

describe('fuzz: manifests -> loader -> translator -> VCL', () => {
  let scratch: Awaited<ReturnType<typeof scratchDir>>;
  before(async () => {
    scratch = await scratchDir();
  });
  after(() => scratch?.close());

  test('never throws anything but ManifestLoadError; accepted routes reach the VCL', async () => {
    const settings = fuzzSettings({ runs: 200, shrinkBudget: 2000 });
    const failure = await runProperty('pipeline', snapshotArb(ALL_MODES), (objects) => pipelineHolds(scratch.dir, objects), settings, (o) => o);
    assert.equal(failure, null, failure?.report);
  });
});
