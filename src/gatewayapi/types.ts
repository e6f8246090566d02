// Plain typed views of the Kubernetes objects the pipeline reads. Fields are optional where
// the API allows omission. Objects reach these types only through the schemas in ./schema/
// (shape, types, sizes, as the API server checks them); the translator checks semantics and
// applies defaults.

export const GATEWAY_GROUP = 'gateway.networking.k8s.io';

export interface ObjectMeta {
  name: string;
  namespace?: string;
  generation?: number;
  creationTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  observedGeneration: number;
  lastTransitionTime?: string;
}

export interface GatewayClass {
  apiVersion: string;
  kind: 'GatewayClass';
  metadata: ObjectMeta;
  spec: { controllerName: string; description?: string; parametersRef?: unknown };
}

export interface AllowedRoutes {
  namespaces?: {
    from?: 'All' | 'Same' | 'Selector' | string;
    selector?: LabelSelector;
  };
  kinds?: { group?: string; kind: string }[];
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}

export interface Listener {
  name: string;
  hostname?: string;
  port: number;
  protocol: string;
  tls?: ListenerTLS;
  allowedRoutes?: AllowedRoutes;
}

export interface ListenerTLS {
  mode?: 'Terminate' | 'Passthrough';
  certificateRefs?: SecretObjectReference[];
  options?: Record<string, string>;
}

export interface SecretObjectReference {
  group?: string;
  kind?: string;
  name: string;
  namespace?: string;
}

export interface Gateway {
  apiVersion: string;
  kind: 'Gateway';
  metadata: ObjectMeta;
  spec: {
    gatewayClassName: string;
    listeners: Listener[];
    addresses?: { type?: string; value?: string }[];
    /** labels and annotations are validated by the schema (schema/gateway.ts). */
    infrastructure?: { parametersRef?: unknown; labels?: Record<string, string>; annotations?: Record<string, string> };
    tls?: GatewayTLSConfig;
  };
}

/** Gateway spec.tls (Gateway API v1.4+): frontend = client certificate validation. */
export interface GatewayTLSConfig {
  /** backend.clientCertificateRef: the certificate presented to backends that ask for one. */
  backend?: { clientCertificateRef?: SecretObjectReference };
  frontend?: {
    default: FrontendTLSConfig;
    perPort?: { port: number; tls: FrontendTLSConfig }[];
  };
}

export interface FrontendTLSConfig {
  validation?: {
    caCertificateRefs: ObjectReference[];
    mode?: 'AllowValidOnly' | 'AllowInsecureFallback';
  };
}

export interface ObjectReference {
  group: string;
  kind: string;
  name: string;
  namespace?: string;
}

export interface ParentReference {
  group?: string;
  kind?: string;
  namespace?: string;
  name: string;
  sectionName?: string;
  port?: number;
}

export interface HTTPPathMatch {
  type?: 'Exact' | 'PathPrefix' | 'RegularExpression' | string;
  value?: string;
}

export interface HTTPHeaderMatch {
  type?: 'Exact' | 'RegularExpression' | string;
  name: string;
  value: string;
}

export interface HTTPRouteMatch {
  path?: HTTPPathMatch;
  headers?: HTTPHeaderMatch[];
  queryParams?: HTTPHeaderMatch[];
  method?: string;
}

export interface HTTPHeader {
  name: string;
  value: string;
}

export interface HTTPHeaderFilter {
  set?: HTTPHeader[];
  add?: HTTPHeader[];
  remove?: string[];
}

export interface HTTPPathModifier {
  type: 'ReplaceFullPath' | 'ReplacePrefixMatch' | string;
  replaceFullPath?: string;
  replacePrefixMatch?: string;
}

export interface HTTPRequestRedirectFilter {
  scheme?: string;
  hostname?: string;
  path?: HTTPPathModifier;
  port?: number;
  statusCode?: number;
}

export interface HTTPURLRewriteFilter {
  hostname?: string;
  path?: HTTPPathModifier;
}

export interface HTTPRequestMirrorFilter {
  backendRef?: HTTPBackendRef;
  percent?: number;
  fraction?: { numerator?: number; denominator?: number };
}

export interface HTTPCORSFilter {
  allowOrigins?: string[];
  allowCredentials?: boolean;
  allowMethods?: string[];
  allowHeaders?: string[];
  exposeHeaders?: string[];
  maxAge?: number;
}

export interface HTTPRouteFilter {
  type: string;
  requestHeaderModifier?: HTTPHeaderFilter;
  responseHeaderModifier?: HTTPHeaderFilter;
  requestRedirect?: HTTPRequestRedirectFilter;
  urlRewrite?: HTTPURLRewriteFilter;
  requestMirror?: HTTPRequestMirrorFilter;
  cors?: HTTPCORSFilter;
  extensionRef?: unknown;
}

export interface HTTPBackendRef {
  group?: string;
  kind?: string;
  name: string;
  namespace?: string;
  port?: number;
  weight?: number;
  filters?: HTTPRouteFilter[];
}

