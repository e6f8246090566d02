// Hostile manifests through `vgw check` and `vgw vcl` as a user runs them: an EndpointSlice
// port carrying VCL is rejected by name and never reaches the VCL, and a hostile route is
// rejected alone while a good one beside it is accepted.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { hostileBase } from '../support/hostile-base.ts';

const CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const HOSTILE = fileURLToPath(new URL('../fixtures/hostile/', import.meta.url));

function vgw(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The base directory without its EndpointSlice: the web Service's only slice is one a fixture brings. */
const BASE = hostileBase({ slice: false });

type Status = { kind: string; metadata: { name: string }; status: { parents?: { conditions: { type: string; status: string; reason: string; message: string }[] }[] } };

describe('hostile manifests through the CLI', () => {
  const root = mkdtempSync(join(tmpdir(), 'vgw-hostile-'));
  after(() => rmSync(root, { recursive: true, force: true }));
  const dirWith = (name: string, fixtures: string[]) => {
    const d = join(root, name);
    mkdirSync(d);
    writeFileSync(join(d, 'base.yaml'), BASE);
    for (const f of fixtures) copyFileSync(join(HOSTILE, f), join(d, f));
    return d;
  };

  test('an EndpointSlice port carrying VCL is rejected by name and never reaches the VCL', () => {
    const d = dirWith('injection', ['endpointslice-port-injection.yaml']);
    const check = vgw('check', d);
    assert.equal(check.code, 1, check.stderr);
    assert.match(check.stderr, /EndpointSlice default\/web-injected: invalid \(.*endpointslice-port-injection\.yaml:8\): ports\[0\]\.port: expected number, received string/);
    const good = parseAllDocuments(check.stdout).map((doc) => doc.toJS() as Status).find((s) => s.metadata.name === 'good');
    const refs = good?.status.parents?.[0].conditions.find((c) => c.type === 'ResolvedRefs');
    assert.equal(refs?.status, 'False');
    assert.match(refs?.message ?? '', /EndpointSlice default\/web-injected is invalid/);
    const vcl = vgw('vcl', d);
    assert.equal(vcl.code, 0, vcl.stderr);
    assert.doesNotMatch(vcl.stdout, /synth\(666\)|18081/);
  });

  test('a hostile route is rejected alone; the good route beside it is accepted', () => {
    const d = dirWith('route', ['route-hostnames-string.yaml']);
    const r = vgw('check', d);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /HTTPRoute default\/hostnames-string: parent default\/gw: UnsupportedValue: invalid \(.*route-hostnames-string\.yaml:7\): spec\.hostnames: expected array, received string/);
    const statuses = parseAllDocuments(r.stdout).map((doc) => doc.toJS() as Status);
    const accepted = (name: string) => statuses.find((s) => s.metadata.name === name)?.status.parents?.[0].conditions.find((c) => c.type === 'Accepted');
    assert.equal(accepted('good')?.status, 'True');
    assert.equal(accepted('hostnames-string')?.status, 'False');
    assert.equal(accepted('hostnames-string')?.reason, 'UnsupportedValue');
  });
});
