// Property B against a real varnishd: the VCL of every generated config compiles (`varnishd
// -C`), and no hostile string's text lands outside a VCL string literal or comment. 20 configs
// in CI; FUZZ_RUNS / FUZZ_SEED for longer runs (or `npm run fuzz`).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { NO_WRONG_TYPES, snapshotArb } from './arbitraries.ts';
import { fuzzSettings, runProperty } from './harness.ts';
import { scratchDir, vclCompilesAndContains } from './pipeline-properties.ts';
import { markerOutsideLiterals } from './vcl-scan.ts';

describe('fuzz: generated VCL in varnishd', () => {
  let scratch: Awaited<ReturnType<typeof scratchDir>>;
  before(async () => {
    scratch = await scratchDir();
  });
  after(() => scratch?.close());

  test('the literal scan finds text outside literals and comments', () => {
    const vcl = 'set a = "x~M~"; # ~M~\nset b = {"~M~"}; /* ~M~ */ set c = ~M~;\nC{ }C';
    assert.deepEqual(markerOutsideLiterals(vcl, '~M~').map((m) => m.why), ['user text in code', 'inline C']);
  });

  test('every accepted config compiles; user text stays inside literals', async () => {
    const settings = fuzzSettings({ runs: 20, shrinkBudget: 60 });
    const failure = await runProperty('compile', snapshotArb(NO_WRONG_TYPES), (objects) => vclCompilesAndContains(scratch.dir, objects), settings, (o) => o);
    assert.equal(failure, null, failure?.report);
  });
});
