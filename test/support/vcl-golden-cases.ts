// The VCL golden cases (test/testdata/vcl/<case>.ir.yaml): a routing IR and its endpoints, read
// through the IR schema as the in-pod agent reads a published IR, compiled as the data plane
// would. Shared by the golden test and the varnishd -C test of the golden files.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { z } from 'zod';
import { parseRoutingIR } from '../../src/ir/schema.ts';
import type { EndpointMap, RoutingIR } from '../../src/ir/types.ts';
import { compileSharded } from '../../src/vcl/shards.ts';
import { goldenCases } from './golden.ts';

export const VCL_GOLDEN_DIR = join(import.meta.dirname, '..', 'testdata', 'vcl');
export const IR_SUFFIX = '.ir.yaml';

const caseFile = z.strictObject({
  /** Shard count passed to compileSharded; absent = 1 (one VCL). */
  shards: z.number().int().min(1).optional(),
  /** Compiled as a draining data plane's VCL (CompileVclOptions.draining). */
  draining: z.boolean().optional(),
  ir: z.unknown(),
  /** Ready endpoints by service key ("namespace/name:port"). */
  endpoints: z.record(z.string(), z.array(z.strictObject({ address: z.string(), port: z.number().int() }))).default({}),
  /** Backend TLS proxy ports by tlsProxyKey (CompileVclOptions.tlsProxyPorts). */
  tlsProxyPorts: z.record(z.string(), z.number().int()).optional(),
});

export interface VclGoldenCase {
  name: string;
  ir: RoutingIR;
  endpoints: EndpointMap;
  shards: number;
  draining: boolean;
  tlsProxyPorts?: ReadonlyMap<string, number>;
}

export function vclGoldenCases(): string[] {
  return goldenCases(VCL_GOLDEN_DIR, IR_SUFFIX);
}

export function readVclGoldenCase(name: string): VclGoldenCase {
  const file = join(VCL_GOLDEN_DIR, name + IR_SUFFIX);
  const doc = caseFile.parse(parse(readFileSync(file, 'utf8')));
  const parsed = parseRoutingIR(doc.ir);
  if (!parsed.ok) throw new Error(`${file}: ir: ${parsed.reason}`);
  const c: VclGoldenCase = { name, ir: parsed.ir, endpoints: new Map(Object.entries(doc.endpoints)), shards: doc.shards ?? 1, draining: doc.draining ?? false };
  if (doc.tlsProxyPorts) c.tlsProxyPorts = new Map(Object.entries(doc.tlsProxyPorts));
  return c;
}

/** Golden file name -> VCL text: `<case>.vcl` (whole config or dispatcher), `<case>.shard-N.vcl`. */
export function compileVclGoldenCase(c: VclGoldenCase): Map<string, string> {
  const compiled = compileSharded(c.ir, c.endpoints, c.shards, undefined, { draining: c.draining, ...(c.tlsProxyPorts ? { tlsProxyPorts: c.tlsProxyPorts } : {}) });
  const out = new Map([[`${c.name}.vcl`, compiled.main]]);
  compiled.shards.forEach((vcl, i) => out.set(`${c.name}.shard-${i}.vcl`, vcl));
  return out;
}
