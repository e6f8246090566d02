// Property C against a real varnishd: for generated routes and requests (odd hosts, dot
// segments, encoded characters, repeated slashes, duplicate headers and query parameters),
// the backend varnishd picks, or its 404/400, is what the reference evaluator decides from the
// IR. 5 configs x 40 requests in CI; FUZZ_RUNS / FUZZ_SEED for longer runs.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { fuzzSettings, runProperty } from './harness.ts';
import { caseManifests, routingCaseArb, RoutingWorld } from './routing.ts';

describe('fuzz: routing decisions, evaluator vs varnishd', () => {
  const world = new RoutingWorld();
  before(() => world.start());
  after(() => world.stop());

  test('varnishd routes every request where the evaluator does', async () => {
    const settings = fuzzSettings({ runs: 5, shrinkBudget: 40 });
    const failure = await runProperty('routing', routingCaseArb(40), (c) => world.check(c), settings, (c) => caseManifests(c).objects);
    assert.equal(failure, null, failure?.report);
  });
});
