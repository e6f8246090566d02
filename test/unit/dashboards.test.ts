// The shipped dashboards and alert rules are well-formed: dashboards are Grafana JSON with a
// Prometheus data source variable and unique panel ids, every query parses as PromQL, and every
// alert has what a page needs. That each metric exists is test/integration/dashboards.test.ts.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { allPanels, analyse, dashboardFiles, dashboardQueries, readDashboard, readRules, ROOT, ruleQueries } from '../support/promql.ts';

test('each dashboard: Grafana JSON, a Prometheus data source variable, unique panel ids, panels on that data source', () => {
  const files = dashboardFiles();
  assert.deepEqual(files, ['vgw-control-plane.json', 'vgw-data-plane.json', 'vgw-operator.json']);
  const uids = new Set<string>();
  for (const file of files) {
    const d = readDashboard(file);
    assert.ok(d.uid && !uids.has(d.uid), `${file}: uid missing or not unique`);
    uids.add(d.uid);
    assert.ok(d.title, `${file}: title`);
    assert.ok((d.schemaVersion ?? 0) >= 39, `${file}: schemaVersion of a current Grafana`);
    const vars = d.templating?.list ?? [];
    const ds = vars.find((v) => v.name === 'datasource');
    assert.ok(ds && ds.type === 'datasource' && ds.query === 'prometheus', `${file}: datasource variable of type prometheus`);
    for (const name of ['namespace', 'pod']) assert.ok(vars.some((v) => v.name === name && v.type === 'query'), `${file}: variable ${name}`);
    const ids = new Set<number>();
    for (const p of allPanels(d)) {
      assert.ok(typeof p.id === 'number' && !ids.has(p.id), `${file}: panel ${JSON.stringify(p.title)} id ${p.id} missing or not unique`);
      ids.add(p.id);
      if (p.type === 'row') continue;
      const panel = p as typeof p & { datasource?: { uid?: string }; gridPos?: object };
      assert.equal(panel.datasource?.uid, '${datasource}', `${file}: panel ${p.title} uses the datasource variable`);
      assert.ok(panel.gridPos, `${file}: panel ${p.title} gridPos`);
      assert.ok((p.targets ?? []).length > 0, `${file}: panel ${p.title} has queries`);
    }
  }
});

test('every dashboard and alert query parses as PromQL', () => {
  const queries = [...dashboardFiles().flatMap((f) => dashboardQueries(f, readDashboard(f))), ...ruleQueries()];
  const problems = queries.flatMap((q) => (q.unsupported ? [`${q.where}: unsupported variable query`] : analyse(q.expr).errors.map((e) => `${q.where}: ${e}`)));
  assert.deepEqual(problems, []);
  assert.ok(queries.every((q) => q.unsupported || analyse(q.expr).selectors.length > 0), 'each query selects some metric');
});

test('the parser reports what is not PromQL', () => {
  assert.notDeepEqual(analyse('sum(rate(vgw_routes[5m])').errors, []);
  assert.notDeepEqual(analyse('rate(vgw_routes[$window])').errors, [], 'a Grafana variable outside a string');
  assert.deepEqual(analyse('sum by (pod) (rate(vgw_routes{pod=~"$pod"}[5m])) > 0').errors, []);
});

test('every alert: for, severity, summary, description and a runbook anchor in docs/operations.md', () => {
  const names = new Set<string>();
  for (const g of readRules().groups) {
    for (const r of g.rules) {
      const where = `group ${g.name} alert ${r.alert}`;
      assert.ok(r.alert && /^Vgw[A-Za-z]+$/.test(r.alert) && !names.has(r.alert), `${where}: name`);
      names.add(r.alert);
      assert.ok(r.expr, `${where}: expr`);
      assert.match(r.for ?? '', /^\d+[smh]$/, `${where}: for`);
      assert.ok(['warning', 'critical'].includes(r.labels?.severity ?? ''), `${where}: severity`);
      assert.ok(r.annotations?.summary && r.annotations.description, `${where}: summary and description`);
      assert.match(r.annotations?.runbook_url ?? '', /^docs\/operations\.md#[a-z0-9-]+$/, `${where}: runbook_url`);
    }
  }
  assert.ok(names.size >= 5);
});

test('the PrometheusRule holds the same groups as the rules file', () => {
  const docs = parseAllDocuments(readFileSync(join(ROOT, 'deploy/alerts/vgw-prometheusrule.yaml'), 'utf8')).map((d) => d.toJS() as { kind: string; spec: { groups: unknown } });
  assert.equal(docs.length, 1);
  assert.equal(docs[0].kind, 'PrometheusRule');
  assert.deepEqual(docs[0].spec.groups, readRules().groups);
});