export interface HTTPRouteRule {
  name?: string;
  matches?: HTTPRouteMatch[];
  filters?: HTTPRouteFilter[];
  backendRefs?: HTTPBackendRef[];
  timeouts?: { request?: string; backendRequest?: string };
  retry?: { attempts?: number; codes?: number[]; backoff?: string };
}

export interface HTTPRoute {
  apiVersion: string;
  kind: 'HTTPRoute';
  metadata: ObjectMeta;
  spec: {
    parentRefs?: ParentReference[];
    hostnames?: string[];
    rules?: HTTPRouteRule[];
  };
}

export interface ReferenceGrant {
  apiVersion: string;
  kind: 'ReferenceGrant';
  metadata: ObjectMeta;
  spec: {
    from: { group: string; kind: string; namespace: string }[];
    to: { group: string; kind: string; name?: string }[];
  };
}

export interface ServicePort {
  name?: string;
  port: number;
  targetPort?: number | string;
  protocol?: string;
  appProtocol?: string;
}

export interface Service {
  apiVersion: string;
  kind: 'Service';
  metadata: ObjectMeta;
  spec: { ports?: ServicePort[]; type?: string; clusterIP?: string; selector?: Record<string, string> };
}

export interface EndpointSlice {
  apiVersion: string;
  kind: 'EndpointSlice';
  metadata: ObjectMeta;
  addressType?: string;
  ports?: { name?: string; port?: number; protocol?: string; appProtocol?: string }[] | null;
  endpoints?: { addresses: string[]; conditions?: { ready?: boolean; serving?: boolean; terminating?: boolean } }[] | null;
}

export interface Namespace {
  apiVersion: string;
  kind: 'Namespace';
  metadata: ObjectMeta;
}

export interface Secret {
  apiVersion: string;
  kind: 'Secret';
  metadata: ObjectMeta;
  type?: string;
  data?: Record<string, string>;
  stringData?: Record<string, string>;
}

/** CA bundles (ca.crt) for client and backend certificate validation. */
export interface ConfigMap {
  apiVersion: string;
  kind: 'ConfigMap';
  metadata: ObjectMeta;
  data?: Record<string, string>;
}

/** Gateway API v1 BackendTLSPolicy: how the gateway speaks TLS to a Service's endpoints. */
export interface BackendTLSPolicy {
  apiVersion: string;
  kind: 'BackendTLSPolicy';
  metadata: ObjectMeta;
  spec: {
    targetRefs: { group: string; kind: string; name: string; sectionName?: string }[];
    validation: {
      caCertificateRefs?: { group: string; kind: string; name: string }[];
      wellKnownCACertificates?: string;
      hostname: string;
      subjectAltNames?: { type: 'Hostname' | 'URI'; hostname?: string; uri?: string }[];
    };
    options?: Record<string, string>;
  };
}

/**
 * An object of one of our kinds that failed its schema: it is left out of the snapshot, and
 * what can still be read from it (identity, references) lets its failure be reported where
 * its author looks (its own status, the status of routes using it).
 */
export interface RejectedObject {
  kind: string;
  /** "namespace/name" (or the name) as far as readable; an invalid name is quoted and shortened. */
  display: string;
  /** Set only when valid: the object can then carry status. */
  name?: string;
  namespace?: string;
  generation?: number;
  file: string;
  line: number;
  /** The first offending field, e.g. ["spec", "hostnames"]. */
  path: (string | number)[];
  /** "spec.hostnames: expected array, received string". */
  message: string;
  /** HTTPRoute: its parentRefs, when they are well-formed. */
  parentRefs?: ParentReference[];
  /** Gateway: its gatewayClassName, when well-formed. */
  gatewayClassName?: string;
  /** EndpointSlice: its kubernetes.io/service-name label, when well-formed. */
  serviceName?: string;
}

/** "routes.yaml:12: HTTPRoute default/web: spec.hostnames: expected array, received string". */
export function formatRejected(r: RejectedObject): string {
  return `${r.file}:${r.line}: ${r.kind} ${r.display}: ${r.message}`;
}

/** Everything the translator needs, as read from one source (a directory or the API). */
export interface ResourceSnapshot {
  gatewayClasses: GatewayClass[];
  gateways: Gateway[];
  httpRoutes: HTTPRoute[];
  referenceGrants: ReferenceGrant[];
  services: Service[];
  endpointSlices: EndpointSlice[];
  namespaces: Namespace[];
  secrets: Secret[];
  configMaps: ConfigMap[];
  /** Absent in snapshots from sources that do not read them (no policy applies). */
  backendTLSPolicies?: BackendTLSPolicy[];
  /** Objects that failed their schema (file provider); reported, never served. */
  rejected?: RejectedObject[];
}

export function emptySnapshot(): ResourceSnapshot {
  return {
    gatewayClasses: [],
    gateways: [],
    httpRoutes: [],
    referenceGrants: [],
    services: [],
    endpointSlices: [],
    namespaces: [],
    secrets: [],
    configMaps: [],
    backendTLSPolicies: [],
    rejected: [],
  };
}

export function objectKey(meta: ObjectMeta): string {
  return meta.namespace ? `${meta.namespace}/${meta.name}` : meta.name;
}
