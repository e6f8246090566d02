// Per-Gateway infrastructure: the objects the operator keeps in the cluster for one Gateway
// (ServiceAccount, RoleBinding, Deployment, Service in the Gateway's namespace; one
// ClusterRoleBinding). A pure function of the Gateway, its listeners and its class's
// parameters: the reconciler applies what this returns and compares, nothing here talks to
// the API.
//
// Pods are replaced only when what a running pod cannot pick up changes: the image, varnishd's
// command line, the listen ports (fixed when varnishd starts), logging, where the agent serves
// /status and /metrics, and resources. Routes
// reach the pods through the routing ConfigMaps (src/operator/publish.ts) and never touch the
// Deployment. The pod template carries `gateway.vgw.dev/infra-hash` over exactly those inputs.
import { createHash } from 'node:crypto';
import type {
  V1ClusterRoleBinding,
  V1Container,
  V1Deployment,
  V1EnvVar,
  V1OwnerReference,
  V1ResourceRequirements,
  V1Role,
  V1RoleBinding,
  V1Service,
  V1ServiceAccount,
} from '@kubernetes/client-node';
import type { GatewayInfra, InfraListener } from '../ir/infra.ts';
import { quantityToBytes, type GatewayClassParametersSpec } from './parameters.ts';

export const GATEWAY_NAME_LABEL = 'gateway.networking.k8s.io/gateway-name';
export const GATEWAY_NAMESPACE_LABEL = 'gateway.vgw.dev/gateway-namespace';
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'vgw-operator';
export const INSTANCE_LABEL = 'app.kubernetes.io/instance';
export const INFRA_HASH_ANNOTATION = 'gateway.vgw.dev/infra-hash';
export const APP_NAME_LABEL = 'app.kubernetes.io/name';
export const APP_NAME = 'vgw';
export const COMPONENT_LABEL = 'app.kubernetes.io/component';
export const GATEWAY_COMPONENT = 'gateway';
/**
 * Labels every gateway pod carries whatever the class's or the Gateway's labels say (the
 * standard labels win): what a PodMonitor selects gateway pods by, in any namespace.
 */
export const GATEWAY_POD_LABELS: Readonly<Record<string, string>> = { [COMPONENT_LABEL]: GATEWAY_COMPONENT, [MANAGED_BY_LABEL]: MANAGED_BY };

/** ClusterRole of the agent's cluster-wide reads and route status writes (deploy/install.yaml). */
export const CHAPERONE_CLUSTER_ROLE = 'vgw-chaperone';
/** ClusterRole of the agent's ConfigMap reads, bound per Gateway namespace only (deploy/install.yaml). */
export const CHAPERONE_ROUTING_ROLE = 'vgw-chaperone-routing';

export const PROBE_PORT = 9901;
export const METRICS_PORT = 9902;
/** Container port name of the agent's /status and /metrics when exposed: what a PodMonitor scrapes. */
export const METRICS_PORT_NAME = 'metrics';
export const WORK_DIR = '/var/lib/vgw';
/**
 * The VSM directory of the pod's varnishd: the same for every varnishd the agent starts
 * (VARNISHD_DIR in src/runtime/data-plane.ts), so the logging sidecar follows restarts.
 */
export const VSM_DIR = `${WORK_DIR}/varnishd-live/varnish`;
const MAX_NAME = 63;

export interface GatewayIdentity {
  namespace: string;
  name: string;
  uid: string;
  /** The Gateway's spec.addresses (see requestedAddresses). */
  addresses?: readonly { type?: string; value?: string }[];
}

/**
 * The IPAddress values of spec.addresses, distinct, in spec order: what the Gateway's Service is
 * asked to be reached at. An IPAddress entry without a value asks for any address (nothing to
 * request); other types never get here, the translator does not accept their Gateway
 * (UnsupportedAddress).
 */
export function requestedAddresses(addresses: GatewayIdentity['addresses']): string[] {
  const values = (addresses ?? []).filter((a) => (a.type ?? 'IPAddress') === 'IPAddress' && a.value).map((a) => a.value as string);
  return [...new Set(values)];
}

export interface RenderOptions {
  /** Image when the parameters name none: the one matching the operator's version. */
  defaultImage: string;
}

