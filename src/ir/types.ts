// The routing IR: what the translator decides, in a form the VCL compiler can render without
// knowing anything about Gateway API objects. It is plain JSON (see docs/routing-ir.md) so it
// can be written to a ConfigMap by the operator and read by the chaperone.
//
// Endpoints are NOT part of the routing IR: they change far more often than routes and are
// resolved separately (see src/gatewayapi/endpoints.ts), then merged at VCL compile time.

export const IR_VERSION = 4;

export interface RoutingIR {
  version: typeof IR_VERSION;
  /** metadata.generation of every HTTPRoute the config serves, by "namespace/name". Lets the
   *  data plane report which generation of a route is live. */
  routeGenerations?: Record<string, number>;
  /** Listen sockets, one per distinct address:port. */
  sockets: IRSocket[];
  /** Every Service port a route may send traffic to, referenced by id from IRBackendRef. */
  services: IRService[];
  /** Request paths are normalised before routing and sent to backends normalised (see
   *  docs/requests.md); 'Off' routes and forwards them as received. Absent = 'On'. */
  pathNormalization?: 'On' | 'Off';
}

export interface IRSocket {
  /** Socket name given to varnishd (`-a name=...`) and seen in VCL as local.socket. */
  name: string;
  address: string;
  port: number;
  /** Virtual hosts reachable on this socket, keyed by hostname pattern. */
  vhosts: IRVirtualHost[];
  /**
   * Present when clients speak TLS on this address:port (HTTPS listeners): the TLS terminator
   * listens here and hands requests to varnishd's PROXY socket. Certificates are named, never
   * carried: the data plane reads the Secrets itself, so no key material enters the IR.
   */
  tls?: IRSocketTLS;
}

export interface IRSocketTLS {
  /** In listener and certificateRefs order, without duplicates; the first is the default
   *  certificate for clients whose SNI (or lack of one) matches none. */
  certificates: IRCertificateRef[];
  /**
   * Hostnames of the HTTPS listeners served on this socket ("*" = no hostname). With more than
   * one, a request whose Host selects another listener than its SNI did gets 421 (misdirected).
   * Absent = not checked.
   */
  listeners?: string[];
  /** Client certificate validation (Gateway spec.tls.frontend); absent = no client certificate asked. */
  clientValidation?: IRClientValidation;
  /** Listener tls.options the terminator applies to this address:port (docs/tls-frontend.md). */
  options?: IRTLSOptions;
}

export interface IRClientValidation {
  /** AllowValidOnly: a valid client certificate is required. AllowInsecureFallback: a client
   *  without one is served too (one that presents an invalid one is still refused). */
  mode: 'AllowValidOnly' | 'AllowInsecureFallback';
  /** ConfigMaps whose ca.crt holds the trusted CA certificates, named, never carried. */
  caCertificates: { namespace: string; name: string }[];
}

export interface IRTLSOptions {
  /** Lowest TLS version accepted (default TLSv1.2). */
  minVersion?: 'TLSv1.2' | 'TLSv1.3';
  /** TLS 1.2 cipher names (OpenSSL names), in preference order. */
  ciphers?: string[];
  /** TLS 1.3 cipher suite names, in preference order. */
  cipherSuites?: string[];
}

export interface IRCertificateRef {
  /** The kubernetes.io/tls Secret holding tls.crt and tls.key. */
  namespace: string;
  name: string;
  /** DNS names the certificate covers (its subjectAltName, or its CN without one), lowercase. */
  hostnames: string[];
}

export interface IRVirtualHost {
  /** "foo.example.com", "*.example.com" (suffix match, excludes the apex) or "*" (any host). */
  hostname: string;
  /** Listener that owns this vhost, as "namespace/gateway/listener" (for logs and metrics). */
  listener: string;
  /** Routes in precedence order: the first whose match holds wins. */
  routes: IRRoute[];
}

export interface IRRoute {
  /** Stable identity: "namespace/name/rule/match". */
  id: string;
  match: IRMatch;
  action: IRAction;
}

export interface IRMatch {
  path: { type: 'Exact' | 'PathPrefix' | 'RegularExpression'; value: string };
  method?: string;
  headers: IRValueMatch[];
  queryParams: IRValueMatch[];
}

export interface IRValueMatch {
  name: string;
  type: 'Exact' | 'RegularExpression';
  value: string;
}

export interface IRHeaderModifier {
  set: { name: string; value: string }[];
  add: { name: string; value: string }[];
  remove: string[];
}

