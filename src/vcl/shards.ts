// Sharded VCL: VCL compile time grows with the size of the VCL, so a change recompiling all
// routes cannot be fast at thousands of routes. Exact-host vhosts are spread over K shard VCLs
// by a hash of the host; a small top-level VCL hashes the request's host the same way and
// switches to that shard's label with return (vcl(...)). A route change recompiles one shard.
// Wildcard and catch-all vhosts cannot be found by hashing the request's host, so every shard
// carries them.
import { createHash } from 'node:crypto';
import type { EndpointMap, IRVirtualHost, RoutingIR } from '../ir/types.ts';
import { serviceKey } from '../ir/types.ts';
import { absoluteFormVcl } from './normalize.ts';
import { viaTlsProxy } from './backend-tls.ts';
import { compileVcl, DRAINING_CLOSE, usedServices, type CompileStats, type CompileVclOptions } from './compile.ts';
import { vclInt, vclName, vclString } from './escape.ts';

/** Up to this many exact-host vhosts a single VCL is used (no dispatcher hop). */
export const UNSHARDED_VHOSTS = 256;
/**
 * Exact-host vhosts per shard we aim for beyond that. A route change recompiles one shard, and
 * most of a shard's `vcl.inline` is a fixed cost (the manager forks for VCC, the C compiler and
 * a load test; a shard with no vhosts is a whole VCL, request normalisation included): about
 * 65 ms of a bare varnishd on a quiet machine, plus about 0.2 ms per vhost. Measured with
 * `npm run bench:scale` on a loaded machine, 128 instead of 256 took the shard's `vcl.inline`
 * from 131 to 121 ms at 1 000 routes and from 122-136 to 100 ms at 5 000 (64 shards of about 78
 * vhosts instead of 32 of about 156). Smaller still gains little against the fixed cost, and
 * every shard is one more VCL for varnishd to hold and for the start-up split to compile.
 */
export const VHOSTS_PER_SHARD = 128;
/** Up to 256 shards are addressable (the dispatcher and --shards); the default stops at 64. */
export const MAX_SHARDS = 256;
const MAX_DEFAULT_SHARDS = 64;

/**
 * Label names carry the shard count: when the count changes, the new shards get new labels,
 * so the old dispatcher keeps reaching the old shards until the new one is in use.
 */
export const shardLabel = (count: number, i: number) => vclName(`vgw_shard_${vclInt(count, 1, MAX_SHARDS)}_${vclInt(i, 0, MAX_SHARDS - 1)}`);

export interface ShardedVcl {
  /** The VCL to use: the whole config when unsharded, else the dispatcher. */
  main: string;
  /** Shard VCLs, loaded under shardLabel(count, i) before `main` is used; empty when unsharded. */
  shards: string[];
  stats: CompileStats;
}

/**
 * What a reloader deploys: the one VCL when unsharded, else the shard VCLs under their labels
 * plus the dispatcher that names them.
 */
export function deployable(v: ShardedVcl): string | { main: string; shards: readonly string[]; label: (i: number) => string } {
  const { main, shards } = v;
  return shards.length ? { main, shards, label: (i: number) => shardLabel(shards.length, i) } : main;
}

/** Same VCL texts, compared piece by piece (joining them would copy megabytes per change). */
export function sameDeploy(a: ShardedVcl | null, b: ShardedVcl): boolean {
  return a !== null && a.main === b.main && a.shards.length === b.shards.length && a.shards.every((s, i) => s === b.shards[i]);
}

/** Powers of two, so the count changes (and everything recompiles) only on doubling. */
export function shardCount(ir: RoutingIR): number {
  let exact = 0;
  for (const s of ir.sockets) for (const v of s.vhosts) if (isExact(v)) exact++;
  if (exact <= UNSHARDED_VHOSTS) return 1;
  let k = 2;
  while (k < MAX_DEFAULT_SHARDS && exact > k * VHOSTS_PER_SHARD) k *= 2;
  return k;
}

/**
 * The same hash as vmod_directors' shard.key(): the last four bytes of SHA-256, little
 * endian. The host is what the VCL computes: lowercased, port removed.
 */
export function shardOf(host: string, count: number): number {
  let key = hostKeys.get(host);
  if (key === undefined) {
    key = createHash('sha256').update(host).digest().readUInt32LE(28);
    // Every render places every host again; hashing each one each time was a tenth of a
    // 5 000-route render. Bounded: hosts come and go, so a full memo is simply started over.
    if (hostKeys.size >= HOST_KEY_MEMO_LIMIT) hostKeys.clear();
    hostKeys.set(host, key);
  }
  return key % count;
}

/** Hosts whose shard key is remembered, at most (a few MB of memory). */
export const HOST_KEY_MEMO_LIMIT = 65_536;
const hostKeys = new Map<string, number>();

/** Hosts whose shard key is remembered now (tests). */
export function hostKeyMemoSize(): number {
  return hostKeys.size;
}

/**
 * Shard VCL texts from the previous render, with everything a shard's text depends on. A change
 * then regenerates only the shards it touches. The vhosts are compared by identity first: an
 * incremental translation (src/gatewayapi/translation-memo.ts) hands out the same vhost objects
 * for hosts a change did not touch, so an untouched shard costs no serialisation at all. Only
 * when identities differ (a full translation, a config decoded from a ConfigMap) are the vhosts
 * compared as JSON, which is still several times cheaper than generating VCL.
 */
export type ShardCache = Map<number, ShardEntry>;

interface ShardEntry {
  /** Shard count, draining, the sockets without their vhosts, and the services the shard uses. */
  head: string;
  /** The shard's vhosts per socket, as compiled. */
  vhosts: IRVirtualHost[][];
  /** JSON of `vhosts` as compiled (taken when the shard is compiled, a small cost beside it). */
  json: string;
  vcl: string;
  stats: CompileStats;
}

