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
import { parseRoutingIR } from './schema.ts';
import { IR_VERSION, type RoutingIR } from './types.ts';

/** On every routing ConfigMap: the Gateway it belongs to, as "name" (same namespace). */
export const GATEWAY_LABEL = 'gateway.vgw.dev/gateway';
/** On every routing ConfigMap: "head" or "part". */
export const ROLE_LABEL = 'gateway.vgw.dev/routing-role';
export const FORMAT = 'vgw.dev/routing-ir+gzip';
const PAYLOAD_KEY = 'routing.json.gz';
/** Compressed bytes per ConfigMap: leaves room under the 1 MiB limit for metadata. */
export const PART_BYTES = 900 * 1024;
/**
 * On the head: when the publisher wrote this config (RFC 3339). Gateway pods measure from it how
 * long a config took to go live (vgw_config_propagation_seconds). Not part of the config: the
 * publisher compares heads by sha256 only, and an agent ignores a value it cannot parse.
 */
export const PUBLISHED_AT_ANNOTATION = 'gateway.vgw.dev/published-at';

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
export function encodeRoutingConfig(ir: RoutingIR, namespace: string, gateway: string, partBytes = PART_BYTES, publishedAt?: Date): ConfigMapObject[] {
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
    metadata: { name: headName(gateway), namespace, labels: labels('head'), ...(publishedAt ? { annotations: { [PUBLISHED_AT_ANNOTATION]: publishedAt.toISOString() } } : {}) },
    data: { format: FORMAT, irVersion: String(ir.version), sha256, parts: String(chunks.length), bytes: String(payload.length) },
    binaryData: { [PAYLOAD_KEY]: chunks[0].toString('base64') },
  };
  return [...parts, head];
}

export type DecodeResult =
  /** publishedAt: the head's PUBLISHED_AT_ANNOTATION in epoch milliseconds, when it has a valid one. */
  | { state: 'ok'; ir: RoutingIR; sha256: string; publishedAt?: number }
  /** Some part is missing or from another config: wait for the next change. */
  | { state: 'incomplete'; reason: string }
  /** The head is complete but unusable: report it and keep the last good config. */
  | { state: 'invalid'; reason: string };

interface ConfigMapLike {
  metadata?: { name?: string; labels?: Record<string, string>; annotations?: Record<string, string>; resourceVersion?: string };
  data?: Record<string, string>;
  binaryData?: Record<string, string>;
}

/**
 * Limits of what a reader accepts. The payload is inflated into memory, so its inflated size is
 * bounded (a small gzip of a long run of one byte inflates a thousandfold); the compressed size
 * and the part count are bounded before anything is concatenated.
 */
export const DECODE_LIMITS = {
  /** Parts, head included: 20 × PART_BYTES is about 17.6 MiB. */
  parts: 20,
  /** Compressed payload, all parts together. */
  compressedBytes: 16 * 1024 * 1024,
  /** Inflated JSON. The IR of 10 000 routes is a few MiB. */
  inflatedBytes: 64 * 1024 * 1024,
} as const;

/** Reassembles the IR from the routing ConfigMaps of one Gateway (any order, extras ignored). */
export function decodeRoutingConfig(configMaps: ConfigMapLike[], gateway: string): DecodeResult {
  const payload = collectPayload(configMaps, gateway);
  if ('state' in payload) return payload;
  return withPublishedAt(inflateAndParse(payload.bytes, payload.sha256), payload.publishedAt);
}

function withPublishedAt(result: DecodeResult, publishedAt: number | undefined): DecodeResult {
  return result.state === 'ok' && publishedAt !== undefined ? { ...result, publishedAt } : result;
}

/** The head's publication time; anything but an RFC 3339 UTC time is ignored. */
function publishedAtOf(head: ConfigMapLike): number | undefined {
  const v = head.metadata?.annotations?.[PUBLISHED_AT_ANNOTATION];
  if (typeof v !== 'string' || !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/.test(v)) return undefined;
  const ms = Date.parse(v);
  return Number.isFinite(ms) ? ms : undefined;
}