export interface Infrastructure {
  serviceAccount: V1ServiceAccount;
  roleBinding: V1RoleBinding;
  /**
   * Read access to the Gateway's certificate Secret only (resourceNames: its one name), and the
   * binding of it to the pods' ServiceAccount: gateway pods never read other Secrets.
   */
  certificateRole: V1Role;
  certificateRoleBinding: V1RoleBinding;
  deployment: V1Deployment;
  service: V1Service;
  clusterRoleBinding: V1ClusterRoleBinding;
  /** In the Gateway's namespace, owned by the Gateway (garbage-collected with it). */
  namespaced: [V1ServiceAccount, V1RoleBinding, V1Deployment, V1Service, V1Role, V1RoleBinding];
  /** Cluster-scoped: cannot be owned by a namespaced Gateway; the operator deletes it by label. */
  cluster: [V1ClusterRoleBinding];
  /** The pod-template hash (also in the Deployment's pod template annotations). */
  infraHash: string;
  /** Why the Gateway's spec.addresses cannot be honoured (Programmed=False, AddressNotUsable); absent when they can. */
  addressProblem?: string;
}

/** What the Gateway's Service is asked for from spec.addresses, or why that cannot be done. */
export interface ServiceAddressRequest {
  loadBalancerIP?: string;
  problem?: string;
}

/**
 * spec.addresses -> the Service. Only a LoadBalancer Service can be asked for an address, as
 * `spec.loadBalancerIP`, and only one: `externalIPs` would let any Gateway owner capture
 * traffic for any IP in the cluster (and are commonly denied by admission), and a Service's
 * `clusterIP` cannot change without recreating it. Anything else is reported, not half done.
 */
export function serviceAddressRequest(requested: readonly string[], serviceType: string): ServiceAddressRequest {
  if (requested.length === 0) return {};
  if (serviceType !== 'LoadBalancer') {
    return { problem: `spec.addresses needs a LoadBalancer Service (the class's parameters set service type ${serviceType})` };
  }
  if (requested.length > 1) return { problem: `spec.addresses: only one IPAddress can be requested, got ${requested.length}` };
  return { loadBalancerIP: requested[0] };
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** JSON with object keys sorted, so equal inputs hash equally whatever their key order. */
function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * `vgw-<readable part>-<10 hex of sha256(parts)>`, at most 63 characters, a DNS label. The
 * hash covers the full, untruncated parts, so two Gateways never share a name (in one
 * namespace or across namespaces for cluster-scoped objects), and the `vgw-` prefix plus the
 * hash suffix keeps it apart from names users pick by hand.
 */
export function infraName(...parts: string[]): string {
  const hash = sha256(parts.join('/')).slice(0, 10);
  const readable = parts
    .join('-')
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .slice(0, MAX_NAME - 'vgw-'.length - 1 - hash.length)
    .replace(/^-+|-+$/g, '');
  return readable ? `vgw-${readable}-${hash}` : `vgw-${hash}`;
}

/**
 * The Gateway's certificate Secret (src/operator/publish-certificates.ts): named like its other
 * generated objects; its pods get read access to this one name and are told it by flag.
 */
export function certificateSecretName(namespace: string, gateway: string): string {
  return infraName(namespace, gateway);
}

/** Distinct listener ports, ascending: one Service port and one varnishd socket each. */
export function listenerPorts(listeners: readonly InfraListener[]): number[] {
  return [...new Set(listeners.map((l) => l.port))].sort((a, b) => a - b);
}

/** varnishd storage argument from the storage size (a quantity; varnishd reads a bare number as bytes). */
function storageArg(size: string): string {
  return `malloc,${quantityToBytes(size) ?? 256 * 2 ** 20}`;
}

/** The inputs that need new pods, and only those. */
export function infraHash(image: string, params: GatewayClassParametersSpec, ports: readonly number[]): string {
  return sha256(
    stableJson({
      image,
      varnish: params.varnish,
      ports,
      logging: params.logging,
      // The metrics address is a pod argument.
      metrics: params.metrics,
      resources: params.resources ?? null,
    }),
  ).slice(0, 16);
}

const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$/;

function standardLabels(gateway: GatewayIdentity, instance: string): Record<string, string> {
  const labels: Record<string, string> = {
    [APP_NAME_LABEL]: APP_NAME,
    [COMPONENT_LABEL]: GATEWAY_COMPONENT,
    [INSTANCE_LABEL]: instance,
    [MANAGED_BY_LABEL]: MANAGED_BY,
    [GATEWAY_NAMESPACE_LABEL]: gateway.namespace,
  };
  // Gateway names may be 253 characters, label values only 63: a longer name is still told
  // apart by the instance label, which carries its hash.
  if (gateway.name.length <= 63 && LABEL_VALUE.test(gateway.name)) labels[GATEWAY_NAME_LABEL] = gateway.name;
  return labels;
}

function ownerReference(gateway: GatewayIdentity): V1OwnerReference {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'Gateway',
    name: gateway.name,
    uid: gateway.uid,
    controller: true,
    blockOwnerDeletion: true,
  };
}

