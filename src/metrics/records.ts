// Turns the VCL's log records (src/vcl/log-records.ts) and mirror outcomes into metrics.
//
// Records are checked against the live config before they become label values: a route id must
// belong to a route of the config, a service to one of its mirror targets. Records of routes
// that no longer exist (written just before a reload) are ignored, and when a config goes live
// the series of routes and Services it no longer has are removed, so the number of series
// follows the config and never grows with reloads or traffic.
import { serviceKey, type IRRoute, type RoutingIR } from '../ir/types.ts';
import { MIRROR_OUTCOMES, type MirrorOutcome } from '../mirror/replayer.ts';
import { parseLogRecord, splitRouteId } from '../vcl/log-records.ts';
import type { GatewayMetrics } from './registry.ts';

/** What of a config the log readers and the metrics need to know. */
export interface LogConfig {
  /** Route id -> labels and the filter types its rule applies. */
  routes: Map<string, { route: string; rule: string; filters: Set<string> }>;
  /** Service keys that some route mirrors to. */
  mirrorServices: Set<string>;
  /** Some route applies filters, a timeout or a retry policy: its records are worth reading. */
  wantsRecords: boolean;
}

export const EMPTY_LOG_CONFIG: LogConfig = { routes: new Map(), mirrorServices: new Set(), wantsRecords: false };

interface RouteLogInfo {
  entry: { route: string; rule: string; filters: Set<string> } | null;
  wantsRecords: boolean;
}

/**
 * Per IR route object. Incremental translation hands unchanged routes out as the same objects,
 * so a change at thousands of routes does not split every route id and build every filter set
 * again; an object no longer held takes its entry along.
 */
const routeInfo = new WeakMap<IRRoute, RouteLogInfo>();

function infoOf(r: IRRoute): RouteLogInfo {
  let info = routeInfo.get(r);
  if (!info) {
    const labels = splitRouteId(r.id);
    const a = r.action;
    const filters = new Set(a.filters ?? []);
    const timeouts = !!(a.timeouts?.request || a.timeouts?.backendRequest);
    info = labels ? { entry: { ...labels, filters }, wantsRecords: filters.size > 0 || timeouts || (a.retry?.attempts ?? 0) > 0 } : { entry: null, wantsRecords: false };
    routeInfo.set(r, info);
  }
  return info;
}

export function logConfig(ir: RoutingIR): LogConfig {
  const routes: LogConfig['routes'] = new Map();
  const mirrorServices = new Set<string>();
  let wantsRecords = false;
  for (const socket of ir.sockets) {
    for (const vhost of socket.vhosts) {
      for (const r of vhost.routes) {
        const info = infoOf(r);
        if (!info.entry) continue;
        routes.set(r.id, info.entry);
        // Service numbers are the IR's own: looked up again in each config.
        for (const m of r.action.mirrors ?? []) {
          const svc = ir.services[m.service];
          if (svc && m.percent > 0) mirrorServices.add(serviceKey(svc));
        }
        if (info.wantsRecords) wantsRecords = true;
      }
    }
  }
  return { routes, mirrorServices, wantsRecords };
}

// Filter types of the Gateway API; a failure record may name a backendRef-level filter that
// the rule's own list does not have.
const FILTER_TYPES = new Set(['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestMirror', 'RequestRedirect', 'URLRewrite', 'CORS', 'ExternalAuth', 'ExtensionRef']);
const REASON = /^[a-z0-9_]{1,40}$/;

// Counting a record straight into prom-client (label lookup per call) costs about 1.2 µs;
// records arrive once per request, so they are batched per distinct payload (a Map increment)
// and turned into counter increments when the counters are read, or when the batch is large.
const MAX_PENDING = 10_000;

export class RecordMetrics {
  private readonly m: GatewayMetrics;
  private config: LogConfig = EMPTY_LOG_CONFIG;
  /** "route rule" pairs of the config, built when a series is checked against them. */
  private rules: Set<string> | undefined;
  /** Payload -> occurrences not yet in the counters. */
  private pending = new Map<string, number>();
  /** Records refused (unknown route, malformed): for tests and diagnostics. */
  private refused = 0;