function sameObjects(a: readonly IRVirtualHost[][], b: readonly IRVirtualHost[][]): boolean {
  return a.length === b.length && a.every((list, i) => list.length === b[i].length && list.every((v, j) => v === b[i][j]));
}

export function compileSharded(ir: RoutingIR, endpoints: EndpointMap, count = shardCount(ir), cache?: ShardCache, options: CompileVclOptions = {}): ShardedVcl {
  if (count <= 1) {
    const { vcl, stats } = compileVcl(ir, endpoints, options);
    return { main: vcl, shards: [], stats };
  }
  // One pass buckets every vhost: exact hosts into their shard, the rest into all of them.
  const buckets = Array.from({ length: count }, () => ir.sockets.map((): IRVirtualHost[] => []));
  ir.sockets.forEach((s, si) => {
    for (const v of s.vhosts) {
      if (isExact(v)) buckets[shardOf(v.hostname, count)][si].push(v);
      else for (const b of buckets) b[si].push(v);
    }
  });
  const shards: string[] = [];
  const stats: CompileStats = { vhosts: 0, routes: 0, backends: 0 };
  const socketHeads = cache ? JSON.stringify(ir.sockets.map(({ vhosts: _, ...socket }) => socket)) : '';
  for (let i = 0; i < count; i++) {
    const part: RoutingIR = { ...ir, sockets: ir.sockets.map((s, si) => ({ ...s, vhosts: buckets[i][si] })) };
    const services = [...usedServices(part.sockets.flatMap((s) => s.vhosts))].map((k) => {
      const svc = ir.services[k];
      const eps = endpoints.get(serviceKey(svc));
      // A TLS service's text depends on its proxy ports too.
      return svc.tls ? [k, svc, eps, viaTlsProxy(svc, eps ?? [], options.tlsProxyPorts)] : [k, svc, eps];
    });
    const head = cache ? JSON.stringify([count, options.draining === true, socketHeads, services]) : '';
    const hit = cache?.get(i);
    let json: string | undefined;
    let same = hit !== undefined && hit.head === head && sameObjects(hit.vhosts, buckets[i]);
    if (cache && hit && !same && hit.head === head) {
      json = JSON.stringify(buckets[i]);
      same = hit.json === json;
    }
    const compiled = same && hit ? hit : compileVcl(part, endpoints, options);
    if (cache) cache.set(i, { head, vhosts: buckets[i], json: same && hit ? hit.json : (json ?? JSON.stringify(buckets[i])), vcl: compiled.vcl, stats: compiled.stats });
    shards.push(compiled.vcl);
    stats.vhosts += compiled.stats.vhosts;
    stats.routes += compiled.stats.routes;
    stats.backends = Math.max(stats.backends, compiled.stats.backends);
  }
  return { main: dispatcher(count, options.draining === true), shards, stats };
}

function isExact(v: IRVirtualHost): boolean {
  return v.hostname !== '*' && !v.hostname.startsWith('*.');
}

/**
 * The branch to each shard's label. VCL has no computed label and no local variables, so the
 * shard number is a header and each test reads it again (about 20 ns a test, measured). One
 * chain over 64 shards takes 32 tests on average; groups of about sqrt(count) shards, chosen by
 * an integer comparison first, take about 8 (16 at 256 shards).
 */
function shardSwitch(count: number): string[] {
  const group = shardGroup(count);
  const shardIs = (i: number) => `req.http.x-vgw-shard == ${vclString(vclInt(i, 0, MAX_SHARDS - 1))}`;
  const chain = (from: number, to: number): string[] => {
    const out: string[] = [];
    for (let i = from; i < to; i++) out.push(`${i === from ? 'if' : '} elsif'} (${shardIs(i)}) {`, `  return (vcl(${shardLabel(count, i)}));`);
    out.push('}');
    return out;
  };
  if (count <= group) return chain(0, count);
  const out: string[] = [];
  for (let from = 0; from < count; from += group) {
    const to = Math.min(from + group, count);
    out.push(`${from === 0 ? 'if' : '} elsif'} (std.integer(req.http.x-vgw-shard, ${MAX_SHARDS}) < ${vclInt(to, 1, MAX_SHARDS)}) {`, ...chain(from, to).map((l) => `  ${l}`));
  }
  out.push('}');
  return out;
}

/** Shards per group of the dispatcher's two-level switch: a power of two near sqrt(count), at least 8. */
export function shardGroup(count: number): number {
  return Math.max(8, 2 ** Math.ceil(Math.log2(count) / 2));
}

function dispatcher(count: number, draining: boolean): string {
  const k = vclInt(count, 2, MAX_SHARDS);
  const lines = [
    'vcl 4.1;',
    '# Generated by vgw: dispatches each request to the shard VCL that holds its host.',
    'import std;',
    'import directors;',
    '',
    'backend vgw_none none;',
    '',
    'sub vcl_init {',
    '  new vgw_shard_key = directors.shard();',
    '}',
    '',
    'sub vcl_recv {',
    // The shard is chosen by the host the shard VCL will route on: an absolute-form target's.
    ...absoluteFormVcl().map((l) => `  ${l}`),
    `  set req.http.x-vgw-shard = vgw_shard_key.key(std.tolower(regsub(req.http.host, ":[0-9]*$", ""))) % ${k};`,
  ];
  lines.push(...shardSwitch(count).map((l) => `  ${l}`));
  lines.push('  return (synth(500));', '}', '');
  // The shard answers every request it takes; only the dispatcher's own 500 is answered here.
  if (draining) lines.push('sub vcl_synth {', `  ${DRAINING_CLOSE}`, '}', '');
  return lines.join('\n');
}
