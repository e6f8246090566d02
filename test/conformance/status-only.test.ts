import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadCases } from './data.ts';
import { planStatusOnlyTest } from './plan.ts';
import { EchoFleet } from './fleet.ts';
import { runStatusOnlyTest } from './runner.ts';
import { StandaloneStage } from './standalone-stage.ts';
import { evaluateStatusCheck } from './status.ts';
import { generateConformanceObjects, type ConformanceObjects } from './generated-objects.ts';
import { applyPatch, STATUS_ONLY, statusOnlyExpectations } from './status-only.ts';
import { AddressBook, loadManifests, objectKey } from './world.ts';

const cases = loadCases();

test('JSON Patch: add, replace, remove and test', () => {
  const doc = { spec: { listeners: [{ name: 'https' }, { name: 'http' }], description: 'old' } };
  const added = applyPatch(doc, [{ op: 'add', path: '/spec/listeners/-', value: { name: 'alt' } }]);
  assert.deepEqual(added.spec.listeners.map((l) => l.name), ['https', 'http', 'alt']);
  assert.deepEqual(doc.spec.listeners.length, 2, 'the input is not modified');
  const removed = applyPatch(doc, [
    { op: 'test', path: '/spec/listeners/0/name', value: 'https' },
    { op: 'remove', path: '/spec/listeners/0' },
  ]);
  assert.deepEqual(removed.spec.listeners, [{ name: 'http' }]);
  assert.equal(applyPatch(doc, [{ op: 'replace', path: '/spec/description', value: 'new' }]).spec.description, 'new');
  assert.throws(() => applyPatch(doc, [{ op: 'test', path: '/spec/description', value: 'new' }]), /test \/spec\/description/);
  assert.throws(() => applyPatch(doc, [{ op: 'replace', path: '/spec/missing', value: 1 }]), /does not exist/);
  assert.throws(() => applyPatch(doc, [{ op: 'remove', path: '/spec/listeners/5' }]), /out of range/);
  assert.equal(applyPatch({ 'a/b': 1 } as Record<string, number>, [{ op: 'replace', path: '/a~1b', value: 2 }])['a/b'], 2);
});

test('the expectations name real tests, known check kinds and objects of their manifests', () => {
  const byName = new Map(cases.statusOnlyTests.map((t) => [t.name, t]));
  for (const [name, e] of Object.entries(STATUS_ONLY)) {
    const t = byName.get(name);
    assert.ok(t, `${name} is a status-only test of cases.json`);
    const keys = new Set(loadManifests(t.manifests).map(objectKey));
    for (const phase of e.phases) {
      for (const p of phase.patches ?? []) assert.ok(keys.has(objectKey({ kind: p.kind, metadata: { name: p.name, ...(p.namespace ? { namespace: p.namespace } : {}) } })), `${name}: ${p.kind} ${p.name}`);
    }
    for (const c of [...e.phases.flatMap((p) => p.checks), ...(e.tlsParts ?? []).flatMap((p) => p.checks)]) {
      assert.doesNotMatch(evaluateStatusCheck(c, []).failure ?? '', /unknown status check kind|malformed status check/, `${name}: ${c.check}`);
    }
  }
});

// The product side of the status-only tests, through `vgw check` as `npm run conformance` does it
// (no varnishd needed), so a status regression fails the ordinary test run too.
describe('status-only conformance tests against vgw check', { concurrency: 4 }, () => {
  const work = mkdtempSync(path.join(tmpdir(), 'vgw-status-only-'));
  after(() => rmSync(work, { recursive: true, force: true }));
  const book = new AddressBook();
  // The suite's generated certificates, made once for all tests as a run makes them.
  let generated: Promise<ConformanceObjects> | undefined;
  for (const t of cases.statusOnlyTests) {
    const decision = planStatusOnlyTest(t);
    test(t.name, decision.run ? {} : { skip: decision.reason }, async () => {
      // A stage per test: they run concurrently, and a stage holds its test's folder.
      generated ??= generateConformanceObjects(path.join(work, 'generated'));
      const stage = new StandaloneStage({ workDir: work, book, fleet: new EchoFleet(), readyTimeoutMs: 60_000, generated: (await generated).objects });
      const outcome = await runStatusOnlyTest(t.name, t.manifests, statusOnlyExpectations(t)!, { stage });
      const failed = outcome.rows.filter((r) => !r.ok);
      assert.deepEqual(failed.map((r) => `${r.name}: ${r.detail}`), []);
      assert.ok(outcome.rows.some((r) => r.kind === 'status' && !r.skipped), 'at least one check ran');
    });
  }
});
