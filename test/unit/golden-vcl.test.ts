// Golden files for the VCL compiler: test/testdata/vcl/<case>.ir.yaml (routing IR + endpoints)
// -> <case>.vcl, plus <case>.shard-N.vcl when the case is sharded (then <case>.vcl is the
// dispatcher). UPDATE_GOLDEN=1 rewrites the outputs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { assertGolden, staleGoldenFiles, UPDATE_GOLDEN } from '../support/golden.ts';
import { compileVclGoldenCase, readVclGoldenCase, VCL_GOLDEN_DIR, vclGoldenCases } from '../support/vcl-golden-cases.ts';

const cases = vclGoldenCases();
const written = new Set<string>();

test('there are VCL golden cases, one of them sharded', () => {
  assert.ok(cases.length >= 8, `only ${cases.length} cases in ${VCL_GOLDEN_DIR}`);
  assert.ok(cases.some((name) => readVclGoldenCase(name).shards > 1), 'no sharded case');
});

for (const name of cases) {
  test(`compileVcl: ${name}`, () => {
    for (const [file, vcl] of compileVclGoldenCase(readVclGoldenCase(name))) {
      written.add(file);
      assertGolden(join(VCL_GOLDEN_DIR, file), vcl);
    }
  });
}

// Runs after the cases (node:test runs top-level tests in order), so `written` is complete.
test('every VCL golden file has its input', () => {
  const stale = staleGoldenFiles(VCL_GOLDEN_DIR, (f) => f.endsWith('.vcl'), written);
  assert.deepEqual(stale, [], `VCL files no case produces${UPDATE_GOLDEN ? '' : ' (UPDATE_GOLDEN=1 deletes them)'}`);
});