function downwardEnv(gateway: GatewayIdentity, hasNameLabel: boolean): V1EnvVar[] {
  return [
    { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
    // varnishd listens on the pod's address, not on the addresses the routing config names.
    { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
    { name: 'GATEWAY_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
    hasNameLabel
      ? { name: 'GATEWAY_NAME', valueFrom: { fieldRef: { fieldPath: `metadata.labels['${GATEWAY_NAME_LABEL}']` } } }
      : { name: 'GATEWAY_NAME', value: gateway.name },
  ];
}

function chaperoneArgs(gateway: GatewayIdentity, params: GatewayClassParametersSpec, ports: readonly number[]): string[] {
  const args = [
    '--gateway', `${gateway.namespace}/${gateway.name}`,
    '--listen-address=$(POD_IP)',
    // The pod's ports, as in its containerPorts and the template hash: a config naming other
    // ports (a listener added) is served by the pods rolled out for them, not by restarting
    // this pod's varnishd under its open connections.
    `--listen-ports=${ports.join(',')}`,
    // The one Secret the pod may read (certificateRole): the Gateway's certificates.
    `--certificate-secret=${certificateSecretName(gateway.namespace, gateway.name)}`,
    '--probe-port', String(PROBE_PORT),
    '--metrics-port', String(METRICS_PORT),
    // Exposed: /status and /metrics on the pod IP for a scrape (what they show: docs/chaperone.md).
    // Otherwise the agent's default, 127.0.0.1, inside the pod only.
    ...(params.metrics.exposed ? ['--metrics-address=$(POD_IP)'] : []),
    '--work-dir', WORK_DIR,
    '--storage', storageArg(params.varnish.storageSize),
    ...(params.http2 ? ['--http2'] : []),
  ];
  for (const name of Object.keys(params.varnish.parameters).sort()) args.push('--varnishd-param', `${name}=${params.varnish.parameters[name]}`);
  for (const arg of params.varnish.extraArgs) args.push(`--varnishd-arg=${arg}`);
  return args;
}

const CONTAINER_SECURITY = {
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  runAsNonRoot: true,
  seccompProfile: { type: 'RuntimeDefault' },
};

function loggingSidecar(image: string, params: GatewayClassParametersSpec): V1Container | null {
  const { mode, format, extraArgs } = params.logging;
  if (mode === 'none') return null;
  // -t off: wait for varnishd's shared memory however long the agent takes to start it.
  const args = ['-n', VSM_DIR, '-t', 'off'];
  if (mode === 'varnishncsa' && format !== undefined) args.push('-F', format);
  args.push(...extraArgs);
  return {
    name: mode,
    image,
    command: [mode],
    args,
    volumeMounts: [{ name: 'work', mountPath: WORK_DIR, readOnly: true }],
    securityContext: { ...CONTAINER_SECURITY, capabilities: { drop: ['ALL'] } },
  };
}

function resources(params: GatewayClassParametersSpec): V1ResourceRequirements | undefined {
  const r = params.resources;
  if (!r) return undefined;
  const out: V1ResourceRequirements = {};
  if (r.requests) out.requests = { ...r.requests } as Record<string, string>;
  if (r.limits) out.limits = { ...r.limits } as Record<string, string>;
  return out;
}

/** Everything one Gateway needs in the cluster. Pure: same inputs, same objects. */
export function renderInfrastructure(gateway: GatewayIdentity, infra: GatewayInfra, params: GatewayClassParametersSpec, options: RenderOptions): Infrastructure {
  const name = infraName(gateway.namespace, gateway.name);
  const clusterName = infraName('gw', gateway.namespace, gateway.name);
  const image = params.image ?? options.defaultImage;
  const ports = listenerPorts(infra.listeners);
  const hash = infraHash(image, params, ports);

  const standard = standardLabels(gateway, name);
  // Standard labels win: the selector and the cleanup of cluster-scoped objects rely on them.
  const labels = { ...params.labels, ...infra.labels, ...standard };
  const annotations = { ...params.annotations, ...infra.annotations };
  const owners = [ownerReference(gateway)];
  const meta = (extra: { labels?: Record<string, string>; annotations?: Record<string, string> } = {}) => ({
    name,
    namespace: gateway.namespace,
    labels: { ...(extra.labels ?? {}), ...labels },
    annotations: { ...annotations, ...(extra.annotations ?? {}) },
    ownerReferences: owners,
  });
  const selector = { [INSTANCE_LABEL]: name, [MANAGED_BY_LABEL]: MANAGED_BY };

  const serviceAccount: V1ServiceAccount = { apiVersion: 'v1', kind: 'ServiceAccount', metadata: meta() };
  const subjects = [{ kind: 'ServiceAccount', name, namespace: gateway.namespace }];

  const roleBinding: V1RoleBinding = {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: meta(),
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: CHAPERONE_ROUTING_ROLE },
    subjects,
  };

  const certificateRole: V1Role = {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'Role',
    metadata: meta(),
    rules: [{ apiGroups: [''], resources: ['secrets'], resourceNames: [certificateSecretName(gateway.namespace, gateway.name)], verbs: ['get', 'list', 'watch'] }],
  };
  const certificateRoleBinding: V1RoleBinding = {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: { ...meta(), name: infraName(gateway.namespace, gateway.name, 'certificates') },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
    subjects,
  };

  const clusterRoleBinding: V1ClusterRoleBinding = {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRoleBinding',
    metadata: { name: clusterName, labels, annotations },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: CHAPERONE_CLUSTER_ROLE },
    subjects,
  };

  const gatewayContainer: V1Container = {
    name: 'gateway',
    image,
    command: ['tini', '--', 'vgw', 'chaperone'],
    args: chaperoneArgs(gateway, params, ports),
    env: downwardEnv(gateway, GATEWAY_NAME_LABEL in standard),
    ports: [
      ...ports.map((port) => ({ name: `l-${port}`, containerPort: port, protocol: 'TCP' })),
      { name: 'probe', containerPort: PROBE_PORT, protocol: 'TCP' },
      // Declared only when it can be reached: a PodMonitor scraping a pod-local port would only fail.
      ...(params.metrics.exposed ? [{ name: METRICS_PORT_NAME, containerPort: METRICS_PORT, protocol: 'TCP' }] : []),
    ],
    // Readiness only: /healthz is 503 for the whole drain, and a liveness probe would restart
    // the container in the middle of it (docs/chaperone.md).
    readinessProbe: { httpGet: { path: '/healthz', port: 'probe' }, periodSeconds: 2, failureThreshold: 1, timeoutSeconds: 1 },
    resources: resources(params),
    volumeMounts: [
      { name: 'work', mountPath: WORK_DIR },
      { name: 'tmp', mountPath: '/tmp' },
    ],
    securityContext: { ...CONTAINER_SECURITY, capabilities: { drop: ['ALL'], add: ['NET_BIND_SERVICE'] } },
  };
  const sidecar = loggingSidecar(image, params);

  const privilegedPorts = ports.length > 0 && ports[0] < 1024;
  const deployment: V1Deployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: meta(),
    spec: {
      ...(params.replicas !== undefined ? { replicas: params.replicas } : {}),
      selector: { matchLabels: selector },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
      template: {
        metadata: { labels, annotations: { ...annotations, [INFRA_HASH_ANNOTATION]: hash } },
        spec: {
          serviceAccountName: name,
          terminationGracePeriodSeconds: params.terminationGracePeriodSeconds,
          securityContext: {
            runAsNonRoot: true,
            seccompProfile: { type: 'RuntimeDefault' },
            // A capability added to a non-root container is not in its effective set; the
            // namespaced sysctl lets the pod bind listener ports below 1024 without it.
            ...(privilegedPorts ? { sysctls: [{ name: 'net.ipv4.ip_unprivileged_port_start', value: String(ports[0]) }] } : {}),
          },
          containers: sidecar ? [gatewayContainer, sidecar] : [gatewayContainer],
          volumes: [
            { name: 'work', emptyDir: {} },
            { name: 'tmp', emptyDir: {} },
          ],
        },
      },
    },
  };

  const serviceType = params.service.type;
  const address = serviceAddressRequest(requestedAddresses(gateway.addresses), serviceType);
  const service: V1Service = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta({ labels: params.service.labels, annotations: params.service.annotations }),
    spec: {
      type: serviceType,
      selector,
      ports: ports.map((port) => ({ name: `l-${port}`, port, targetPort: port, protocol: 'TCP' })),
      ...(serviceType === 'LoadBalancer' && params.service.loadBalancerClass ? { loadBalancerClass: params.service.loadBalancerClass } : {}),
      ...(address.loadBalancerIP ? { loadBalancerIP: address.loadBalancerIP } : {}),
      // The apiserver refuses externalTrafficPolicy on ClusterIP Services.
      ...(serviceType !== 'ClusterIP' && params.service.externalTrafficPolicy ? { externalTrafficPolicy: params.service.externalTrafficPolicy } : {}),
    },
  };

  return {
    serviceAccount,
    roleBinding,
    certificateRole,
    certificateRoleBinding,
    deployment,
    service,
    clusterRoleBinding,
    namespaced: [serviceAccount, roleBinding, deployment, service, certificateRole, certificateRoleBinding],
    cluster: [clusterRoleBinding],
    infraHash: hash,
    ...(address.problem ? { addressProblem: address.problem } : {}),
  };
}
