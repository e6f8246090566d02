// The whole pure pipeline in one call: snapshot -> translator -> IR (+ endpoints) -> VCL.
// Used by `vgw check`, `vgw vcl` and `vgw serve`, so all three see the same result. The in-pod
// agent starts from a published IR instead, and uses only compileConfig().
import { resolveEndpoints } from '../gatewayapi/endpoints.ts';
import { routeRegexes, type RegexVerdicts } from '../gatewayapi/regex.ts';
import { translate, type ObjectStatus, type Problem } from '../gatewayapi/translator.ts';
import type { PreviousStatuses } from '../gatewayapi/status.ts';
import type { TranslationMemo } from '../gatewayapi/translation-memo.ts';
import type { Condition, HTTPRoute, ResourceSnapshot } from '../gatewayapi/types.ts';
import { regexProblem } from '../ir/regex-dialect.ts';
import type { EndpointMap, RoutingIR } from '../ir/types.ts';
import { TLS_PROXY_SOCKET, type CompileStats } from '../vcl/compile.ts';
import { tlsFrontends, type TlsFrontends } from './tls-frontends.ts';
import { backendTlsMaterial, backendTlsProxy, type BackendTlsProxy } from './backend-tls-proxy.ts';
import { compileSharded, shardCount, type ShardCache, type ShardedVcl } from '../vcl/shards.ts';

/** Test seam: changes the VCL a config deploys (to make a given IR fail to compile). */
export type CompileHook = (deploy: ShardedVcl, ir: RoutingIR) => ShardedVcl;

export interface RenderOptions {
  defaultAddress: string;
  now?: string;
  /** Shard VCL count; default: by number of exact-host vhosts (1 below a few hundred). */
  shards?: number;
  /** At most this many shard VCLs, whatever `shards` or the default says (a coarse start). */
  maxShards?: number;
  /** Reused across renders by long-running callers, so unchanged shards are not regenerated. */
  shardCache?: ShardCache;
  /** PCRE2's verdicts on the snapshot's regexes (see renderChecked). */
  regexVerdicts?: RegexVerdicts;
  /** Routes to reject because their VCL did not compile (src/pipeline/compile-isolation.ts). */
  rejectedRoutes?: (route: HTTPRoute) => string | null;
  compileHook?: CompileHook;
  /** Normalise request paths before routing (default 'On'); see RoutingIR.pathNormalization. */
  pathNormalization?: 'On' | 'Off';
  /** Listen sockets that cannot be bound (TranslateOptions.unavailableSockets). */
  unavailableSockets?: ReadonlyMap<string, string>;
  /** The statuses of the last render, so unchanged conditions keep their lastTransitionTime. */
  previous?: PreviousStatuses;
  /** Backend TLS proxy ports by tlsProxyKey; TLS endpoints without one are not reachable. */
  tlsProxyPorts?: ReadonlyMap<string, number>;
  /** Kept across renders by long-running callers: a route change translates incrementally. */
  translationMemo?: TranslationMemo;
}

/** What the data plane needs to serve a config: the VCL to deploy and its listen sockets. */
export interface CompiledConfig {
  ir: RoutingIR;
  endpoints: EndpointMap;
  /** The main VCL (the whole config when unsharded). */
  vcl: string;
  /** Main VCL plus shard VCLs, as the reloader deploys them. */
  deploy: ShardedVcl;
  stats: CompileStats;
  /** varnishd listen sockets this config needs, in a stable order. */
  sockets: { name: string; address: string; port: number; proxy?: boolean }[];
  /** The TLS terminator's frontends and certificates, when the config has HTTPS listeners
   *  and the Secrets are at hand (standalone mode). */
  tls?: TlsFrontends;
  /** The backend TLS proxy's services and material, when services have BackendTLSPolicies
   *  and the material is at hand (standalone mode). */
  backendTls?: BackendTlsProxy;
}

export interface RenderedConfig extends CompiledConfig {
  statuses: ObjectStatus[];
  problems: Problem[];
  /** Sockets usable listeners want that were left out as unavailable (see unavailableSockets). */
  leftOutSockets: { address: string; port: number }[];
  /** Set by renderChecked when PCRE2 could not be asked: regexes were checked by the tokenizer only. */
  regexCheckUnavailable?: string;
}

export type CompileOptions = Pick<RenderOptions, 'shards' | 'maxShards' | 'shardCache' | 'compileHook' | 'tlsProxyPorts'> & {
  /** The VCL of a draining data plane: every response closes its connection (CompileVclOptions). */
  draining?: boolean;
};

/** IR + endpoints -> the VCL set to deploy. */
export function compileConfig(ir: RoutingIR, endpoints: EndpointMap, options: CompileOptions = {}): CompiledConfig {
  const vclOptions = { ...(options.draining ? { draining: true } : {}), ...(options.tlsProxyPorts ? { tlsProxyPorts: options.tlsProxyPorts } : {}) };
  const count = Math.min(options.shards ?? shardCount(ir), options.maxShards ?? Infinity);
  const compiled = compileSharded(ir, endpoints, count, options.shardCache, vclOptions);
  const deploy = options.compileHook ? options.compileHook(compiled, ir) : compiled;
  return { ir, endpoints, vcl: deploy.main, deploy, stats: deploy.stats, sockets: varnishdSockets(ir) };
}