  constructor(metrics: GatewayMetrics) {
    this.m = metrics;
    metrics.beforeCollect.add(() => this.flush());
  }

  /** Records refused so far (unknown route, filter or record kind). */
  get ignored(): number {
    this.flush();
    return this.refused;
  }

  /** Switches to a new live config and removes the series it makes stale. */
  async setConfig(config: LogConfig): Promise<void> {
    // Records read so far were written under the previous config.
    this.flush();
    this.config = config;
    for (const service of config.mirrorServices) {
      for (const outcome of MIRROR_OUTCOMES) this.m.mirrorRequests.inc({ service, outcome }, 0);
    }
    // Built on the first series checked: a config change often finds no series to prune, and
    // every route's pair is a string per route per change.
    this.rules = undefined;
    // The checks read the config current when they run: a newer setConfig may have come first.
    const ruleKnown = (l: Record<string, unknown>) => {
      this.rules ??= new Set([...this.config.routes.values()].map((r) => `${r.route} ${r.rule}`));
      return this.rules.has(`${String(l.route)} ${String(l.rule)}`);
    };
    await Promise.all([
      prune(this.m.filterApplications, ruleKnown),
      prune(this.m.filterFailures, ruleKnown),
      prune(this.m.routeTimeouts, ruleKnown),
      prune(this.m.routeRetries, ruleKnown),
      prune(this.m.mirrorRequests, (l) => this.config.mirrorServices.has(String(l.service))),
    ]);
  }

  /** Counts one VCL_Log payload. Mirror records are the replayer's business and skipped. */
  count(payload: string): void {
    this.pending.set(payload, (this.pending.get(payload) ?? 0) + 1);
    if (this.pending.size >= MAX_PENDING) this.flush();
  }

  /** Moves the batched counts into the counters. */
  flush(): void {
    if (this.pending.size === 0) return;
    const batch = this.pending;
    this.pending = new Map();
    for (const [payload, n] of batch) this.apply(payload, n);
  }

  private apply(payload: string, n: number): void {
    const rec = parseLogRecord(payload);
    if (!rec || rec.kind === 'mirror') {
      if (!rec) this.refused += n;
      return;
    }
    const route = this.config.routes.get(rec.route);
    if (!route) {
      this.refused += n;
      return;
    }
    const labels = { route: route.route, rule: route.rule };
    switch (rec.kind) {
      case 'filters':
        for (const filter of rec.filters) {
          if (route.filters.has(filter)) this.m.filterApplications.inc({ ...labels, filter }, n);
          else this.refused += n;
        }
        return;
      case 'filter-failure':
        if ((route.filters.has(rec.filter) || FILTER_TYPES.has(rec.filter)) && REASON.test(rec.reason)) {
          this.m.filterFailures.inc({ ...labels, filter: rec.filter, reason: rec.reason }, n);
        } else {
          this.refused += n;
        }
        return;
      case 'timeout':
        this.m.routeTimeouts.inc(labels, n);
        return;
      case 'retry':
        this.m.routeRetries.inc(labels, n);
        return;
    }
  }

  /** One mirror's outcome; every outcome but ok is also a RequestMirror filter failure. */
  mirrorOutcome(service: string, outcome: MirrorOutcome, routeId: string | undefined): void {
    if (!this.config.mirrorServices.has(service)) return;
    this.m.mirrorRequests.inc({ service, outcome });
    if (outcome === 'ok') return;
    const route = routeId === undefined ? undefined : this.config.routes.get(routeId);
    if (route) this.m.filterFailures.inc({ route: route.route, rule: route.rule, filter: 'RequestMirror', reason: outcome });
  }

  /** Whether mirrors to this service are configured now. */
  mirrors(service: string): boolean {
    return this.config.mirrorServices.has(service);
  }
}

interface Prunable {
  get(): Promise<{ values: { labels: Record<string, unknown> }[] }>;
  remove(labels: never): void;
}

async function prune(metric: Prunable, keep: (labels: Record<string, unknown>) => boolean): Promise<void> {
  const { values } = await metric.get();
  for (const v of values) if (!keep(v.labels)) metric.remove(v.labels as never);
}
