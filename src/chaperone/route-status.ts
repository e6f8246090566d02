// The data plane's readiness signal: once a config that serves an HTTPRoute generation is live
// in this pod, the route's status.parents entry for our Gateway gets a `Programmed` condition
// (observedGeneration = that generation). `Accepted` says the control plane took the route;
// `Programmed` says a gateway pod is actually serving it.
//
// Status is shared with the operator (Accepted, ResolvedRefs), so it is changed by
// read-modify-write with the object's resourceVersion: a concurrent writer makes the write
// fail with 409 and it is redone on the fresh object, never blindly overwritten.
import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { CONTROLLER_NAME } from '../gatewayapi/features.ts';
import { GATEWAY_GROUP } from '../gatewayapi/types.ts';
import { apiStatusCode } from '../providers/kubernetes/errors.ts';

export const PROGRAMMED = 'Programmed';
const CONCURRENCY = 4;
const ATTEMPTS = 5;

interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
  observedGeneration?: number;
  lastTransitionTime: string;
}

interface RouteParentStatus {
  parentRef: { group?: string; kind?: string; namespace?: string; name: string; sectionName?: string; port?: number };
  controllerName: string;
  conditions?: Condition[];
}

interface HTTPRouteObject {
  metadata: { name: string; namespace: string; generation?: number; resourceVersion?: string };
  status?: { parents?: RouteParentStatus[] };
}

export interface RouteStatusOptions {
  kubeConfig: KubeConfig;
  /** Our Gateway. */
  namespace: string;
  gateway: string;
  podName: string;
  logger: Logger;
}

export class RouteStatusReporter {
  private readonly opts: RouteStatusOptions;
  private readonly api: CustomObjectsApi;
  private readonly log: Logger;
  /** "namespace/name" -> generation already reported by this pod. */
  private readonly reported = new Map<string, number>();
  private pending: Map<string, number> | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;

  constructor(opts: RouteStatusOptions) {
    this.opts = opts;
    this.api = opts.kubeConfig.makeApiClient(CustomObjectsApi);
    this.log = opts.logger.child({ component: 'route-status' });
  }

  /** A config serving these route generations is live; report what was not reported yet. */
  live(routeGenerations: Record<string, number>): void {
    this.pending = new Map(Object.entries(routeGenerations));
    this.running ??= this.drain().finally(() => (this.running = null));
  }

  /** Resolves when every report asked for so far has been attempted (tests, shutdown). */
  async settled(): Promise<void> {
    while (this.running) await this.running;
  }

  stop(): void {
    this.stopped = true;
  }

  private async drain(): Promise<void> {
    while (this.pending && !this.stopped) {
      const batch = [...this.pending].filter(([key, gen]) => this.reported.get(key) !== gen);
      this.pending = null;
      const queue = [...batch];
      const worker = async () => {
        for (let next = queue.shift(); next && !this.stopped; next = queue.shift()) {
          const [key, generation] = next;
          if (await this.report(key, generation)) this.reported.set(key, generation);
        }
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    }
  }

  private async report(key: string, generation: number): Promise<boolean> {
    const [namespace, name] = key.split('/');
    for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
      try {
        const route = (await this.api.getNamespacedCustomObject({ group: GATEWAY_GROUP, version: 'v1', namespace, plural: 'httproutes', name })) as HTTPRouteObject;
        // A newer spec than the one served: that generation will be reported when it is live.
        if ((route.metadata.generation ?? 1) !== generation) return false;
        if (!this.withCondition(route, generation)) return true;
        await this.api.replaceNamespacedCustomObjectStatus({ group: GATEWAY_GROUP, version: 'v1', namespace, plural: 'httproutes', name, body: route });
        this.log.debug({ event: 'route-programmed', object: key, generation }, 'reported Programmed');
        return true;
      } catch (err) {
        const code = apiStatusCode(err);
        if (code === 404) return true; // deleted meanwhile: nothing to report
        if (code === 409 && attempt < ATTEMPTS) continue; // someone else wrote status: redo on the fresh object
        this.log.warn({ event: 'route-status-failed', object: key, generation, err: (err as Error).message }, 'could not report Programmed');
        return false;
      }
    }
    return false;
  }

  /** Sets our condition on our parent entry; false when it is already exactly so. */
  private withCondition(route: HTTPRouteObject, generation: number): boolean {
    const parents = (route.status ??= {}).parents ??= [];
    let parent = parents.find(
      (p) =>
        p.controllerName === CONTROLLER_NAME &&
        p.parentRef.name === this.opts.gateway &&
        (p.parentRef.namespace ?? route.metadata.namespace) === this.opts.namespace &&
        (p.parentRef.kind ?? 'Gateway') === 'Gateway',
    );
    if (!parent) {
      parent = { parentRef: { group: GATEWAY_GROUP, kind: 'Gateway', namespace: this.opts.namespace, name: this.opts.gateway }, controllerName: CONTROLLER_NAME, conditions: [] };
      parents.push(parent);
    }
    const conditions = (parent.conditions ??= []);
    const existing = conditions.find((c) => c.type === PROGRAMMED);
    if (existing?.status === 'True' && existing.observedGeneration === generation) return false;
    const condition: Condition = {
      type: PROGRAMMED,
      status: 'True',
      reason: PROGRAMMED,
      message: `Serving on gateway pod ${this.opts.podName}`,
      observedGeneration: generation,
      lastTransitionTime: existing?.status === 'True' ? existing.lastTransitionTime : new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    };
    if (existing) Object.assign(existing, condition);
    else conditions.push(condition);
    return true;
  }
}
