// What the shipped dashboards and alert rules query, read with Prometheus' own PromQL grammar
// (@prometheus-io/lezer-promql), and what a /metrics scrape offers, so tests can check that every
// metric and label the queries use is really exposed.
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parser } from '@prometheus-io/lezer-promql';
import { parse as parseYaml } from 'yaml';

export const ROOT = resolve(import.meta.dirname, '../..');
export const DASHBOARDS_DIR = join(ROOT, 'deploy/dashboards');
export const RULES_FILE = join(ROOT, 'deploy/alerts/vgw-rules.yaml');

type SyntaxNode = ReturnType<typeof parser.parse>['topNode'];

/** One place that queries: a dashboard panel, a template variable or an alert rule. */
export interface Query {
  /** e.g. `vgw-data-plane.json panel "Client requests" (id 2) target A`, `alert VgwDrainStuck`. */
  where: string;
  /** PromQL, Grafana's variables already replaced. */
  expr: string;
  /** A template variable's `label_values(selector, label)`: the label it lists. */
  listsLabel?: string;
  /** A variable query this check cannot read (it then fails). */
  unsupported?: boolean;
}

export interface SelectorUse {
  metric: string;
  /** Label names of the selector's matchers. */
  labels: string[];
}

export interface GroupingUse {
  /** Label names of `by (...)`, `without (...)`, `on (...)`, `ignoring (...)`, `group_left/right (...)`. */
  labels: string[];
  /** Metrics of the expression the grouping applies to. */
  metrics: string[];
}

export interface PromqlUse {
  errors: string[];
  selectors: SelectorUse[];
  groupings: GroupingUse[];
}

// Grafana's interval variables stand for durations; any other `$var` must sit inside a label
// value string, where the parser accepts it (outside one it is a parse error, as it should be).
export function grafanaToPromql(expr: string): string {
  return expr.replace(/\$\{?__(rate_interval|interval|range)(_ms|_s)?\}?/g, '5m');
}

const text = (expr: string, n: SyntaxNode) => expr.slice(n.from, n.to);

function children(n: SyntaxNode): SyntaxNode[] {
  const out: SyntaxNode[] = [];
  for (let c = n.firstChild; c; c = c.nextSibling) out.push(c);
  return out;
}

function descendants(n: SyntaxNode, name: string): SyntaxNode[] {
  const out: SyntaxNode[] = [];
  const walk = (m: SyntaxNode) => {
    for (const c of children(m)) {
      if (c.type.name === name) out.push(c);
      walk(c);
    }
  };
  walk(n);
  return out;
}

function selectorMetric(expr: string, sel: SyntaxNode): string | undefined {
  const id = children(sel).find((c) => c.type.name === 'Identifier');
  return id ? text(expr, id) : undefined;
}

/** Parses `expr`; every syntax error, metric selector and grouping clause it has. */
export function analyse(expr: string): PromqlUse {
  const use: PromqlUse = { errors: [], selectors: [], groupings: [] };
  const tree = parser.parse(expr);
  const metricsUnder = (n: SyntaxNode) => [...new Set(descendants(n, 'VectorSelector').map((s) => selectorMetric(expr, s)).filter((m): m is string => m !== undefined))];
  const labelNames = (n: SyntaxNode) => descendants(n, 'LabelName').map((l) => text(expr, l));
  const visit = (n: SyntaxNode) => {
    const name = n.type.name;
    if (n.type.isError) use.errors.push(`syntax error at offset ${n.from} (${JSON.stringify(expr.slice(Math.max(0, n.from - 10), n.from + 10))})`);
    if (name === 'VectorSelector') {
      const metric = selectorMetric(expr, n);
      if (metric === undefined) use.errors.push(`selector ${text(expr, n)} names no metric`);
      else {
        const matchers = children(n).find((c) => c.type.name === 'LabelMatchers');
        use.selectors.push({ metric, labels: matchers ? labelNames(matchers) : [] });
      }
    }
    if (name === 'AggregateExpr') {
      const modifier = children(n).find((c) => c.type.name === 'AggregateModifier');
      if (modifier) use.groupings.push({ labels: labelNames(modifier), metrics: metricsUnder(n) });
    }
    if (name === 'BinaryExpr') {
      const modifier = children(n).find((c) => c.type.name === 'MatchingModifierClause');
      if (modifier) use.groupings.push({ labels: labelNames(modifier), metrics: metricsUnder(n) });
    }
    for (const c of children(n)) visit(c);
  };
  visit(tree.topNode);
  return use;
}

// --- what the files hold ---------------------------------------------------------------

export interface GrafanaPanel {
  id?: number;
  type?: string;
  title?: string;
  panels?: GrafanaPanel[];
  targets?: { refId?: string; expr?: string }[];
}

export interface GrafanaDashboard {
  uid?: string;
  title?: string;
  schemaVersion?: number;
  panels?: GrafanaPanel[];
  templating?: { list?: { name?: string; type?: string; query?: string | { query?: string } }[] };
}

export function dashboardFiles(): string[] {
  return readdirSync(DASHBOARDS_DIR).filter((f) => f.endsWith('.json')).sort();
}

