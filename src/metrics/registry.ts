// The gateway's Prometheus metrics (names, types and labels are documented in docs/metrics.md).
//
// createGatewayMetrics() registers them on a Registry it is given (or a new one) and returns
// typed handles, so other parts (the in-pod agent's varnish_* counters) can register on the
// same Registry. Every label set is bounded by the config: route and rule come from route ids
// of the live config, service from its mirror Services, reason and outcome from fixed lists.
// Nothing is labelled per reload, per VCL name or per request.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { VarnishdEvent } from '../varnish/varnishd.ts';
import { registerProcessMetrics } from '../util/process-metrics.ts';

export interface GatewayMetrics {
  registry: Registry;
  /**
   * Run before the record-based counters are read (scrape, get()): consumers that batch
   * counts in hot paths flush them here, so readers always see every count.
   */
  beforeCollect: Set<() => void>;
  filterApplications: Counter<'route' | 'rule' | 'filter'>;
  filterFailures: Counter<'route' | 'rule' | 'filter' | 'reason'>;
  mirrorRequests: Counter<'service' | 'outcome'>;
  mirrorsInFlight: Gauge;
  routeTimeouts: Counter<'route' | 'rule'>;
  routeRetries: Counter<'route' | 'rule'>;
  vclReloads: Counter<'result'>;
  vclReloadDuration: Histogram;
  routes: Gauge;
  lastReloadSuccess: Gauge;
  vslOverruns: Counter<'reader'>;
  vslReaderRestarts: Counter<'reader'>;
  /** Child process restarts by varnishd's manager (observeVarnishdEvent). */
  varnishChildRestarts: Counter;
  /** 1 while the gateway drains before shutdown, else 0. */
  draining: Gauge;
  /** Ready endpoints of the Services in the live config (countEndpoints). */
  endpoints: Gauge;
  /** Failed varnishstat polls (StatsCollector 'poll-failed'). */
  statsPollFailures: Counter;
  /** Configs that could not be made live; the previous one kept serving. */
  configErrors: Counter;
  /** Publication of a routing config by the operator to this pod serving it (gateway pods only). */
  configPropagation: Histogram;
  /** The TLS terminator read its certificates again (SIGHUP): a certificate changed. */
  hitchReloads: Counter;
  /** The TLS terminator was restarted: its frontends (HTTPS address:port) changed. */
  hitchRestarts: Counter;
}

export const VSL_READERS = ['mirror', 'records'] as const;
export type VslReaderName = (typeof VSL_READERS)[number];

