// The one list of Gateway API conformance features this implementation supports. It is
// reported in GatewayClass status (supportedFeatures) and decides which conformance tests run.
export const SUPPORTED_FEATURES = [
  'Gateway',
  'HTTPRoute',
  'ReferenceGrant',
  'HTTPRouteMethodMatching',
  'HTTPRouteQueryParamMatching',
  'HTTPRouteParentRefPort',
  // GEP-957: routes attach to listeners by parentRef port, i.e. by the request's destination port.
  'HTTPRouteDestinationPortMatching',
  'GatewayHTTPListenerIsolation',
  'GatewayPort8080',
  // GEP-3567: a request whose Host belongs to another HTTPS listener than its SNI chose gets 421.
  'GatewayHTTPSListenerDetectMisdirectedRequests',
  'HTTPRouteNamedRouteRule',
  'HTTPRoutePathRedirect',
  'HTTPRoutePortRedirect',
  'HTTPRouteSchemeRedirect',
  'HTTPRoute303RedirectStatusCode',
  'HTTPRoute307RedirectStatusCode',
  'HTTPRoute308RedirectStatusCode',
  'HTTPRouteHostRewrite',
  'HTTPRoutePathRewrite',
  'HTTPRouteResponseHeaderModification',
  'HTTPRouteBackendRequestHeaderModification',
  'HTTPRouteRequestTimeout',
  'HTTPRouteBackendTimeout',
  'HTTPRouteRetry',
  'HTTPRouteRetryBackendTimeout',
  'HTTPRouteRetryConnectionError',
  'HTTPRouteCORS',
  'HTTPRouteRequestMirror',
  'HTTPRouteRequestMultipleMirrors',
  'HTTPRouteRequestPercentageMirror',
  'HTTPRouteBackendProtocolWebSocket',
  // Backend TLS through the stunnel sidecar. Not BackendTLSPolicySANValidation: stunnel checks DNS
  // names only, and that test's policies name URI SANs.
  'BackendTLSPolicy',
  'GatewayBackendClientCertificate',
  // hitch's client-verify. Not ...InsecureFallback: hitch 1.7 refuses an invalid client
  // certificate even when it is told a missing one is fine.
  'GatewayFrontendClientCertificateValidation',
] as const;

/**
 * What the operator adds: it generates each Gateway's Deployment, Service and ServiceAccount, so
 * `spec.infrastructure` labels and annotations have somewhere to go. Standalone mode generates no
 * objects and does not claim it.
 */
export const CLUSTER_FEATURES = [...SUPPORTED_FEATURES, 'GatewayInfrastructurePropagation'];

export const CONTROLLER_NAME = 'vgw.dev/gateway-controller';
