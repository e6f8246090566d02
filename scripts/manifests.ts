// Generates the install manifests from the code that defines them: the GatewayClassParameters
// CRD from its zod schema (src/operator/parameters.ts) and deploy/install.yaml around it, and the
// Prometheus Operator objects (deploy/alerts/, deploy/monitoring/) from the operator's constants.
//
//   npm run manifests            writes deploy/
//   npm run manifests -- --check exits 1 (with a summary of the differences) when deploy/ is stale
//
// The output is deterministic: objects in a fixed order, schema keys sorted.
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parse, stringify } from 'yaml';
import { z } from 'zod';
import {
  PARAMETERS_GROUP,
  PARAMETERS_KIND,
  PARAMETERS_PLURAL,
  PARAMETERS_VERSION,
  gatewayClassParametersSpec,
} from '../src/operator/parameters.ts';
import {
  CHAPERONE_CLUSTER_ROLE,
  CHAPERONE_ROUTING_ROLE,
  GATEWAY_NAME_LABEL,
  GATEWAY_POD_LABELS,
  METRICS_PORT,
  METRICS_PORT_NAME,
  PROBE_PORT,
} from '../src/operator/infrastructure.ts';

const ROOT = resolve(import.meta.dirname, '..');
export const CRD_PATH = 'deploy/crds/gateway.vgw.dev_gatewayclassparameters.yaml';
export const INSTALL_PATH = 'deploy/install.yaml';
export const NAMESPACE = 'vgw-system';
export const CONTROLLER_NAME = 'vgw.dev/gateway-controller';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Schema = { [key: string]: Json };

function sortKeys(value: Json): Json {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === 'object') {
    const out: { [key: string]: Json } = {};
    for (const key of Object.keys(value).sort()) out[key] = sortKeys(value[key]);
    return out;
  }
  return value;
}

/**
 * zod's OpenAPI output -> a structural schema as the apiserver requires: `$ref`s inlined,
 * `const` as a one-value enum, no `additionalProperties` beside `properties` (the apiserver
 * prunes unknown fields instead), no JSON-Schema-only keywords.
 */
export function structural(node: Json, defs: Record<string, Json> = {}): Json {
  if (Array.isArray(node)) return node.map((n) => structural(n, defs));
  if (!node || typeof node !== 'object') return node;
  if (typeof node.$ref === 'string') {
    const target = defs[node.$ref.replace(/^#\/(\$defs|definitions|components\/schemas)\//, '')];
    if (target === undefined) throw new Error(`unresolved $ref ${node.$ref}`);
    const { $ref: _ref, ...rest } = node;
    return structural({ ...(target as Schema), ...rest }, defs);
  }
  const out: Schema = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === '$schema' || key === '$defs' || key === 'definitions' || key === 'propertyNames' || key === 'id') continue;
    if (key === 'const') {
      out.enum = [value];
      continue;
    }
    // Inside `properties` and `x-kubernetes-validations`, keys are field names or rule fields.
    if (key === 'properties' && value && typeof value === 'object' && !Array.isArray(value)) {
      out.properties = Object.fromEntries(Object.entries(value).map(([k, v]) => [k, structural(v, defs)]));
      continue;
    }
    out[key] = key === 'x-kubernetes-validations' ? value : structural(value, defs);
  }
  if (out.properties !== undefined) delete out.additionalProperties;
  if (out.additionalProperties === false) delete out.additionalProperties;
  return out;
}

/** The OpenAPI v3 schema of a GatewayClassParameters object, structural. */
export function parametersOpenApiSchema(): Schema {
  const raw = z.toJSONSchema(gatewayClassParametersSpec, { target: 'openapi-3.0', io: 'input' }) as unknown as Schema;
  const defs = { ...((raw.$defs ?? {}) as Record<string, Json>), ...((raw.definitions ?? {}) as Record<string, Json>) };
  const spec = structural(raw, defs) as Schema;
  spec.default = {};
  return sortKeys({
    type: 'object',
    description: 'Settings of the per-Gateway infrastructure of every Gateway whose GatewayClass references this object.',
    properties: {
      apiVersion: { type: 'string' },
      kind: { type: 'string' },
      metadata: { type: 'object' },
      spec: spec,
    },
  }) as Schema;
}