export function createGatewayMetrics(registry: Registry = new Registry()): GatewayMetrics {
  registerProcessMetrics(registry);
  const registers = [registry];
  const beforeCollect = new Set<() => void>();
  const collect = () => {
    for (const hook of beforeCollect) hook();
  };
  const m: GatewayMetrics = {
    registry,
    beforeCollect,
    filterApplications: new Counter({
      name: 'vgw_filter_applications_total',
      help: 'Requests to which a route rule applied its filters, per filter type.',
      labelNames: ['route', 'rule', 'filter'],
      registers,
      collect,
    }),
    filterFailures: new Counter({
      name: 'vgw_filter_failures_total',
      help: 'Filters that could not do their job, per filter type and reason (RequestMirror: mirror outcomes other than ok).',
      labelNames: ['route', 'rule', 'filter', 'reason'],
      registers,
      collect,
    }),
    mirrorRequests: new Counter({
      name: 'vgw_mirror_requests_total',
      help: 'Mirrored requests per mirror Service (namespace/name:port) and outcome.',
      labelNames: ['service', 'outcome'],
      registers,
    }),
    mirrorsInFlight: new Gauge({
      name: 'vgw_mirror_requests_in_flight',
      help: 'Mirrored requests sent and not yet answered.',
      registers,
    }),
    routeTimeouts: new Counter({
      name: 'vgw_route_timeouts_total',
      help: "Backend requests ended by a route rule's timeout.",
      labelNames: ['route', 'rule'],
      registers,
      collect,
    }),
    routeRetries: new Counter({
      name: 'vgw_route_retries_total',
      help: "Backend requests retried by a route rule's retry policy.",
      labelNames: ['route', 'rule'],
      registers,
      collect,
    }),
    vclReloads: new Counter({
      name: 'vgw_vcl_reloads_total',
      help: 'Attempts to make a new config live (VCL reload, or varnishd start with it), by result.',
      labelNames: ['result'],
      registers,
    }),
    vclReloadDuration: new Histogram({
      name: 'vgw_vcl_reload_duration_seconds',
      help: 'Time from submitting a config to varnishd to the result (compile and use, or varnishd start).',
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    routes: new Gauge({
      name: 'vgw_routes',
      help: 'Routes (HTTPRoute rule matches) in the live config.',
      registers,
    }),
    lastReloadSuccess: new Gauge({
      name: 'vgw_last_reload_success_timestamp_seconds',
      help: 'Unix time at which the live config went live.',
      registers,
    }),
    vslOverruns: new Counter({
      name: 'vgw_vsl_overruns_total',
      help: 'Times a shared-memory log reader fell behind varnishd and lost records (mirrors or metric records).',
      labelNames: ['reader'],
      registers,
    }),
    vslReaderRestarts: new Counter({
      name: 'vgw_vsl_reader_restarts_total',
      help: 'Unexpected exits of a varnishlog reader, which is then started again.',
      labelNames: ['reader'],
      registers,
    }),
    varnishChildRestarts: new Counter({
      name: 'vgw_varnish_child_restarts_total',
      help: "varnishd child process restarts by its manager (crash, panic), not counting a new manager's first child.",
      registers,
    }),
    draining: new Gauge({
      name: 'vgw_draining',
      help: '1 while the gateway drains connections before shutting down, else 0.',
      registers,
    }),
    endpoints: new Gauge({
      name: 'vgw_endpoints',
      help: 'Ready endpoints of the Services in the live config.',
      registers,
    }),
    statsPollFailures: new Counter({
      name: 'vgw_stats_poll_failures_total',
      help: 'varnishstat polls that failed; varnish_* metrics keep the values of the last good poll.',
      registers,
    }),
    configPropagation: new Histogram({
      name: 'vgw_config_propagation_seconds',
      help: "Time from the operator publishing a routing config (its head ConfigMap's published-at annotation) to this gateway pod serving it; includes the clock difference between the two machines. Gateway pods only.",
      buckets: [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    }),
    hitchReloads: new Counter({
      name: 'vgw_hitch_reloads_total',
      help: 'TLS terminator (hitch) reloads: certificates changed; open TLS connections keep the old ones.',
      registers,
    }),
    hitchRestarts: new Counter({
      name: 'vgw_hitch_restarts_total',
      help: 'TLS terminator (hitch) restarts: HTTPS listener sockets changed; open TLS connections were cut.',
      registers,
    }),
    configErrors: new Counter({
      name: 'vgw_config_errors_total',
      help: 'Configs rejected (unreadable manifests or routing ConfigMaps, VCL that does not compile, listeners that cannot be bound); the previous config kept serving.',
      registers,
    }),
  };
  // Fixed label values start at zero, so rates work from the first scrape.
  for (const result of ['success', 'failure']) m.vclReloads.inc({ result }, 0);
  for (const reader of VSL_READERS) {
    m.vslOverruns.inc({ reader }, 0);
    m.vslReaderRestarts.inc({ reader }, 0);
  }
  return m;
}

/** One attempt to make a config live. */
export function observeReload(m: GatewayMetrics, ok: boolean, seconds: number | undefined): void {
  m.vclReloads.inc({ result: ok ? 'success' : 'failure' });
  if (seconds !== undefined) m.vclReloadDuration.observe(seconds);
}

/** A config went live. */
export function observeLive(m: GatewayMetrics, routes: number, now = Date.now()): void {
  m.routes.set(routes);
  m.lastReloadSuccess.set(now / 1000);
}

/** Counts what the varnishd supervisor reports (`varnishd.on('event', ...)`). */
export function observeVarnishdEvent(m: GatewayMetrics, ev: VarnishdEvent): void {
  if (ev.type === 'child-started' && ev.restart) m.varnishChildRestarts.inc();
}

/** Ready endpoints summed over the Services of a config (one shared by two Services counts twice). */
export function countEndpoints(endpoints: ReadonlyMap<string, readonly unknown[]>): number {
  let n = 0;
  for (const list of endpoints.values()) n += list.length;
  return n;
}
