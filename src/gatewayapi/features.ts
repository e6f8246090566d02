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
] as const;

/**
 * What the operator adds: it generates each Gateway's Deployment, Service and ServiceAccount, so
 * `spec.infrastructure` labels and annotations have somewhere to go. Standalone mode generates no
 * objects and does not claim it.
 */
export const CLUSTER_FEATURES = [...SUPPORTED_FEATURES, 'GatewayInfrastructurePropagation'] as const;

export const CONTROLLER_NAME = 'vgw.dev/gateway-controller';
