// The well-formed directory a hostile fixture (test/fixtures/hostile/) is loaded beside: our
// GatewayClass, Gateway "gw" on 127.0.22.1:8080, Service "web" with its EndpointSlice, and one
// good route "good". The hostile-manifest tests show that everything here keeps loading and
// serving next to the one rejected object.

const CLASS_AND_GATEWAY = `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: vgw}
spec: {controllerName: vgw.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: vgw
  addresses: [{type: IPAddress, value: 127.0.22.1}]
  listeners: [{name: http, port: 8080, protocol: HTTP}]
`;

const WEB_SERVICE = `apiVersion: v1
kind: Service
metadata: {name: web}
spec: {ports: [{port: 80, targetPort: 8080}]}
`;

const WEB_SLICE = `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{port: 8080}]
endpoints: [{addresses: [127.0.22.2]}]
`;

const GOOD_ROUTE = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: good}
spec:
  parentRefs: [{name: gw}]
  hostnames: [good.example]
  rules: [{backendRefs: [{name: web, port: 80}]}]
`;

/**
 * The base directory as one multi-document YAML text. `service: false` leaves out the web
 * Service (for a fixture that redefines it), `slice: false` its EndpointSlice (for a fixture that
 * brings its own).
 */
export function hostileBase(parts: { service?: boolean; slice?: boolean } = {}): string {
  const { service = true, slice = true } = parts;
  return [CLASS_AND_GATEWAY, service && WEB_SERVICE, slice && WEB_SLICE, GOOD_ROUTE].filter((d) => d !== false).join('---\n');
}