export interface IRRedirect {
  statusCode: number;
  scheme?: string;
  hostname?: string;
  /** Explicit port, or absent to derive it from the scheme or the listener port. */
  port?: number;
  /** Port of the listener the request arrived on, used when neither port nor scheme is given. */
  listenerPort: number;
  path?: IRPathModifier;
}

/** URLRewrite: applied to the request sent to the backend, after routing. */
export interface IRRewrite {
  hostname?: string;
  path?: IRPathModifier;
}

/** `prefix` is the matched PathPrefix value (normalized, see rules.ts) for ReplacePrefixMatch. */
export type IRPathModifier = { type: 'ReplaceFullPath'; value: string } | { type: 'ReplacePrefixMatch'; prefix: string; value: string };

export interface IRCors {
  /** Exact origins, "*" (any), or "scheme://*.suffix" patterns (any number of labels). */
  allowOrigins: string[];
  /** Methods, or ["*"]. */
  allowMethods: string[];
  /** Header names, or ["*"]. */
  allowHeaders: string[];
  exposeHeaders: string[];
  allowCredentials: boolean;
  /** Seconds; absent = the spec default of 5. */
  maxAge?: number;
}

export interface IRMirror {
  /** Index into RoutingIR.services. */
  service: number;
  /** Share of requests mirrored, 0-100 (fractions allowed). */
  percent: number;
}

/** Durations in milliseconds; 0 disables the timeout. */
export interface IRTimeouts {
  request?: number;
  backendRequest?: number;
}

export interface IRRetry {
  /** Retries after the first attempt (0 = never retry). */
  attempts: number;
  /** Backend response statuses that cause a retry. */
  codes: number[];
  backoffMs?: number;
}

export interface IRAction {
  /** Filter types this rule applies, in spec order, reported in filter metrics. */
  filters?: string[];
  requestHeaders?: IRHeaderModifier;
  responseHeaders?: IRHeaderModifier;
  rewrite?: IRRewrite;
  /** When set, the route answers with a redirect and never reaches a backend. */
  redirect?: IRRedirect;
  cors?: IRCors;
  mirrors?: IRMirror[];
  timeouts?: IRTimeouts;
  retry?: IRRetry;
  /** Weighted choice; an entry with service null answers 500 for its share. Empty = 500. */
  backends: IRBackendRef[];
}

export interface IRBackendRef {
  weight: number;
  /** Index into RoutingIR.services, or null for an unusable backendRef (500 for its share). */
  service: number | null;
  /** backendRef-level filters: applied only to requests sent to this backend. */
  requestHeaders?: IRHeaderModifier;
  responseHeaders?: IRHeaderModifier;
}

export interface IRService {
  namespace: string;
  name: string;
  port: number;
  /** The Service port's name ("" when unnamed): EndpointSlices list ports by this name. */
  portName: string;
  /** The Service port's targetPort, used when a slice lists no ports. */
  targetPort?: number | string;
  /** Present when a BackendTLSPolicy applies: the gateway speaks TLS to the endpoints. */
  tls?: IRServiceTLS;
}

/**
 * Backend TLS of one Service port (docs/tls.md "Backend TLS"). Like listener certificates,
 * trust anchors and the client certificate are named, never carried.
 */
export interface IRServiceTLS {
  /** Server name sent in the TLS handshake (the policy's validation.hostname). */
  sni: string;
  /** ConfigMaps whose `ca.crt` is trusted (their bundles together), or the system store. */
  verify: { caCertificates: IRObjectRef[] } | { system: true };
  /** The backend certificate must carry at least one of these DNS names. */
  hostnames: string[];
  /** The kubernetes.io/tls Secret presented when the backend asks for a client certificate. */
  clientCertificate?: IRObjectRef;
}

export interface IRObjectRef {
  namespace: string;
  name: string;
}

export function serviceKey(s: IRService): string {
  return `${s.namespace}/${s.name}:${s.port}`;
}

/** The key of one listen socket (e.g. in `unavailableSockets`): `address:port`, IPv6 in brackets. */
export function socketKey(address: string, port: number): string {
  return `${address.includes(':') ? `[${address}]` : address}:${port}`;
}

/** Ready endpoints per service key ("ns/name:port"). */
export type EndpointMap = Map<string, IREndpoint[]>;

export interface IREndpoint {
  address: string;
  port: number;
}