export function readDashboard(file: string): GrafanaDashboard {
  return JSON.parse(readFileSync(join(DASHBOARDS_DIR, file), 'utf8')) as GrafanaDashboard;
}

/** Every panel, rows' nested panels included. */
export function allPanels(d: GrafanaDashboard): GrafanaPanel[] {
  const out: GrafanaPanel[] = [];
  const walk = (list: GrafanaPanel[] | undefined) => {
    for (const p of list ?? []) {
      out.push(p);
      walk(p.panels);
    }
  };
  walk(d.panels);
  return out;
}

/** The queries of one dashboard: panel targets and query variables. */
export function dashboardQueries(file: string, d: GrafanaDashboard): Query[] {
  const out: Query[] = [];
  for (const p of allPanels(d)) {
    for (const t of p.targets ?? []) {
      if (t.expr !== undefined) out.push({ where: `${file} panel ${JSON.stringify(p.title)} (id ${p.id}) target ${t.refId}`, expr: grafanaToPromql(t.expr) });
    }
  }
  for (const v of d.templating?.list ?? []) {
    if (v.type !== 'query') continue;
    const where = `${file} variable $${v.name}`;
    const q = typeof v.query === 'string' ? v.query : (v.query?.query ?? '');
    const labelValues = /^\s*label_values\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$/s.exec(q);
    const queryResult = /^\s*query_result\((.*)\)\s*$/s.exec(q);
    if (labelValues) out.push({ where, expr: grafanaToPromql(labelValues[1]), listsLabel: labelValues[2] });
    else if (queryResult) out.push({ where, expr: grafanaToPromql(queryResult[1]) });
    // Anything else (metrics(), label_names(), a bare label_values(label)) names no metric to check,
    // so it is refused rather than let through unchecked.
    else out.push({ where, expr: q, unsupported: true });
  }
  return out;
}

export interface AlertRule {
  alert?: string;
  record?: string;
  expr?: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export function readRules(): { groups: { name: string; rules: AlertRule[] }[] } {
  return parseYaml(readFileSync(RULES_FILE, 'utf8')) as { groups: { name: string; rules: AlertRule[] }[] };
}

export function ruleQueries(): Query[] {
  return readRules().groups.flatMap((g) => g.rules.map((r) => ({ where: `${RULES_FILE.slice(ROOT.length + 1)} group ${g.name} ${r.alert ? `alert ${r.alert}` : `record ${r.record}`}`, expr: r.expr ?? '' })));
}

// --- what a scrape offers ----------------------------------------------------------------

/** Metric name (as a series is named: histograms as `_bucket`/`_sum`/`_count`) -> label names seen on its samples. */
export type Exposed = Map<string, Set<string>>;

/** Adds the series of a Prometheus text-format scrape to `into`. */
export function exposedMetrics(scrape: string, into: Exposed = new Map()): Exposed {
  for (const line of scrape.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('#')) {
      // A family with no sample yet exists, with labels unknown.
      const m = /^# TYPE (\S+) (\S+)/.exec(line);
      if (m && m[2] !== 'histogram' && m[2] !== 'summary' && !into.has(m[1])) into.set(m[1], new Set());
      continue;
    }
    const m = /^([A-Za-z_:][A-Za-z0-9_:]*)(\{(.*)\})?\s/.exec(line);
    if (!m) continue;
    const labels = into.get(m[1]) ?? new Set<string>();
    for (const l of (m[3] ?? '').matchAll(/([A-Za-z_][A-Za-z0-9_]*)="(?:[^"\\]|\\.)*"/g)) labels.add(l[1]);
    into.set(m[1], labels);
  }
  return into;
}

/** Every problem of the queries against what is exposed, each naming where the query is. */
export function checkQueries(queries: Query[], exposed: Exposed, extraLabels: ReadonlySet<string>): string[] {
  const problems: string[] = [];
  const hasLabel = (metric: string, label: string) => extraLabels.has(label) || (exposed.get(metric)?.has(label) ?? false);
  for (const q of queries) {
    if (q.unsupported) {
      problems.push(`${q.where}: variable query ${JSON.stringify(q.expr)} is not label_values(selector, label) or query_result(expr)`);
      continue;
    }
    const use = analyse(q.expr);
    for (const e of use.errors) problems.push(`${q.where}: ${e} in ${q.expr}`);
    for (const s of use.selectors) {
      if (!exposed.has(s.metric)) {
        problems.push(`${q.where}: metric ${s.metric} is not exposed`);
        continue;
      }
      for (const l of s.labels) if (!hasLabel(s.metric, l)) problems.push(`${q.where}: metric ${s.metric} has no label ${l}`);
    }
    for (const g of use.groupings) {
      for (const m of g.metrics) {
        if (!exposed.has(m)) continue;
        for (const l of g.labels) if (!hasLabel(m, l)) problems.push(`${q.where}: grouping by ${l}, which metric ${m} does not have`);
      }
    }
    if (q.listsLabel !== undefined) {
      for (const s of use.selectors) if (exposed.has(s.metric) && !hasLabel(s.metric, q.listsLabel)) problems.push(`${q.where}: lists label ${q.listsLabel}, which metric ${s.metric} does not have`);
    }
  }
  return problems;
}
