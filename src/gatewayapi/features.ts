// The one list of Gateway API conformance features this implementation supports. It is
// reported in GatewayClass status (supportedFeatures) and decides which conformance tests run.
export const SUPPORTED_FEATURES = [
  'Gateway',
  'HTTPRoute',
  'ReferenceGrant',
  'HTTPRouteMethodMatching',
  'HTTPRouteQueryParamMatching',
  'HTTPRouteParentRefPort',
  'GatewayHTTPListenerIsolation',
  'GatewayPort8080',
  'HTTPRouteNamedRouteRule',
  'HTTPRoutePathRedirect',
  'HTTPRoutePortRedirect',
  'HTTPRouteSchemeRedirect',
  'HTTPRoute303RedirectStatusCode',
  'HTTPRoute307RedirectStatusCode',
  'HTTPRoute308RedirectStatusCode',
] as const;

export const CONTROLLER_NAME = 'vgw.dev/gateway-controller';
