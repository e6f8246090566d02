// Every golden VCL (test/testdata/vcl/*.vcl) passes VCC (`varnishd -C`), so the reviewed
// outputs are known to be VCL that Varnish accepts, not just the text we expected.
//
// A sharded case's dispatcher names its shards by VCL label (`return (vcl(label))`), which
// only a running varnishd holding those labels resolves (test/integration/sharded.test.ts
// loads them for real). Here the dispatcher must be refused for the unknown label and nothing
// else, and compile once the label jumps are replaced by a synthetic response.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { vccCheck } from '../../src/varnish/vcc-check.ts';
import { vclGoldenCases, VCL_GOLDEN_DIR } from '../support/vcl-golden-cases.ts';

const LABEL_JUMP = /return \(vcl\(vgw_shard_\d+_\d+\)\);/;
const LABEL_JUMPS = new RegExp(LABEL_JUMP.source, 'g');
const files = readdirSync(VCL_GOLDEN_DIR)
  .filter((f) => f.endsWith('.vcl'))
  .sort();

test('the golden VCL files are there', () => {
  assert.ok(files.length >= vclGoldenCases().length, `${files.length} VCL files for ${vclGoldenCases().length} cases`);
});

for (const file of files) {
  test(`varnishd -C accepts ${file}`, async () => {
    const vcl = readFileSync(join(VCL_GOLDEN_DIR, file), 'utf8');
    if (!LABEL_JUMP.test(vcl)) {
      assert.deepEqual(await vccCheck(vcl), { ok: true });
      return;
    }
    const asIs = await vccCheck(vcl);
    assert.equal(asIs.ok, false, 'a dispatcher naming labels varnishd does not hold must not compile');
    assert.match(asIs.ok ? '' : asIs.message, /^Symbol not found: 'vgw_shard_\d+_\d+'/);
    assert.deepEqual(await vccCheck(vcl.replace(LABEL_JUMPS, 'return (synth(503));')), { ok: true });
  });
}