/** The head's checks and the concatenated compressed payload, verified against its hash. */
function collectPayload(configMaps: ConfigMapLike[], gateway: string): DecodeResult | { bytes: Buffer; sha256: string; publishedAt?: number } {
  const head = configMaps.find((c) => c.metadata?.name === headName(gateway));
  if (!head) return { state: 'incomplete', reason: `ConfigMap ${headName(gateway)} not found` };
  const d = head.data ?? {};
  if (d.format !== FORMAT) return { state: 'invalid', reason: `ConfigMap ${headName(gateway)}: format ${JSON.stringify(d.format)}, expected ${FORMAT}` };
  if (d.irVersion !== String(IR_VERSION)) {
    return { state: 'invalid', reason: `routing IR version ${String(d.irVersion).slice(0, 20)} is not the version this agent reads (${IR_VERSION}); upgrade the gateway pods` };
  }
  if (typeof d.parts !== 'string' || !/^[1-9][0-9]{0,2}$/.test(d.parts)) {
    return { state: 'invalid', reason: `ConfigMap ${headName(gateway)}: bad part count ${JSON.stringify(String(d.parts).slice(0, 20))}` };
  }
  const count = Number(d.parts);
  if (count > DECODE_LIMITS.parts) return { state: 'invalid', reason: `ConfigMap ${headName(gateway)}: ${count} parts, at most ${DECODE_LIMITS.parts} are read` };
  if (typeof d.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(d.sha256)) return { state: 'invalid', reason: `ConfigMap ${headName(gateway)}: sha256 is not a SHA-256 hex digest` };
  const chunks: Buffer[] = [];
  let total = 0;
  for (let i = 0; i < count; i++) {
    const cm = i === 0 ? head : configMaps.find((c) => c.metadata?.name === partName(gateway, i));
    if (!cm) return { state: 'incomplete', reason: `part ${i} (${partName(gateway, i)}) not found` };
    if (i > 0 && cm.data?.sha256 !== d.sha256) return { state: 'incomplete', reason: `part ${i} belongs to another config` };
    const b64 = cm.binaryData?.[PAYLOAD_KEY];
    if (typeof b64 !== 'string') return { state: 'invalid', reason: `part ${i} has no ${PAYLOAD_KEY}` };
    // Base64 is 4 characters per 3 bytes: refuse before decoding what would be too large.
    total += Math.floor((b64.length * 3) / 4);
    if (total > DECODE_LIMITS.compressedBytes) {
      return { state: 'invalid', reason: `the compressed routing config is larger than ${DECODE_LIMITS.compressedBytes} bytes` };
    }
    chunks.push(Buffer.from(b64, 'base64'));
  }
  const bytes = Buffer.concat(chunks);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  // Every part claims the head's hash, so this is not a config being written: it is damaged.
  if (sha256 !== d.sha256) return { state: 'invalid', reason: 'the routing config does not match its own checksum (damaged ConfigMap?)' };
  return { bytes, sha256, publishedAt: publishedAtOf(head) };
}

function inflateAndParse(payload: Buffer, sha256: string): DecodeResult {
  let json: string;
  try {
    json = gunzipSync(payload, { maxOutputLength: DECODE_LIMITS.inflatedBytes }).toString('utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
      return { state: 'invalid', reason: `the routing config inflates to more than ${DECODE_LIMITS.inflatedBytes} bytes (${DECODE_LIMITS.inflatedBytes / 1024 / 1024} MiB): refused` };
    }
    return { state: 'invalid', reason: `cannot decode the routing config: ${(err as Error).message}` };
  }
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (err) {
    return { state: 'invalid', reason: `cannot decode the routing config: ${(err as Error).message.slice(0, 200)}` };
  }
  if ((value as { version?: unknown } | null)?.version !== IR_VERSION) {
    return { state: 'invalid', reason: 'the routing config is not a routing IR of the expected version' };
  }
  const parsed = parseRoutingIR(value);
  if (!parsed.ok) return { state: 'invalid', reason: `the routing config is not a routing IR this agent accepts: ${parsed.reason}` };
  return { state: 'ok', ir: parsed.ir, sha256 };
}

/**
 * decodeRoutingConfig() for a long-running reader: the payload is inflated and parsed only when
 * the ConfigMaps that carry it changed. Every ConfigMap or EndpointSlice event asks for the
 * config again, and inflating it each time would cost far more than the event itself.
 */
export class RoutingConfigReader {
  private readonly gateway: string;
  private last: { key: string | null; sha256: string; result: DecodeResult } | null = null;
  /** Payloads inflated and parsed so far (tests and metrics). */
  decodes = 0;

  constructor(gateway: string) {
    this.gateway = gateway;
  }

  read(configMaps: ConfigMapLike[]): DecodeResult {
    const key = this.keyOf(configMaps);
    if (key !== null && this.last?.key === key) return this.last.result;
    const payload = collectPayload(configMaps, this.gateway);
    if ('state' in payload) return payload;
    // The same bytes under new resourceVersions (the config written again) are not redone.
    if (this.last?.sha256 === payload.sha256) {
      this.last = { ...this.last, key };
    } else {
      this.decodes++;
      this.last = { key, sha256: payload.sha256, result: withPublishedAt(inflateAndParse(payload.bytes, payload.sha256), payload.publishedAt) };
    }
    return this.last.result;
  }

  /**
   * Identity of the ConfigMaps the config is read from: names and resourceVersions of the head
   * and the parts it names. null when the set is incomplete or a resourceVersion is missing.
   */
  private keyOf(configMaps: ConfigMapLike[]): string | null {
    const head = configMaps.find((c) => c.metadata?.name === headName(this.gateway));
    const count = Number(head?.data?.parts);
    if (!head || !Number.isInteger(count) || count < 1 || count > DECODE_LIMITS.parts) return null;
    const versions: string[] = [];
    for (let i = 0; i < count; i++) {
      const cm = i === 0 ? head : configMaps.find((c) => c.metadata?.name === partName(this.gateway, i));
      const rv = cm?.metadata?.resourceVersion;
      if (!rv) return null;
      versions.push(rv);
    }
    return versions.join(',');
  }
}