export function parametersCrd(): Schema {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: `${PARAMETERS_PLURAL}.${PARAMETERS_GROUP}`,
      labels: { 'app.kubernetes.io/name': 'vgw', 'app.kubernetes.io/component': 'crd' },
    },
    spec: {
      group: PARAMETERS_GROUP,
      names: { kind: PARAMETERS_KIND, listKind: `${PARAMETERS_KIND}List`, plural: PARAMETERS_PLURAL, singular: PARAMETERS_KIND.toLowerCase(), categories: ['vgw'] },
      scope: 'Cluster',
      versions: [
        {
          name: PARAMETERS_VERSION,
          served: true,
          storage: true,
          schema: { openAPIV3Schema: parametersOpenApiSchema() },
        },
      ],
    },
  };
}

function packageVersion(): string {
  return (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
}

const LABELS = { 'app.kubernetes.io/name': 'vgw', 'app.kubernetes.io/component': 'operator' };
/** The operator pods' labels: its Deployment's selector and what its PodMonitor selects. */
export const OPERATOR_POD_LABELS: Readonly<Record<string, string>> = LABELS;
const rule = (apiGroups: string[], resources: string[], verbs: string[]): Schema => ({ apiGroups, resources, verbs });
const READ = ['get', 'list', 'watch'];
const OWN = ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'];
const GW = 'gateway.networking.k8s.io';

/** What the operator does, as RBAC: read the Gateway API, write status, own per-Gateway objects. */
function operatorClusterRole(): Schema {
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRole',
    metadata: { name: 'vgw-operator', labels: LABELS },
    rules: [
      rule([GW], ['gatewayclasses', 'gateways', 'httproutes', 'referencegrants', 'backendtlspolicies'], READ),
      rule([GW], ['gatewayclasses/status', 'gateways/status', 'httproutes/status', 'backendtlspolicies/status'], ['get', 'update', 'patch']),
      // ownerReferences with blockOwnerDeletion need update on the owner's finalizers.
      rule([GW], ['gateways/finalizers'], ['update']),
      rule([PARAMETERS_GROUP], [PARAMETERS_PLURAL], READ),
      rule([''], ['namespaces'], READ),
      // Reads the certificate Secrets HTTPS listeners reference (any namespace, ReferenceGrant)
      // and writes one certificate Secret per Gateway, the only Secret its pods may read.
      rule([''], ['secrets'], ['get', 'list', 'watch', 'create', 'update', 'delete']),
      // The gateway pods' reports of the config they serve (HTTPRoute Programmed).
      rule([''], ['pods'], READ),
      rule(['discovery.k8s.io'], ['endpointslices'], READ),
      rule([''], ['services', 'configmaps', 'serviceaccounts'], OWN),
      rule(['apps'], ['deployments'], OWN),
      // Per-Gateway Role: read access to that Gateway's certificate Secret only (resourceNames).
      // Granting it needs no escalate: the operator holds get/list/watch on Secrets itself.
      rule(['rbac.authorization.k8s.io'], ['roles', 'rolebindings', 'clusterrolebindings'], OWN),
      rule(['coordination.k8s.io'], ['leases'], ['get', 'create', 'update']),
      rule([''], ['events'], ['create', 'patch']),
      rule(['events.k8s.io'], ['events'], ['create', 'patch']),
    ],
  };
}

/** The agent's permissions (docs/chaperone.md); per-Gateway bindings reference these roles. */
function chaperoneRoles(): Schema[] {
  const labels = { 'app.kubernetes.io/name': 'vgw', 'app.kubernetes.io/component': 'gateway' };
  return [
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: CHAPERONE_CLUSTER_ROLE, labels },
      rules: [
        rule(['discovery.k8s.io'], ['endpointslices'], ['list', 'watch']),
      ],
    },
    {
      // Bound by a RoleBinding in each Gateway's namespace only: ConfigMaps elsewhere stay
      // unreadable, and the Pods it may annotate (its own, with the config it serves) are only
      // those of the Gateway's namespace.
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: CHAPERONE_ROUTING_ROLE, labels },
      rules: [rule([''], ['configmaps'], ['list', 'watch']), rule([''], ['pods'], ['get', 'patch'])],
    },
  ];
}

