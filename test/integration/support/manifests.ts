// Manifests that integration tests write for `vgw serve`: built here once, so every test's
// directory describes a Service, its endpoints and its routes the same way.
import { stringify } from 'yaml';

/** Several objects as one multi-document YAML file. */
export const yamlDocs = (docs: object[]) => docs.map((d) => stringify(d)).join('---\n');

/** Our GatewayClass "vgw". */
export const GATEWAY_CLASS = { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'GatewayClass', metadata: { name: 'vgw' }, spec: { controllerName: 'vgw.dev/gateway-controller' } };

/** One HTTP listener of a Gateway. */
export interface HttpListener {
  name: string;
  port: number;
}

/**
 * Gateway `name` (default "gw") of class "vgw" on `address`: a port gives it the one HTTP
 * listener "http", a list one HTTP listener per entry.
 */
export function httpGateway(namespace: string, address: string, listeners: number | HttpListener[], name = 'gw'): object {
  const list = typeof listeners === 'number' ? [{ name: 'http', port: listeners }] : listeners;
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'Gateway',
    metadata: { name, namespace },
    spec: {
      gatewayClassName: 'vgw',
      addresses: [{ type: 'IPAddress', value: address }],
      listeners: list.map((l) => ({ name: l.name, protocol: 'HTTP', port: l.port })),
    },
  };
}

/** Service `name` (port 80, named http) whose one EndpointSlice points at 127.0.0.1:`port`. */
export function loopbackService(namespace: string, name: string, port: number): object[] {
  return [
    { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace }, spec: { ports: [{ name: 'http', port: 80, targetPort: port }] } },
    {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: `${name}-1`, namespace, labels: { 'kubernetes.io/service-name': name } },
      addressType: 'IPv4',
      ports: [{ name: 'http', port }],
      endpoints: [{ addresses: ['127.0.0.1'] }],
    },
  ];
}

/** An HTTPRoute attached to Gateway "gw" of its namespace. */
export function gwRoute(namespace: string, name: string, hostnames: string[], rules: object[]): object {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name, namespace },
    spec: { parentRefs: [{ name: 'gw' }], hostnames, rules },
  };
}
