// The routing IR as Kubernetes ConfigMaps: how the operator publishes one Gateway's config and
// how the chaperone in each gateway pod reads it back.
//
// A ConfigMap holds at most 1 MiB. The IR JSON of thousands of routes is larger, but it is very
// repetitive, so it is gzip-compressed (typically 15-30x) and stored as binaryData. If even the
// compressed form exceeds one ConfigMap, it is cut into parts, each its own ConfigMap. The
// ConfigMaps cannot be written atomically together, so every part carries the SHA-256 of the
// whole compressed payload, and the head ConfigMap (written last) names the hash and the part
// count: a reader uses a config only when every part it sees carries the head's hash.
import { createHash } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import { IR_VERSION, type RoutingIR } from './types.ts';

/** On every routing ConfigMap: the Gateway it belongs to, as "name" (same namespace). */
export const GATEWAY_LABEL = 'gateway.vgw.dev/gateway';
/** On every routing ConfigMap: "head" or "part". */
export const ROLE_LABEL = 'gateway.vgw.dev/routing-role';
export const FORMAT = 'vgw.dev/routing-ir+gzip';
const PAYLOAD_KEY = 'routing.json.gz';
/** Compressed bytes per ConfigMap: leaves room under the 1 MiB limit for metadata. */
export const PART_BYTES = 900 * 1024;

export interface ConfigMapObject {
  apiVersion: 'v1';
  kind: 'ConfigMap';
  metadata: { name: string; namespace: string; labels: Record<string, string>; annotations?: Record<string, string> };
  data: Record<string, string>;
  binaryData: Record<string, string>;
}

export function headName(gateway: string): string {
  return `vgw-routing-${gateway}`;
}

export function partName(gateway: string, index: number): string {
  return `${headName(gateway)}-part-${index}`;
}

/**
 * The ConfigMaps that carry `ir` for Gateway `namespace/gateway`: parts first, head last, in
 * the order a publisher must write them. Parts of an older, longer config that are not in the
 * list should be deleted after the head is written.
 */
export function encodeRoutingConfig(ir: RoutingIR, namespace: string, gateway: string, partBytes = PART_BYTES): ConfigMapObject[] {
  const payload = gzipSync(JSON.stringify(ir), { level: 6 });
  const sha256 = createHash('sha256').update(payload).digest('hex');
  const chunks: Buffer[] = [];
  for (let off = 0; off < payload.length || chunks.length === 0; off += partBytes) chunks.push(payload.subarray(off, off + partBytes));
  const labels = (role: string) => ({ [GATEWAY_LABEL]: gateway, [ROLE_LABEL]: role });
  const parts = chunks.slice(1).map(
    (chunk, i): ConfigMapObject => ({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: partName(gateway, i + 1), namespace, labels: labels('part') },
      data: { sha256, part: String(i + 1) },
      binaryData: { [PAYLOAD_KEY]: chunk.toString('base64') },
    }),
  );
  const head: ConfigMapObject = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: headName(gateway), namespace, labels: labels('head') },
    data: { format: FORMAT, irVersion: String(ir.version), sha256, parts: String(chunks.length), bytes: String(payload.length) },
    binaryData: { [PAYLOAD_KEY]: chunks[0].toString('base64') },
  };
  return [...parts, head];
}

export type DecodeResult =
  | { state: 'ok'; ir: RoutingIR; sha256: string }
  /** Some part is missing or from another config: wait for the next change. */
  | { state: 'incomplete'; reason: string }
  /** The head is complete but unusable: report it and keep the last good config. */
  | { state: 'invalid'; reason: string };

interface ConfigMapLike {
  metadata?: { name?: string; labels?: Record<string, string> };
  data?: Record<string, string>;
  binaryData?: Record<string, string>;
}

/** Reassembles the IR from the routing ConfigMaps of one Gateway (any order, extras ignored). */
export function decodeRoutingConfig(configMaps: ConfigMapLike[], gateway: string): DecodeResult {
  const head = configMaps.find((c) => c.metadata?.name === headName(gateway));
  if (!head) return { state: 'incomplete', reason: `ConfigMap ${headName(gateway)} not found` };
  const d = head.data ?? {};
  if (d.format !== FORMAT) return { state: 'invalid', reason: `ConfigMap ${headName(gateway)}: format ${JSON.stringify(d.format)}, expected ${FORMAT}` };
  if (d.irVersion !== String(IR_VERSION)) {
    return { state: 'invalid', reason: `routing IR version ${d.irVersion} is not the version this agent reads (${IR_VERSION}); upgrade the gateway pods` };
  }
  const count = Number(d.parts);
  if (!Number.isInteger(count) || count < 1) return { state: 'invalid', reason: `ConfigMap ${headName(gateway)}: bad part count ${JSON.stringify(d.parts)}` };
  const chunks: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const cm = i === 0 ? head : configMaps.find((c) => c.metadata?.name === partName(gateway, i));
    if (!cm) return { state: 'incomplete', reason: `part ${i} (${partName(gateway, i)}) not found` };
    if (i > 0 && cm.data?.sha256 !== d.sha256) return { state: 'incomplete', reason: `part ${i} belongs to another config` };
    const b64 = cm.binaryData?.[PAYLOAD_KEY];
    if (b64 === undefined) return { state: 'invalid', reason: `part ${i} has no ${PAYLOAD_KEY}` };
    chunks.push(Buffer.from(b64, 'base64'));
  }
  const payload = Buffer.concat(chunks);
  const sha256 = createHash('sha256').update(payload).digest('hex');
  // Every part claims the head's hash, so this is not a config being written: it is damaged.
  if (sha256 !== d.sha256) return { state: 'invalid', reason: 'the routing config does not match its own checksum (damaged ConfigMap?)' };
  let ir: RoutingIR;
  try {
    ir = JSON.parse(gunzipSync(payload).toString('utf8')) as RoutingIR;
  } catch (err) {
    return { state: 'invalid', reason: `cannot decode the routing config: ${(err as Error).message}` };
  }
  if (ir?.version !== IR_VERSION || !Array.isArray(ir.sockets) || !Array.isArray(ir.services)) {
    return { state: 'invalid', reason: 'the routing config is not a routing IR of the expected version' };
  }
  return { state: 'ok', ir, sha256 };
}
