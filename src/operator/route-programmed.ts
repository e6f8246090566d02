// HTTPRoute `Programmed`, aggregated over a Gateway's replicas. Each gateway pod says which
// routing config is live in it (the config's sha256, an annotation on its Pod, src/ir/served.ts);
// the operator remembers which route generations each config it published carries. A route's
// parent entry is Programmed=True once every ready replica of that Gateway serves a config that
// has the route at its current generation or newer, else False/Pending with how many do.
//
// Pure: the caller passes the Pods as read and the configs it published; nothing here talks to
// the API or reads a clock.
import { z } from 'zod';
import { condition } from '../gatewayapi/conditions.ts';
import type { Condition } from '../gatewayapi/types.ts';
import { parseServed, SERVED_ANNOTATION } from '../ir/served.ts';
import { GATEWAY_NAMESPACE_LABEL, INSTANCE_LABEL, infraName } from './infrastructure.ts';

export const ROUTE_PROGRAMMED = 'Programmed';

/** Configs remembered per Gateway: the current one and a few before it, for replicas still rolling. */
export const PUBLISHED_HISTORY = 8;

/**
 * The route generations of the configs published per Gateway, by config sha256 (the head
 * ConfigMap's). Bounded: the newest PUBLISHED_HISTORY configs of each Gateway. A replica serving
 * an older (or unknown) config serves nothing as far as Programmed is concerned: it is told to
 * load the current one and will report it.
 */
export class PublishedConfigs {
  private readonly byGateway = new Map<string, Map<string, Readonly<Record<string, number>>>>();

  remember(gateway: string, sha256: string, routeGenerations: Readonly<Record<string, number>>): void {
    let configs = this.byGateway.get(gateway);
    if (!configs) this.byGateway.set(gateway, (configs = new Map()));
    // Re-inserted: the most recent one is last, the oldest first to go.
    configs.delete(sha256);
    configs.set(sha256, routeGenerations);
    while (configs.size > PUBLISHED_HISTORY) configs.delete(configs.keys().next().value as string);
  }

  generations(gateway: string, sha256: string): Readonly<Record<string, number>> | undefined {
    return this.byGateway.get(gateway)?.get(sha256);
  }

  /** Forgets the Gateways not in `keep` (deleted, or no longer ours). */
  retain(keep: ReadonlySet<string>): void {
    for (const gateway of this.byGateway.keys()) if (!keep.has(gateway)) this.byGateway.delete(gateway);
  }
}

/** The fields of a Pod this reads; anything else may be there. */
const podSchema = z.object({
  metadata: z.object({
    name: z.string(),
    namespace: z.string(),
    labels: z.record(z.string(), z.string()).optional(),
    annotations: z.record(z.string(), z.string()).optional(),
    deletionTimestamp: z.unknown().optional(),
  }),
  status: z
    .object({ conditions: z.array(z.object({ type: z.string(), status: z.string() })).optional() })
    .optional(),
});

/** A ready replica and the config it reports (undefined: none, or a report that does not parse). */
export interface ReadyReplica {
  pod: string;
  sha256: string | undefined;
}

export interface ReplicaReports {
  /** Ready replicas by Gateway (namespace/name). */
  ready: Map<string, ReadyReplica[]>;
  /** Pods whose object or report could not be used, with why (the caller logs them). */
  problems: { pod: string; error: string }[];
}

/**
 * The ready replicas of each Gateway in `gateways` (namespace/name), from the managed Pods. A Pod
 * belongs to a Gateway through the labels the operator renders on its pod template (instance and
 * Gateway namespace) and its own namespace. Ready means the Ready condition is True and the Pod
 * is not being deleted (a terminating pod is draining and leaves the Service).
 */
export function replicaReports(pods: readonly unknown[], gateways: Iterable<string>): ReplicaReports {
  const byInstance = new Map<string, string>();
  for (const key of gateways) {
    const [namespace, name] = key.split('/');
    byInstance.set(`${namespace}/${infraName(namespace, name)}`, key);
  }
  const ready = new Map<string, ReadyReplica[]>();
  const problems: ReplicaReports['problems'] = [];
  for (const raw of pods) {
    const parsed = podSchema.safeParse(raw);
    if (!parsed.success) {
      const m = (raw as { metadata?: { namespace?: string; name?: string } } | null)?.metadata;
      const issue = parsed.error.issues[0];
      problems.push({ pod: `${m?.namespace ?? '?'}/${m?.name ?? '?'}`, error: `Pod ${issue.path.join('.')}: ${issue.message}` });
      continue;
    }
    const { metadata, status } = parsed.data;
    const labels = metadata.labels ?? {};
    if (labels[GATEWAY_NAMESPACE_LABEL] !== metadata.namespace) continue;
    const gateway = byInstance.get(`${metadata.namespace}/${labels[INSTANCE_LABEL] ?? ''}`);
    if (gateway === undefined) continue;
    const isReady = metadata.deletionTimestamp == null && (status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
    if (!isReady) continue;
    const pod = `${metadata.namespace}/${metadata.name}`;
    const value = metadata.annotations?.[SERVED_ANNOTATION];
    let sha256: string | undefined;
    if (value !== undefined) {
      const served = parseServed(value);
      if (served.ok) sha256 = served.served.sha256;
      else problems.push({ pod, error: served.error });
    }
    let list = ready.get(gateway);
    if (!list) ready.set(gateway, (list = []));
    list.push({ pod, sha256 });
  }
  return { ready, problems };
}

/**
 * The `Programmed` condition of route `routeKey` (namespace/name) at `generation` on its parent
 * Gateway `gateway`, from that Gateway's ready replicas. The True message does not name a count,
 * so scaling a Gateway that serves the route everywhere is no status write.
 */
export function routeProgrammed(
  gateway: string,
  routeKey: string,
  generation: number,
  replicas: readonly ReadyReplica[],
  configs: PublishedConfigs,
): Condition {
  if (replicas.length === 0) return condition(ROUTE_PROGRAMMED, false, 'Pending', 'no gateway replica is ready', generation);
  const serving = replicas.filter((r) => {
    if (r.sha256 === undefined) return false;
    const served = configs.generations(gateway, r.sha256)?.[routeKey];
    return served !== undefined && served >= generation;
  }).length;
  if (serving === replicas.length) return condition(ROUTE_PROGRAMMED, true, 'Programmed', 'every ready gateway replica serves this generation', generation);
  return condition(ROUTE_PROGRAMMED, false, 'Pending', `${serving} of ${replicas.length} ready gateway replicas serve this generation`, generation);
}
