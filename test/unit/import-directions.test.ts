// The pipeline's import directions (docs/architecture.md): providers -> gatewayapi (translator)
// -> ir -> vcl (compiler) -> varnish (runtime), wired by pipeline/, standalone/, chaperone/ and
// cli/. Each folder under src/ may import only the folders listed for it here, so the
// translator and the compiler stay pure and the runtime knows nothing of Gateway API. Shared
// rules and limits live in src/ir/limits.ts, which every stage may import.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, test } from 'node:test';

const SRC = resolve(import.meta.dirname, '../../src');

/** Folder under src/ -> the other folders under src/ it may import from. */
const ALLOWED: Record<string, readonly string[]> = {
  util: [],
  ir: ['util'],
  gatewayapi: ['ir', 'util'],
  vcl: ['ir', 'util'],
  varnish: ['ir', 'vcl', 'util'],
  providers: ['gatewayapi', 'util'],
  mirror: ['ir', 'varnish', 'vcl', 'util'],
  pipeline: ['gatewayapi', 'ir', 'vcl', 'varnish', 'util'],
  metrics: ['ir', 'mirror', 'varnish', 'vcl', 'util'],
  runtime: ['ir', 'vcl', 'varnish', 'metrics', 'mirror', 'util'],
  operator: ['gatewayapi', 'ir', 'providers', 'util'],
  echo: ['util'],
  standalone: ['gatewayapi', 'ir', 'metrics', 'pipeline', 'providers', 'runtime', 'varnish', 'vcl', 'util'],
  chaperone: ['gatewayapi', 'ir', 'metrics', 'pipeline', 'providers', 'runtime', 'varnish', 'vcl', 'util'],
  // vgw explain: the pure IR view (gatewayapi precedence, vcl normalisation) beside a throwaway varnishd.
  explain: ['gatewayapi', 'ir', 'pipeline', 'runtime', 'varnish', 'vcl', 'util'],
  cli: ['chaperone', 'echo', 'explain', 'gatewayapi', 'ir', 'metrics', 'operator', 'pipeline', 'providers', 'runtime', 'standalone', 'varnish', 'vcl', 'util'],
};

/** Relative module specifiers of a TypeScript source: static imports, re-exports, dynamic imports. */
export function relativeImports(source: string): string[] {
  // Comments may mention paths; only code counts.
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const specs: string[] = [];
  const statement = /(?:^|[\n;])\s*(?:import|export)\b[^;'"]*?\bfrom\s*['"]([^'"]+)['"]/g;
  const bare = /(?:^|[\n;])\s*import\s*['"]([^'"]+)['"]/g;
  const dynamic = /\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g;
  for (const re of [statement, bare, dynamic]) for (const m of code.matchAll(re)) specs.push(m[1]);
  return specs.filter((s) => s.startsWith('.'));
}

/** The top-level folder under src/ of an absolute path, or null when the path is outside src/. */
function folderOf(path: string): string | null {
  const rel = relative(SRC, path);
  if (rel.startsWith('..') || rel === '') return null;
  return rel.split('/')[0];
}

/** The imports of `file` (absolute, under src/) that its folder may not make, as messages. */
export function violations(file: string, source: string): string[] {
  const from = folderOf(file);
  assert.ok(from, `${file} is not under src/`);
  const allowed = ALLOWED[from] ?? [];
  const out: string[] = [];
  for (const spec of relativeImports(source)) {
    const to = folderOf(resolve(dirname(file), spec));
    if (to === from) continue;
    if (to === null || !allowed.includes(to)) out.push(`${relative(SRC, file)} imports ${spec} (${from}/ may import only: ${allowed.join(', ') || 'nothing'})`);
  }
  return out;
}

function sourceFiles(): string[] {
  return readdirSync(SRC, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts'))
    .map((f) => join(SRC, f))
    .sort();
}

describe('import directions', () => {
  test('every folder under src/ has an entry in the table', () => {
    const folders = new Set(sourceFiles().map((f) => folderOf(f) as string));
    for (const folder of folders) assert.ok(folder in ALLOWED, `src/${folder}/ has no entry in ALLOWED: decide what it may import`);
  });

  test('the table is one-way: no folder can reach itself through the folders it may import', () => {
    const cycles: string[] = [];
    const visit = (folder: string, path: string[]): void => {
      for (const next of ALLOWED[folder] ?? []) {
        if (next === path[0]) cycles.push([...path, next].join(' -> '));
        else if (!path.includes(next)) visit(next, [...path, next]);
      }
    };
    for (const folder of Object.keys(ALLOWED)) visit(folder, [folder]);
    assert.deepEqual(cycles, []);
  });

  test('every relative import in src/ follows the table', () => {
    const found: string[] = [];
    let imports = 0;
    for (const file of sourceFiles()) {
      const source = readFileSync(file, 'utf8');
      imports += relativeImports(source).length;
      found.push(...violations(file, source));
    }
    assert.ok(imports > 100, `only ${imports} relative imports found: the extractor is broken`);
    assert.deepEqual(found, []);
  });

  test('the checker catches the imports the table forbids', () => {
    const at = (path: string) => join(SRC, path);
    // The translator reaching into the VCL escaping layer, single-line and multi-line.
    assert.equal(violations(at('gatewayapi/rules.ts'), "import { headerNameProblem } from '../vcl/escape.ts';\n").length, 1);
    assert.equal(violations(at('gatewayapi/rules.ts'), "import {\n  headerNameProblem,\n  vclStringProblem,\n} from '../vcl/escape.ts';\n").length, 1);
    assert.equal(violations(at('gatewayapi/schema/index.ts'), "export { vclString } from '../../vcl/escape.ts';\n").length, 1);
    // The runtime reaching back into the translator or the pipeline.
    assert.equal(violations(at('runtime/data-plane.ts'), "import { MAX_RETRY_ATTEMPTS } from '../gatewayapi/rules.ts';\n").length, 1);
    assert.equal(violations(at('runtime/data-plane.ts'), "import type { CompiledConfig } from '../pipeline/render.ts';\n").length, 1);
    assert.equal(violations(at('runtime/observed-data-plane.ts'), "import { StandaloneServer } from '../standalone/server.ts';\n").length, 1);
    // Lower layers never reach up into the runtime that assembles them.
    assert.equal(violations(at('varnish/vsl.ts'), "import { DataPlane } from '../runtime/data-plane.ts';\n").length, 1);
    assert.equal(violations(at('metrics/registry.ts'), "import { ConfigApplier } from '../runtime/config-applier.ts';\n").length, 1);
    assert.equal(violations(at('vcl/compile.ts'), "const m = await import('../gatewayapi/rules.ts');\n").length, 1);
    assert.equal(violations(at('ir/schema.ts'), "import { validHostname } from '../gatewayapi/hostnames.ts';\n").length, 1);
    // Allowed: the limits module from every stage, and a folder's own files.
    assert.deepEqual(violations(at('gatewayapi/rules.ts'), "import { MAX_RETRY_ATTEMPTS } from '../ir/limits.ts';\nimport { x } from './types.ts';\n"), []);
    assert.deepEqual(violations(at('runtime/data-plane.ts'), "import { MAX_RETRY_ATTEMPTS } from '../ir/limits.ts';\n"), []);
    // Comments do not count.
    assert.deepEqual(violations(at('gatewayapi/rules.ts'), "// import { x } from '../vcl/escape.ts';\n/* import { y } from '../varnish/cli.ts'; */\n"), []);
  });
});
