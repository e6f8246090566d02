// Properties A (pure pipeline) and B (generated VCL compiles in varnishd, user text stays in
// literals), shared by the tests in this directory and bench/fuzz.ts.
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveEndpoints } from '../../src/gatewayapi/endpoints.ts';
import { translate } from '../../src/gatewayapi/translator.ts';
import type { ResourceSnapshot } from '../../src/gatewayapi/types.ts';
import { render } from '../../src/pipeline/render.ts';
import { loadManifestDir, ManifestLoadError } from '../../src/providers/file/load.ts';
import { compileVcl } from '../../src/vcl/compile.ts';
import { yamlDocs } from '../integration/support/manifests.ts';
import { LOOPBACK, MARKER } from './arbitraries.ts';
import { vccCompile } from './varnishd-compile.ts';
import { markerOutsideLiterals } from './vcl-scan.ts';

const NOW = '2024-01-01T00:00:00Z';
const DEFAULT_ADDRESS = `${LOOPBACK}.1`;

const describeError = (err: unknown) => (err instanceof Error ? `${err.name}: ${err.message.slice(0, 500)}\n${err.stack?.split('\n').slice(1, 4).join('\n')}` : String(err));

/** A scratch directory the loader reads generated manifests from. */
export async function scratchDir(): Promise<{ dir: string; close: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'vgw-fuzz-'));
  return { dir, close: () => rm(dir, { recursive: true, force: true }) };
}

/**
 * The manifests as YAML text through the file loader. A ManifestLoadError is an answer (the
 * input is refused, with file and line); anything else it throws is a defect.
 */
export async function loadObjects(dir: string, objects: object[]): Promise<ResourceSnapshot | null> {
  await writeFile(join(dir, 'manifests.yaml'), yamlDocs(objects));
  try {
    return (await loadManifestDir(dir)).snapshot;
  } catch (err) {
    if (err instanceof ManifestLoadError) return null;
    throw new Error(`the loader threw something other than ManifestLoadError: ${describeError(err)}`);
  }
}

/**
 * Property A: whatever the manifests, the loader refuses them with ManifestLoadError or the
 * translator and compiler turn them into VCL without throwing, and every HTTPRoute reported
 * Accepted has its routes in the IR and in the VCL.
 */
export async function pipelineHolds(dir: string, objects: object[]): Promise<void> {
  const snapshot = await loadObjects(dir, objects);
  if (!snapshot) return;
  let result;
  try {
    result = translate(snapshot, { defaultAddress: DEFAULT_ADDRESS, now: NOW });
  } catch (err) {
    throw new Error(`translate threw: ${describeError(err)}`);
  }
  let vcl: string;
  try {
    vcl = compileVcl(result.ir, resolveEndpoints(result.ir.services, snapshot.endpointSlices)).vcl;
  } catch (err) {
    throw new Error(`compileVcl threw on a translated IR: ${describeError(err)}`);
  }
  try {
    render(snapshot, { defaultAddress: DEFAULT_ADDRESS, now: NOW, shards: 1 });
  } catch (err) {
    throw new Error(`render threw: ${describeError(err)}`);
  }
  const routeIds = result.ir.sockets.flatMap((s) => s.vhosts.flatMap((v) => v.routes.map((r) => r.id)));
  for (const s of result.statuses) {
    if (s.kind !== 'HTTPRoute') continue;
    if (!s.status.parents.some((p) => p.conditions.some((c) => c.type === 'Accepted' && c.status === 'True'))) continue;
    const prefix = `${s.metadata.namespace}/${s.metadata.name}/`;
    if (!routeIds.some((id) => id.startsWith(prefix))) throw new Error(`HTTPRoute ${prefix.slice(0, -1)} is Accepted but has no route in the IR`);
  }
  for (const id of routeIds) {
    // Plain ids appear verbatim; others are covered by property B's literal scan.
    if (/^[A-Za-z0-9./_-]+$/.test(id) && !vcl.includes(id)) throw new Error(`route ${id} is in the IR but not in the VCL`);
  }
}

/** VCLs already compiled in this process (by hash): identical output needs no second varnishd. */
const compiledOk = new Set<string>();

/**
 * Property B: the VCL of whatever the translator accepts compiles in varnishd, and no user
 * text (hostile strings carry MARKER) appears outside a string literal or a comment.
 */
export async function vclCompilesAndContains(dir: string, objects: object[]): Promise<void> {
  const snapshot = await loadObjects(dir, objects);
  if (!snapshot) return;
  const config = render(snapshot, { defaultAddress: DEFAULT_ADDRESS, now: NOW, shards: 1 });
  for (const vcl of [config.deploy.main, ...config.deploy.shards]) {
    const misplaced = markerOutsideLiterals(vcl, MARKER);
    if (misplaced.length) {
      const m = misplaced[0];
      throw new Error(`user text outside a VCL literal (${m.why}, line ${m.line}): ${JSON.stringify(m.excerpt)} (${misplaced.length} in all)`);
    }
    const hash = createHash('sha256').update(vcl).digest('hex');
    if (compiledOk.has(hash)) continue;
    const result = await vccCompile(vcl);
    if (!result.ok) throw new Error(`varnishd -C refused the generated VCL:\n${result.message}`);
    compiledOk.add(hash);
  }
}