/**
 * varnishd's own sockets: one per plain IR socket, and for TLS sockets (whose address:port the
 * TLS terminator holds) the one loopback PROXY socket the terminator forwards to. Its port is
 * chosen by the kernel when varnishd starts; adding or removing HTTPS listeners later changes
 * only the terminator, never varnishd's sockets.
 */
export function varnishdSockets(ir: RoutingIR): CompiledConfig['sockets'] {
  const sockets: CompiledConfig['sockets'] = ir.sockets.filter((s) => !s.tls).map(({ name, address, port }) => ({ name, address, port }));
  if (ir.sockets.some((s) => s.tls)) sockets.push({ name: TLS_PROXY_SOCKET, address: '127.0.0.1', port: 0, proxy: true });
  return sockets;
}

export function render(snapshot: ResourceSnapshot, options: RenderOptions): RenderedConfig {
  const { ir, statuses, problems, leftOutSockets } = translate(snapshot, {
    defaultAddress: options.defaultAddress,
    now: options.now ?? new Date().toISOString(),
    ...(options.regexVerdicts ? { regexVerdicts: options.regexVerdicts } : {}),
    ...(options.rejectedRoutes ? { rejectedRoutes: options.rejectedRoutes } : {}),
    ...(options.unavailableSockets ? { unavailableSockets: options.unavailableSockets } : {}),
    ...(options.previous ? { previous: options.previous } : {}),
    ...(options.translationMemo ? { memo: options.translationMemo } : {}),
    // One varnishd serves every Gateway here: the combined IR is all that is needed.
    perGateway: false,
  });
  // A data-plane choice, not a Gateway API one: set here, outside the translator.
  if (options.pathNormalization === 'Off') ir.pathNormalization = 'Off';
  const endpoints = resolveEndpoints(ir.services, snapshot.endpointSlices);
  const compiled = compileConfig(ir, endpoints, options);
  if (ir.sockets.some((s) => s.tls)) {
    const byKey = <T extends { metadata: { namespace?: string; name: string } }>(list: readonly T[]) => new Map(list.map((o) => [`${o.metadata.namespace}/${o.metadata.name}`, o]));
    compiled.tls = tlsFrontends(ir, byKey(snapshot.secrets), byKey(snapshot.configMaps));
  }
  if (ir.services.some((s) => s.tls)) {
    compiled.backendTls = backendTlsProxy(ir, endpoints, options.tlsProxyPorts ?? new Map(), backendTlsMaterial(snapshot.configMaps, snapshot.secrets));
  }
  return { ...compiled, statuses, problems, leftOutSockets };
}

/** Asks PCRE2 about regexes (src/varnish/regex-check.ts implements it with varnishd -C). */
export interface RegexValidator {
  check(patterns: Iterable<string>): Promise<{ verdicts: RegexVerdicts; unavailable?: string }>;
}

/** Every regex of the snapshot's HTTPRoutes that the tokenizer accepts (the rest are rejected anyway). */
export function snapshotRegexes(snapshot: ResourceSnapshot): string[] {
  const out = new Set<string>();
  for (const route of snapshot.httpRoutes) {
    let patterns = regexesOf.get(route);
    if (!patterns) {
      patterns = routeRegexes(route).flatMap(({ pattern }) => (regexProblem(pattern) === null ? [pattern] : []));
      regexesOf.set(route, patterns);
    }
    for (const p of patterns) out.add(p);
  }
  return [...out];
}

/**
 * The accepted regexes of each route object. Unchanged routes are the same objects from one
 * render to the next (the loader and the cluster cache keep them), so a change re-reads only
 * the routes it touched. Weak: an object no longer in any snapshot takes its entry along.
 */
const regexesOf = new WeakMap<HTTPRoute, string[]>();

/**
 * render() with every regex first checked by PCRE2: a route with a regex PCRE2 refuses is
 * rejected (Accepted=False, UnsupportedValue, PCRE2's message) instead of failing the whole VCL.
 * The translator stays synchronous; the verdicts reach it as data.
 */
export async function renderChecked(snapshot: ResourceSnapshot, options: RenderOptions, validator: RegexValidator): Promise<RenderedConfig> {
  const { verdicts, unavailable } = await validator.check(snapshotRegexes(snapshot));
  const config = render(snapshot, { ...options, regexVerdicts: verdicts });
  return unavailable === undefined ? config : { ...config, regexCheckUnavailable: unavailable };
}

/** True when every Gateway and HTTPRoute we own is Accepted on every parent. */
export function allAccepted(statuses: readonly ObjectStatus[]): boolean {
  return statuses.every((s) => {
    if (s.kind === 'Gateway') return conditionTrue(s.status.conditions, 'Accepted');
    if (s.kind === 'HTTPRoute') return s.status.parents.every((p) => conditionTrue(p.conditions, 'Accepted'));
    return true;
  });
}

function conditionTrue(conditions: readonly Condition[], type: string): boolean {
  return conditions.some((c) => c.type === type && c.status === 'True');
}
