// The whole pure pipeline in one call: snapshot -> translator -> IR (+ endpoints) -> VCL.
// Used by `vgw check`, `vgw vcl` and `vgw serve`, so all three see the same result. The in-pod
// agent starts from a published IR instead, and uses only compileConfig().
import { resolveEndpoints } from '../gatewayapi/endpoints.ts';
import { translate, type ObjectStatus, type Problem } from '../gatewayapi/translator.ts';
import type { ResourceSnapshot } from '../gatewayapi/types.ts';
import type { EndpointMap, RoutingIR } from '../ir/types.ts';
import type { CompileStats } from '../vcl/compile.ts';
import { compileSharded, shardCount, type ShardCache, type ShardedVcl } from '../vcl/shards.ts';

export interface RenderOptions {
  defaultAddress: string;
  now?: string;
  /** Shard VCL count; default: by number of exact-host vhosts (1 below a few hundred). */
  shards?: number;
  /** Reused across renders by long-running callers, so unchanged shards are not regenerated. */
  shardCache?: ShardCache;
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
  sockets: { name: string; address: string; port: number }[];
}

export interface RenderedConfig extends CompiledConfig {
  statuses: ObjectStatus[];
  problems: Problem[];
}

export type CompileOptions = Pick<RenderOptions, 'shards' | 'shardCache'>;

/** IR + endpoints -> the VCL set to deploy. */
export function compileConfig(ir: RoutingIR, endpoints: EndpointMap, options: CompileOptions = {}): CompiledConfig {
  const deploy = compileSharded(ir, endpoints, options.shards ?? shardCount(ir), options.shardCache);
  const sockets = ir.sockets.map(({ name, address, port }) => ({ name, address, port }));
  return { ir, endpoints, vcl: deploy.main, deploy, stats: deploy.stats, sockets };
}

export function render(snapshot: ResourceSnapshot, options: RenderOptions): RenderedConfig {
  const { ir, statuses, problems } = translate(snapshot, {
    defaultAddress: options.defaultAddress,
    now: options.now ?? new Date().toISOString(),
  });
  const endpoints = resolveEndpoints(ir.services, snapshot.endpointSlices);
  return { ...compileConfig(ir, endpoints, options), statuses, problems };
}

/** True when every Gateway and HTTPRoute we own is Accepted on every parent. */
export function allAccepted(statuses: ObjectStatus[]): boolean {
  return statuses.every((s) => {
    if (s.kind === 'Gateway') return conditionTrue(s.status.conditions, 'Accepted');
    if (s.kind === 'HTTPRoute') {
      const parents = (s.status.parents ?? []) as { conditions: unknown }[];
      return parents.every((p) => conditionTrue(p.conditions, 'Accepted'));
    }
    return true;
  });
}

function conditionTrue(conditions: unknown, type: string): boolean {
  return Array.isArray(conditions) && conditions.some((c) => c.type === type && c.status === 'True');
}