function operatorDeployment(image: string): Schema {
  const selector = { ...OPERATOR_POD_LABELS };
  const fieldEnv = (name: string, fieldPath: string): Schema => ({ name, valueFrom: { fieldRef: { fieldPath } } });
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'vgw-operator', namespace: NAMESPACE, labels: LABELS },
    spec: {
      replicas: 2,
      selector: { matchLabels: selector },
      template: {
        metadata: { labels: LABELS },
        spec: {
          serviceAccountName: 'vgw-operator',
          securityContext: { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, seccompProfile: { type: 'RuntimeDefault' } },
          containers: [
            {
              name: 'operator',
              image,
              command: ['tini', '--', 'vgw', 'operator'],
              // /metrics on the pod IP, so Prometheus can scrape it (deploy/monitoring/).
              args: ['--metrics-address=$(POD_IP)'],
              env: [fieldEnv('POD_NAME', 'metadata.name'), fieldEnv('POD_NAMESPACE', 'metadata.namespace'), fieldEnv('POD_IP', 'status.podIP')],
              ports: [
                { name: 'probe', containerPort: PROBE_PORT, protocol: 'TCP' },
                { name: METRICS_PORT_NAME, containerPort: METRICS_PORT, protocol: 'TCP' },
              ],
              livenessProbe: { httpGet: { path: '/healthz', port: 'probe' }, periodSeconds: 10, failureThreshold: 3 },
              readinessProbe: { httpGet: { path: '/readyz', port: 'probe' }, periodSeconds: 5, failureThreshold: 2 },
              resources: { requests: { cpu: '50m', memory: '128Mi' }, limits: { memory: '512Mi' } },
              securityContext: {
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                runAsNonRoot: true,
                capabilities: { drop: ['ALL'] },
              },
            },
          ],
        },
      },
    },
  };
}

export function installObjects(version = packageVersion()): Schema[] {
  const image = `vgw:${version}`;
  return [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NAMESPACE, labels: { 'app.kubernetes.io/name': 'vgw' } } },
    parametersCrd(),
    operatorClusterRole(),
    ...chaperoneRoles(),
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'vgw-operator', namespace: NAMESPACE, labels: LABELS } },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'vgw-operator', labels: LABELS },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'vgw-operator' },
      subjects: [{ kind: 'ServiceAccount', name: 'vgw-operator', namespace: NAMESPACE }],
    },
    operatorDeployment(image),
    {
      apiVersion: `${PARAMETERS_GROUP}/${PARAMETERS_VERSION}`,
      kind: PARAMETERS_KIND,
      metadata: { name: 'vgw-default', labels: { 'app.kubernetes.io/name': 'vgw' } },
      spec: { image },
    },
    {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'GatewayClass',
      metadata: { name: 'vgw', labels: { 'app.kubernetes.io/name': 'vgw' } },
      spec: {
        controllerName: CONTROLLER_NAME,
        description: 'Varnish Cache data plane managed by vgw',
        parametersRef: { group: PARAMETERS_GROUP, kind: PARAMETERS_KIND, name: 'vgw-default' },
      },
    },
  ];
}

const HEADER = '# Generated by `npm run manifests` (scripts/manifests.ts). Do not edit.\n';

function yamlDocs(objects: Schema[]): string {
  return HEADER + objects.map((o) => `---\n${stringify(o, { lineWidth: 0, aliasDuplicateObjects: false })}`).join('');
}

export const RULES_PATH = 'deploy/alerts/vgw-rules.yaml';
export const PROMETHEUS_RULE_PATH = 'deploy/alerts/vgw-prometheusrule.yaml';

/** The alert rules of RULES_PATH (the one source, a plain Prometheus rules file) for the Prometheus Operator. */
function prometheusRule(): Schema {
  const rules = parse(readFileSync(join(ROOT, RULES_PATH), 'utf8')) as { groups: Json };
  return {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PrometheusRule',
    metadata: { name: 'vgw', namespace: NAMESPACE, labels: { 'app.kubernetes.io/name': 'vgw' } },
    spec: { groups: rules.groups },
  };
}

