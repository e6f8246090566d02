import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { CRD_PATH, INSTALL_PATH, PODMONITORS_PATH, PROMETHEUS_RULE_PATH, generateManifests, podLabelMeta, staleFiles } from '../../scripts/manifests.ts';
import { GATEWAY_NAME_LABEL, renderInfrastructure } from '../../src/operator/infrastructure.ts';
import { defaultParameters, parseParameters } from '../../src/operator/parameters.ts';

type Obj = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string }; [key: string]: unknown };

function installObjects(): Obj[] {
  return parseAllDocuments(generateManifests().get(INSTALL_PATH) as string).map((d) => d.toJS() as Obj).filter(Boolean);
}

describe('npm run manifests', () => {
  test('the generator is deterministic', () => {
    const a = generateManifests();
    const b = generateManifests();
    assert.deepEqual([...a.keys()], [CRD_PATH, INSTALL_PATH, PROMETHEUS_RULE_PATH, PODMONITORS_PATH]);
    assert.deepEqual(a, b);
  });

  test('the committed files in deploy/ are up to date (run `npm run manifests`)', () => {
    assert.deepEqual(staleFiles(), []);
  });

  test('--check reports a missing or edited file', () => {
    const root = mkdtempSync(join(tmpdir(), 'vgw-manifests-'));
    try {
      for (const [path, content] of generateManifests()) {
        mkdirSync(dirname(join(root, path)), { recursive: true });
        writeFileSync(join(root, path), content);
      }
      assert.deepEqual(staleFiles(root), []);
      writeFileSync(join(root, INSTALL_PATH), generateManifests().get(INSTALL_PATH)!.replace('replicas: 2', 'replicas: 3'));
      rmSync(join(root, CRD_PATH));
      const stale = staleFiles(root);
      assert.equal(stale.length, 2);
      assert.match(stale.join('\n'), /gatewayclassparameters\.yaml: missing/);
      assert.match(stale.join('\n'), /install\.yaml: differs from line \d+ \(committed: "  replicas: 3", generated: "  replicas: 2"/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  test('install.yaml: namespace, CRD, RBAC, operator, default class with parameters that parse', () => {
    const objects = installObjects();
    const kinds = objects.map((o) => `${o.kind}/${o.metadata.name}`);
    assert.deepEqual(kinds, [
      'Namespace/vgw-system',
      'CustomResourceDefinition/gatewayclassparameters.gateway.vgw.dev',
      'ClusterRole/vgw-operator',
      'ClusterRole/vgw-chaperone',
      'ClusterRole/vgw-chaperone-routing',
      'ServiceAccount/vgw-operator',
      'ClusterRoleBinding/vgw-operator',
      'Deployment/vgw-operator',
      'GatewayClassParameters/vgw-default',
      'GatewayClass/vgw',
    ]);
    const version = (JSON.parse(readFileSync(join(import.meta.dirname, '../../package.json'), 'utf8')) as { version: string }).version;
    const deployment = objects.find((o) => o.kind === 'Deployment') as unknown as {
      spec: { replicas: number; template: { spec: { securityContext: { runAsNonRoot: boolean }; containers: { image: string; command: string[]; securityContext: { capabilities: { drop: string[]; add?: string[] } } }[] } } };
    };
    assert.equal(deployment.spec.replicas, 2);
    const container = deployment.spec.template.spec.containers[0];
    assert.equal(container.image, `vgw:${version}`);
    assert.deepEqual(container.command, ['tini', '--', 'vgw', 'operator']);
    assert.equal(deployment.spec.template.spec.securityContext.runAsNonRoot, true);
    assert.deepEqual(container.securityContext.capabilities, { drop: ['ALL'] });
    const params = objects.find((o) => o.kind === 'GatewayClassParameters');
    const parsed = parseParameters(params);
    assert.ok(parsed.ok, parsed.ok ? '' : parsed.error);
    assert.equal(parsed.value.spec.image, `vgw:${version}`);
    const gc = objects.find((o) => o.kind === 'GatewayClass') as unknown as { spec: { controllerName: string; parametersRef: unknown } };
    assert.equal(gc.spec.controllerName, 'vgw.dev/gateway-controller');
    assert.deepEqual(gc.spec.parametersRef, { group: 'gateway.vgw.dev', kind: 'GatewayClassParameters', name: 'vgw-default' });
  });

  test('the chaperone ClusterRole grants exactly what docs/chaperone.md lists; ConfigMaps and Pods only through the per-namespace role', () => {
    const objects = installObjects();
    const rules = (name: string) => (objects.find((o) => o.kind === 'ClusterRole' && o.metadata.name === name) as unknown as { rules: unknown[] }).rules;
    // No HTTPRoute access: route status is the operator's alone.
    assert.deepEqual(rules('vgw-chaperone'), [{ apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['list', 'watch'] }]);
    assert.deepEqual(rules('vgw-chaperone-routing'), [
      { apiGroups: [''], resources: ['configmaps'], verbs: ['list', 'watch'] },
      { apiGroups: [''], resources: ['pods'], verbs: ['get', 'patch'] },
    ]);
    // Secrets: the operator reads certificates and writes each Gateway's certificate Secret
    // (never patch, never a wildcard); nothing has a wildcard.
    const operator = rules('vgw-operator') as { apiGroups: string[]; resources: string[]; verbs: string[] }[];
    for (const r of operator) {
      assert.ok(!r.verbs.includes('*') && !r.resources.includes('*') && !r.apiGroups.includes('*'));
      if (r.resources.includes('secrets')) assert.deepEqual(r.verbs, ['get', 'list', 'watch', 'create', 'update', 'delete']);
    }
  });

  test('the operator serves /metrics on its pod IP, at a container port named metrics', () => {
    const deployment = installObjects().find((o) => o.kind === 'Deployment') as unknown as {
      spec: { template: { spec: { containers: { args?: string[]; env: { name: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[]; ports: { name: string; containerPort: number }[] }[] } } };
    };
    const c = deployment.spec.template.spec.containers[0];
    assert.deepEqual(c.args, ['--metrics-address=$(POD_IP)']);
    assert.equal(c.env.find((e) => e.name === 'POD_IP')?.valueFrom?.fieldRef?.fieldPath, 'status.podIP');
    assert.deepEqual(c.ports.find((p) => p.name === 'metrics')?.containerPort, 9902);
  });

  test('podmonitors.yaml: gateway pods in any namespace and the operator, by their own labels and port, with namespace, pod and gateway labels', () => {
    type Relabel = { sourceLabels: string[]; targetLabel: string };
    type PodMonitor = Obj & { spec: { namespaceSelector: Record<string, unknown>; selector: { matchLabels: Record<string, string> }; podMetricsEndpoints: { port: string; path: string; relabelings: Relabel[] }[] } };
    const monitors = parseAllDocuments(generateManifests().get(PODMONITORS_PATH) as string).map((d) => d.toJS() as PodMonitor).filter(Boolean);
    assert.deepEqual(monitors.map((m) => `${m.apiVersion} ${m.kind}/${m.metadata.namespace}/${m.metadata.name}`), [
      'monitoring.coreos.com/v1 PodMonitor/vgw-system/vgw-gateways',
      'monitoring.coreos.com/v1 PodMonitor/vgw-system/vgw-operator',
    ]);
    const [gateways, operator] = monitors;
    const targets = (m: PodMonitor) => Object.fromEntries(m.spec.podMetricsEndpoints[0].relabelings.map((r) => [r.targetLabel, r.sourceLabels]));
    assert.deepEqual(targets(gateways), {
      namespace: ['__meta_kubernetes_namespace'],
      pod: ['__meta_kubernetes_pod_name'],
      gateway: ['__meta_kubernetes_pod_label_gateway_networking_k8s_io_gateway_name'],
    });
    assert.equal(podLabelMeta(GATEWAY_NAME_LABEL), '__meta_kubernetes_pod_label_gateway_networking_k8s_io_gateway_name');
    assert.deepEqual(targets(operator), { namespace: ['__meta_kubernetes_namespace'], pod: ['__meta_kubernetes_pod_name'] });
    assert.deepEqual(gateways.spec.namespaceSelector, { any: true });
    assert.deepEqual(operator.spec.namespaceSelector, { matchNames: ['vgw-system'] });

    // Each selects the pods it is about, at a port they declare, and not the others.
    const selects = (m: PodMonitor, labels: Record<string, string> = {}) => Object.entries(m.spec.selector.matchLabels).every(([k, v]) => labels[k] === v);
    const rendered = renderInfrastructure({ namespace: 'shop', name: 'public', uid: 'u' }, { listeners: [{ name: 'http', protocol: 'HTTP', port: 80, hostname: '*', certificateRefs: [] }], addresses: [], labels: {}, annotations: {} }, defaultParameters(), { defaultImage: 'vgw:0' });
    const gatewayPod = rendered.deployment.spec?.template;
    const operatorPod = (installObjects().find((o) => o.kind === 'Deployment') as unknown as { spec: { template: { metadata: { labels: Record<string, string> }; spec: { containers: { ports: { name: string }[] }[] } } } }).spec.template;
    assert.ok(selects(gateways, gatewayPod?.metadata?.labels) && !selects(gateways, operatorPod.metadata.labels));
    assert.ok(selects(operator, operatorPod.metadata.labels) && !selects(operator, gatewayPod?.metadata?.labels));
    assert.ok(gatewayPod?.spec?.containers[0].ports?.some((p) => p.name === gateways.spec.podMetricsEndpoints[0].port));
    assert.ok(operatorPod.spec.containers[0].ports.some((p) => p.name === operator.spec.podMetricsEndpoints[0].port));
    for (const m of monitors) assert.equal(m.spec.podMetricsEndpoints[0].path, '/metrics');
  });
});
