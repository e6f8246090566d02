// The CLI keeps Node's compiled module code in a cache under the temp dir, so that a restart
// of `vgw serve` does not strip types and compile a few hundred modules again.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const QUICKSTART = fileURLToPath(new URL('../../examples/quickstart/manifests/', import.meta.url));

const temp = mkdtempSync(join(tmpdir(), 'vgw-compile-cache-'));
after(() => rmSync(temp, { recursive: true, force: true }));

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => e.name);
}

test('a command leaves the compiled code of the modules it loaded in the temp dir', () => {
  const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: temp };
  delete env.NODE_COMPILE_CACHE;
  delete env.NODE_DISABLE_COMPILE_CACHE;
  const r = spawnSync(process.execPath, [CLI, 'check', QUICKSTART], { encoding: 'utf8', env });
  assert.equal(r.status, 0, r.stderr);
  const cached = filesUnder(join(temp, 'node-compile-cache'));
  // The command's own modules and its libraries: far more than the entry point.
  assert.ok(cached.length > 100, `${cached.length} cache files`);
  // A second run finds them and still works.
  assert.equal(spawnSync(process.execPath, [CLI, 'check', QUICKSTART], { encoding: 'utf8', env }).status, 0);
});