export const PODMONITORS_PATH = 'deploy/monitoring/podmonitors.yaml';

/** The meta label Kubernetes service discovery gives a pod label (`__meta_kubernetes_pod_label_<sanitised name>`). */
export function podLabelMeta(label: string): string {
  return `__meta_kubernetes_pod_label_${label.replace(/[^A-Za-z0-9_]/g, '_')}`;
}

/** The labels the dashboards and alerts filter on: `namespace` and `pod` on every series. */
const POD_RELABELINGS: Schema[] = [
  { sourceLabels: ['__meta_kubernetes_namespace'], targetLabel: 'namespace' },
  { sourceLabels: ['__meta_kubernetes_pod_name'], targetLabel: 'pod' },
];

function podMonitor(name: string, namespaceSelector: Schema, selector: Record<string, string>, relabelings: Schema[]): Schema {
  return {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PodMonitor',
    metadata: { name, namespace: NAMESPACE, labels: { 'app.kubernetes.io/name': 'vgw' } },
    spec: {
      namespaceSelector,
      selector: { matchLabels: { ...selector } },
      podMetricsEndpoints: [{ port: METRICS_PORT_NAME, path: '/metrics', relabelings }],
    },
  };
}

/**
 * PodMonitors of the gateway pods (any namespace, by the labels the operator always puts on
 * them; a class with `metrics.exposed: false` has no `metrics` port, so its pods are not
 * scraped) and of the operator, adding the `namespace`, `pod` and `gateway` labels the
 * dashboards and alerts filter on.
 */
export function podMonitors(): Schema[] {
  return [
    podMonitor('vgw-gateways', { any: true }, GATEWAY_POD_LABELS, [
      ...POD_RELABELINGS,
      // A Gateway name longer than a label value has no such pod label, and its series no `gateway` label.
      { sourceLabels: [podLabelMeta(GATEWAY_NAME_LABEL)], targetLabel: 'gateway' },
    ]),
    podMonitor('vgw-operator', { matchNames: [NAMESPACE] }, OPERATOR_POD_LABELS, POD_RELABELINGS),
  ];
}

/** Path (relative to the repository) -> content. */
export function generateManifests(version?: string): Map<string, string> {
  return new Map([
    [CRD_PATH, yamlDocs([parametersCrd()])],
    [INSTALL_PATH, yamlDocs(installObjects(version))],
    [PROMETHEUS_RULE_PATH, yamlDocs([prometheusRule()])],
    [PODMONITORS_PATH, yamlDocs(podMonitors())],
  ]);
}

function readOrNull(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/** One line per stale file: missing, or the first differing line. */
export function staleFiles(root = ROOT): string[] {
  const out: string[] = [];
  for (const [path, want] of generateManifests()) {
    const have = readOrNull(join(root, path));
    if (have === null) {
      out.push(`${path}: missing`);
      continue;
    }
    if (have === want) continue;
    const a = have.split('\n');
    const b = want.split('\n');
    let line = 0;
    while (line < a.length && line < b.length && a[line] === b[line]) line++;
    out.push(`${path}: differs from line ${line + 1} (committed: ${JSON.stringify(a[line] ?? '<end>')}, generated: ${JSON.stringify(b[line] ?? '<end>')}; ${a.length} vs ${b.length} lines)`);
  }
  return out;
}

function main(argv: string[]): number {
  if (argv.includes('--check')) {
    const stale = staleFiles();
    if (stale.length === 0) return 0;
    process.stderr.write(`deploy/ is not up to date with the code; run \`npm run manifests\`:\n${stale.map((s) => `  ${s}`).join('\n')}\n`);
    return 1;
  }
  for (const [path, content] of generateManifests()) {
    mkdirSync(dirname(join(ROOT, path)), { recursive: true });
    writeFileSync(join(ROOT, path), content);
    process.stdout.write(`wrote ${path}\n`);
  }
  return 0;
}

if (import.meta.main) process.exitCode = main(process.argv.slice(2));
