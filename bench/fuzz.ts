// Longer fuzz runs of the three properties of test/fuzz/ (docs/testing.md, "Fuzzing"):
//   node bench/fuzz.ts --runs N --seed S [--only pipeline,compile,routing]
// Failures (shrunk counterexample, seed, replay path) go to fuzz-failures/.
import { parseArgs } from 'node:util';
import { ALL_MODES, NO_WRONG_TYPES, snapshotArb } from '../test/fuzz/arbitraries.ts';
import { fuzzSettings, runProperty, type FuzzFailure } from '../test/fuzz/harness.ts';
import { pipelineHolds, scratchDir, vclCompilesAndContains } from '../test/fuzz/pipeline-properties.ts';
import { caseManifests, routingCaseArb, RoutingWorld } from '../test/fuzz/routing.ts';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '1000' }, seed: { type: 'string' }, only: { type: 'string' } } });
process.env.FUZZ_RUNS = values.runs;
if (values.seed !== undefined) process.env.FUZZ_SEED = values.seed;
const only = new Set((values.only ?? 'pipeline,compile,routing').split(','));
const base = fuzzSettings({ runs: 1000, shrinkBudget: 2000 });
const failures: FuzzFailure[] = [];
const timed = async (name: string, run: () => Promise<FuzzFailure | null>) => {
  const t0 = Date.now();
  const f = await run();
  console.log(`${name}: ${f ? 'FAILED' : 'ok'} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  if (f) failures.push(f);
};

const scratch = await scratchDir();
try {
  if (only.has('pipeline')) await timed('pipeline', () => runProperty('pipeline', snapshotArb(ALL_MODES), (o) => pipelineHolds(scratch.dir, o), base, (o) => o));
  // varnishd-backed properties cost ~0.1-0.3 s per case: a tenth and a hundredth of the runs.
  if (only.has('compile')) {
    const s = { ...base, runs: Math.max(1, Math.ceil(base.runs / 10)), shrinkBudget: 200 };
    await timed('compile', () => runProperty('compile', snapshotArb(NO_WRONG_TYPES), (o) => vclCompilesAndContains(scratch.dir, o), s, (o) => o));
  }
  if (only.has('routing')) {
    const world = new RoutingWorld();
    await world.start();
    try {
      const s = { ...base, runs: Math.max(1, Math.ceil(base.runs / 100)), shrinkBudget: 100 };
      await timed('routing', () => runProperty('routing', routingCaseArb(40), (c) => world.check(c), s, (c) => caseManifests(c).objects));
    } finally {
      await world.stop();
    }
  }
} finally {
  await scratch.close();
}
for (const f of failures) console.log(`\n${f.report}`);
process.exitCode = failures.length ? 1 : 0;
