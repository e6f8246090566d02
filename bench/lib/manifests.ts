// Manifest generation for the benchmarks: one Gateway, one Service whose EndpointSlice points at
// the echo backend, and N HTTPRoutes, route i answering host r<i>.bench.test under /p<i>.
// Text is built by hand rather than through the yaml library so that generating 10 000 routes
// costs nothing next to what is being measured.
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export const CONTROLLER_NAME = 'vgw.dev/gateway-controller';
export const NAMESPACE = 'bench';
export const GATEWAY_NAME = 'bench-gw';
export const SERVICE_NAME = 'echo';

export interface BenchTopology {
  gatewayAddress: string;
  gatewayPort: number;
  backendAddress: string;
  backendPort: number;
}

export function routeHost(i: number): string {
  return `r${i}.bench.test`;
}

export function routePath(i: number): string {
  return `/p${i}`;
}

/** Our GatewayClass and the bench Gateway, with one HTTP listener on `address:port`. */
export function gatewayManifests(address: string, port: number): string {
  return `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: vgw-bench
spec:
  controllerName: ${CONTROLLER_NAME}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: ${GATEWAY_NAME}
  namespace: ${NAMESPACE}
spec:
  gatewayClassName: vgw-bench
  addresses:
  - type: IPAddress
    value: ${address}
  listeners:
  - name: http
    protocol: HTTP
    port: ${port}
`;
}

/** Service `name` (port 8080) and its one EndpointSlice, a single ready endpoint `address:port`. */
export function serviceManifests(name: string, address: string, port: number): string {
  return `apiVersion: v1
kind: Service
metadata:
  name: ${name}
  namespace: ${NAMESPACE}
spec:
  ports:
  - name: http
    port: 8080
    targetPort: ${port}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: ${name}-1
  namespace: ${NAMESPACE}
  labels:
    kubernetes.io/service-name: ${name}
addressType: IPv4
ports:
- name: http
  port: ${port}
  protocol: TCP
endpoints:
- addresses:
  - ${address}
  conditions:
    ready: true
`;
}

/** The Gateway and the one Service of the topology. */
export function infraManifests(t: BenchTopology): string {
  return `${gatewayManifests(t.gatewayAddress, t.gatewayPort)}---\n${serviceManifests(SERVICE_NAME, t.backendAddress, t.backendPort)}`;
}

/** Route i, its one rule sending everything under its prefix to `service` port 8080. */
export function routeManifest(i: number, service = SERVICE_NAME): string {
  return httpRouteManifest(i, routeHost(i), routePath(i), service);
}

/**
 * HTTPRoute `r<i>` of the bench namespace on the bench Gateway: one host, one rule matching the
 * path prefix (and `x-bench: on` when `benchHeader`), sending to `service` port 8080.
 */
function httpRouteManifest(i: number, host: string, prefix: string, service: string, benchHeader = false): string {
  const header = benchHeader ? '\n      headers:\n      - name: x-bench\n        value: "on"' : '';
  return `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: r${i}
  namespace: ${NAMESPACE}
spec:
  parentRefs:
  - name: ${GATEWAY_NAME}
  hostnames:
  - ${host}
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: ${prefix}${header}
    backendRefs:
    - name: ${service}
      port: 8080
`;
}

/**
 * Writes infra.yaml plus routes r0..r(count-1) into `dir`, all routes in one multi-document
 * routes.yaml (declaration order = index order, so the last-declared route is r(count-1)).
 */
export async function writeBenchDir(dir: string, t: BenchTopology, count: number): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'infra.yaml'), infraManifests(t));
  const docs: string[] = [];
  for (let i = 0; i < count; i++) docs.push(routeManifest(i));
  await writeFile(join(dir, 'routes.yaml'), docs.join('---\n'));
}

/**
 * Adds route i as its own file. The text goes to a hidden temporary name first (ignored by the
 * loader and the watcher) and is renamed into place, so the watcher never sees a half-written
 * manifest.
 */
export async function addRouteFile(dir: string, i: number): Promise<string> {
  const final = join(dir, `route-${i}.yaml`);
  const tmp = join(dir, `.route-${i}.yaml.tmp`);
  await writeFile(tmp, routeManifest(i));
  await rename(tmp, final);
  return final;
}

/** Host of the scale workload's route i. */
export const scaleRouteHost = (i: number) => `r${i}.scale.test`;
/** Path prefix of the scale workload's route i (`/p<i>`, `/p<i>b` when flipped). */
export const scaleRoutePrefix = (i: number, flipped = false) => `/p${i}${flipped ? 'b' : ''}`;

/**
 * The scale workload's route i (bench:scale, bench:cold-start): host `r<i>.scale.test`, one rule
 * matching path prefix `/p<i>` (`/p<i>b` when flipped) and header `x-bench: on`.
 */
export function scaleRouteManifest(i: number, flipped = false): string {
  return httpRouteManifest(i, scaleRouteHost(i), scaleRoutePrefix(i, flipped), SERVICE_NAME, true);
}

/** A directory of the scale workload: the Gateway and Service, and `n` route files. */
export async function writeScaleDir(dir: string, gateway: { address: string; port: number }, backend: { address: string; port: number }, n: number): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'infra.yaml'), infraManifests({ gatewayAddress: gateway.address, gatewayPort: gateway.port, backendAddress: backend.address, backendPort: backend.port }));
  const pending: Promise<void>[] = [];
  for (let i = 0; i < n; i++) {
    pending.push(writeFile(join(dir, `r${i}.yaml`), scaleRouteManifest(i)));
    if (pending.length >= 64) await Promise.all(pending.splice(0));
  }
  await Promise.all(pending);
}
