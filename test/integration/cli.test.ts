// The vgw CLI as a user runs it: exit codes, output streams, error locations.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

const CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const QUICKSTART = fileURLToPath(new URL('../../examples/quickstart/manifests/', import.meta.url));

function vgw(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('vgw CLI', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vgw-cli-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('check prints every status as YAML and exits 0 when all is accepted', () => {
    const r = vgw('check', QUICKSTART);
    assert.equal(r.code, 0, r.stderr);
    const docs = parseAllDocuments(r.stdout).map((d) => d.toJS() as { kind: string; metadata: { name: string } });
    assert.deepEqual(docs.map((d) => `${d.kind}/${d.metadata.name}`).sort(), ['Gateway/quickstart', 'GatewayClass/vgw', 'HTTPRoute/api', 'HTTPRoute/web']);
  });

  test('check exits 1 when a route is not accepted, and says why', () => {
    const bad = join(dir, 'bad');
    rmSync(bad, { recursive: true, force: true });
    spawnSync('cp', ['-r', QUICKSTART, bad]);
    writeFileSync(
      join(bad, 'orphan.yaml'),
      'apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: orphan, namespace: shop}\nspec:\n  parentRefs: [{name: quickstart, sectionName: nope}]\n',
    );
    const r = vgw('check', bad);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /HTTPRoute shop\/orphan: .*NoMatchingParent/);
  });

  test('check exits 2 on unparsable input, naming file and line', () => {
    const broken = join(dir, 'broken');
    spawnSync('mkdir', ['-p', broken]);
    writeFileSync(join(broken, 'x.yaml'), 'kind: Service\nmetadata:\n  name: [oops\n');
    const r = vgw('check', broken);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /x\.yaml:\d+/);
    assert.equal(r.stdout, '');
  });

  test('vcl prints the generated VCL; bad usage exits 2', () => {
    const r = vgw('vcl', QUICKSTART);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^vcl 4\.1;/);
    assert.match(r.stdout, /"api\.example\.com"|=api\.example\.com/);
    assert.equal(vgw('vcl').code, 2);
    assert.equal(vgw('frobnicate').code, 2);
  });

  test('<command> --help prints the usage and exits 0, before starting anything', () => {
    for (const command of ['operator', 'chaperone', 'serve', 'explain']) {
      const r = vgw(command, '--help');
      assert.equal(r.code, 0, `${command}: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`^ {2}${command} `, 'm'), command);
    }
  });
});
