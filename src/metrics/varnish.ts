// varnishd's own counters as Prometheus metrics (`varnish_*`, docs/metrics.md).
//
// Values come from the latest StatsSnapshot a StatsCollector keeps (src/varnish/stats.ts):
// a scrape never starts a process. Names are stable and labels bounded, so a VCL reload adds
// no series:
//   MAIN.client_req                  -> varnish_main_client_req
//   VBE.<vcl>.<backend>.req          -> varnish_backend_req{backend="10.0.0.7:8080"}  (VCL dropped,
//                                       summed over the loaded VCLs, see StatsSnapshot.backends)
//   SMA.<storage>.<field>            -> varnish_sma_<field>{storage}
//   LCK.<lock>.<field>               -> varnish_lck_<field>{lock}
//   MEMPOOL.<pool>.<field>           -> varnish_mempool_<field>{pool}
//   <TYPE>.<id>.<field> (any other)  -> varnish_<type>_<field>{id}
// Counter flags are honoured ('c' counter, 'g' gauge); bitmaps (VBE happy) are left out.
// `varnish_sessions_active` is derived: open client connections, see activeSessions().
import { Counter, Gauge, type Registry } from 'prom-client';
import { activeSessions, type StatsSnapshot } from '../varnish/stats.ts';

/** Label name of the object part of a counter name, per counter type. */
const OBJECT_LABELS: Record<string, string> = { SMA: 'storage', SMF: 'storage', SMU: 'storage', LCK: 'lock', MEMPOOL: 'pool' };

export const SESSIONS_ACTIVE = 'varnish_sessions_active';

/** A Prometheus-safe name: lower case, anything but [a-z0-9_] replaced by `_`. */
function metricName(...parts: string[]): string {
  return parts
    .join('_')
    .toLowerCase()
    .replace(/[^a-z0-9_]/g, '_');
}

/**
 * Metric name and labels of one varnishstat counter, or null for the counters exported
 * another way (VBE: per backend, from snapshot.backends) or not at all (malformed names).
 */
export function varnishMetricOf(counter: string): { name: string; labels: Record<string, string> } | null {
  const first = counter.indexOf('.');
  const last = counter.lastIndexOf('.');
  if (first <= 0 || last === counter.length - 1) return null;
  const type = counter.slice(0, first);
  if (type === 'VBE') return null;
  const name = metricName('varnish', type, counter.slice(last + 1));
  if (first === last) return { name, labels: {} };
  return { name, labels: { [OBJECT_LABELS[type] ?? 'id']: counter.slice(first + 1, last) } };
}

/** Metric name of a per-backend field (`req`, `conn`, `fail_econnrefused`...). */
export function backendMetricName(field: string): string {
  return metricName('varnish', 'backend', field);
}

interface Family {
  help: string;
  type: 'counter' | 'gauge';
  labelNames: string[];
  series: { labels: Record<string, string>; value: number }[];
}

/** Every metric family of a snapshot, with its series. */
export function varnishFamilies(s: StatsSnapshot): Map<string, Family> {
  const out = new Map<string, Family>();
  const add = (name: string, help: string, type: 'counter' | 'gauge', labels: Record<string, string>, value: number) => {
    let f = out.get(name);
    if (!f) out.set(name, (f = { help, type, labelNames: Object.keys(labels), series: [] }));
    // A name whose type or label names differ from the family's first counter is left out
    // rather than mislabelled (never seen with Varnish 7.1; VMOD counters could do it).
    if (f.type !== type || !sameKeys(f.labelNames, labels)) return;
    f.series.push({ labels, value });
  };
  for (const [name, c] of s.counters) {
    if (c.type === 'bitmap') continue;
    const m = varnishMetricOf(name);
    if (m) add(m.name, c.description, c.type, m.labels, c.value);
  }
  for (const [backend, fields] of s.backends) {
    for (const [field, c] of fields) {
      if (c.type !== 'bitmap') add(backendMetricName(field), c.description, c.type, { backend }, c.value);
    }
  }
  const sessions = activeSessions(s);
  if (sessions !== undefined) add(SESSIONS_ACTIVE, 'Open client connections (sessions): idle keep-alive, busy and piped.', 'gauge', {}, sessions);
  return out;
}

function sameKeys(names: string[], labels: Record<string, string>): boolean {
  const keys = Object.keys(labels);
  return keys.length === names.length && keys.every((k, i) => k === names[i]);
}

const registered = new WeakSet<Registry>();

/**
 * Exports the counters of `snapshot()` (the latest snapshot of a StatsCollector, or null
 * while there is none) as `varnish_*` on `registry`. Call once per registry.
 */
export function registerVarnishMetrics(registry: Registry, snapshot: () => StatsSnapshot | null): void {
  if (registered.has(registry)) throw new Error('varnish metrics are already registered on this registry');
  registered.add(registry);
  // Families of the current snapshot, computed once per snapshot rather than once per family.
  let indexed: { snap: StatsSnapshot; families: Map<string, Family> } | null = null;
  const families = (): Map<string, Family> | null => {
    const snap = snapshot();
    if (!snap) return null;
    if (indexed?.snap !== snap) indexed = { snap, families: varnishFamilies(snap) };
    return indexed.families;
  };
  const known = new Map<string, Counter<string> | Gauge<string>>();
  const sync = () => {
    for (const [name, f] of families() ?? []) {
      if (known.has(name) || registry.getSingleMetric(name)) continue;
      const collect = () => {
        const now = families()?.get(name);
        metric.reset();
        if (!now || now.type !== f.type) return;
        for (const { labels, value } of now.series) {
          // Counters never go below 0 in varnishd; the guard keeps prom-client from throwing.
          if (metric instanceof Counter) metric.inc(labels, Math.max(0, value));
          else metric.set(labels, value);
        }
      };
      const opts = { name, help: f.help || name, labelNames: f.labelNames, registers: [registry], collect };
      const metric: Counter<string> | Gauge<string> = f.type === 'counter' ? new Counter(opts) : new Gauge(opts);
      known.set(name, metric);
    }
  };
  // The set of families is known only from a snapshot, and prom-client reads its list of
  // metrics before any collect callback runs; so families first seen in a new snapshot are
  // registered just before that list is read, and show in the very scrape that sees them.
  const list = registry.getMetricsAsArray.bind(registry);
  registry.getMetricsAsArray = () => {
    sync();
    return list();
  };
  sync();
}
