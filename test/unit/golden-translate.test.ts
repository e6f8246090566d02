// Golden files for the translator: test/testdata/translate/<case>.in.yaml (Kubernetes manifests,
// read by the real file loader as a one-file directory) -> <case>.out.yaml (routing IR,
// per-Gateway IRs, statuses, problems, resolved endpoints). UPDATE_GOLDEN=1 rewrites the outputs.
//
// A case may start with a line `# options: {...}` (JSON) giving translator options the
// manifests cannot: `unavailableSockets` ({"address:port": "why"}), `defaultAddress`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { stringify } from 'yaml';
import { resolveEndpoints } from '../../src/gatewayapi/endpoints.ts';
import { translate, type ObjectStatus } from '../../src/gatewayapi/translator.ts';
import { loadManifestDir, ManifestLoadError } from '../../src/providers/file/load.ts';
import { assertGolden, goldenCases, staleGoldenFiles, UPDATE_GOLDEN } from '../support/golden.ts';

const DIR = join(import.meta.dirname, '..', 'testdata', 'translate');
const IN = '.in.yaml';
const OUT = '.out.yaml';
/** Fixed, so statuses are deterministic. */
const NOW = '2026-01-01T00:00:00Z';
const DEFAULT_ADDRESS = '127.0.0.1';

/** No line folding, and repeated objects written out rather than as YAML anchors. */
const YAML_OPTIONS = { lineWidth: 0, aliasDuplicateObjects: false } as const;

/**
 * The GatewayClass's supportedFeatures list is the same in every case: only the gatewayclass-*
 * cases show it, the others its length, so adding a feature changes few golden files.
 */
function elideFeatures(s: ObjectStatus): unknown {
  if (s.kind !== 'GatewayClass' || !s.status.supportedFeatures) return s;
  return { ...s, status: { ...s.status, supportedFeatures: `${s.status.supportedFeatures.length} features (listed in gatewayclass-accepted.out.yaml)` } };
}

interface CaseOptions {
  defaultAddress?: string;
  unavailableSockets?: Record<string, string>;
}

function caseOptions(text: string): CaseOptions {
  const first = text.split('\n', 1)[0];
  const m = /^# options: (.*)$/.exec(first);
  return m ? (JSON.parse(m[1]) as CaseOptions) : {};
}

async function translateCase(name: string): Promise<string> {
  const source = join(DIR, name + IN);
  const text = readFileSync(source, 'utf8');
  const options = caseOptions(text);
  const dir = await mkdtemp(join(tmpdir(), 'vgw-golden-'));
  try {
    const file = join(dir, name + IN);
    await copyFile(source, file);
    // The loader names files relative to the working directory; the temporary directory
    // would make every output differ, so messages name the case file as committed.
    const shown = relative(process.cwd(), file) || file;
    const display = `testdata/translate/${name}${IN}`;
    const unshow = (s: string) => s.split(shown).join(display).split(file).join(display);
    let loaded;
    try {
      loaded = await loadManifestDir(dir);
    } catch (err) {
      if (!(err instanceof ManifestLoadError)) throw err;
      return unshow(stringify({ loadError: err.message }, YAML_OPTIONS));
    }
    const { snapshot, warnings } = loaded;
    const result = translate(snapshot, {
      defaultAddress: options.defaultAddress ?? DEFAULT_ADDRESS,
      now: NOW,
      ...(options.unavailableSockets ? { unavailableSockets: new Map(Object.entries(options.unavailableSockets)) } : {}),
    });
    const invalidEndpoints: string[] = [];
    const endpoints = resolveEndpoints(result.ir.services, snapshot.endpointSlices, (slice, message) =>
      invalidEndpoints.push(`${slice.metadata.namespace}/${slice.metadata.name}: ${message}`),
    );
    const out = {
      ...(warnings.length ? { warnings: warnings.map((w) => `${w.file}:${w.line}: ${w.message}`) } : {}),
      problems: result.problems,
      statuses: name.startsWith('gatewayclass-') ? result.statuses : result.statuses.map(elideFeatures),
      ir: result.ir,
      // Per accepted Gateway: its infrastructure and its own routing (merged, they give `ir`).
      gateways: result.gateways,
      endpoints: Object.fromEntries([...endpoints].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
      ...(invalidEndpoints.length ? { invalidEndpoints } : {}),
      ...(result.leftOutSockets.length ? { leftOutSockets: result.leftOutSockets } : {}),
    };
    return unshow(stringify(out, YAML_OPTIONS));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const cases = goldenCases(DIR, IN);

test('there are translator golden cases', () => assert.ok(cases.length >= 30, `only ${cases.length} cases in ${DIR}`));

for (const name of cases) {
  test(`translate: ${name}`, async () => {
    assertGolden(join(DIR, name + OUT), await translateCase(name));
  });
}

test('every translator output has its input', () => {
  const stale = staleGoldenFiles(DIR, (f) => f.endsWith(OUT), new Set(cases.map((c) => c + OUT)));
  assert.deepEqual(stale, [], `outputs without a ${IN} input${UPDATE_GOLDEN ? '' : ' (UPDATE_GOLDEN=1 deletes them)'}`);
});
