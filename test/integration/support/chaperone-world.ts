// Shared pieces of the chaperone tests: Gateway API objects built in code, the routing IR the
// operator would publish for them, echo backends on loopback, a keep-alive HTTP client and a
// small load generator. Nothing here is mocked: objects go to the Kubernetes API test server,
// traffic goes through varnishd to real echo processes.
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino, type Logger } from 'pino';
import { startEchoServer, type EchoServer } from '../../../src/echo/server.ts';
import { CONTROLLER_NAME } from '../../../src/gatewayapi/features.ts';
import type { RoutingIR } from '../../../src/ir/types.ts';
import { ofKind, type HTTPRouteStatus } from '../../../src/gatewayapi/status.ts';
import { translate, type TranslateResult } from '../../../src/gatewayapi/translator.ts';
import type { EndpointSlice, Gateway, GatewayClass, HTTPRoute, Namespace, Service } from '../../../src/gatewayapi/types.ts';
import { emptySnapshot } from '../../../src/gatewayapi/types.ts';
import type { KubeApiServer, KubeObject } from '../../support/kube-api-server.ts';
export { eventually } from './poll.ts';

export { CONTROLLER_NAME };
export const GATEWAY_API = 'gateway.networking.k8s.io/v1';
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

/** A typed object (or a ConfigMap built by encodeRoutingConfig) as the API test server takes it. */
export function kube(obj: object): KubeObject {
  return obj as KubeObject;
}

export function namespace(name: string): Namespace {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name } };
}

export function gatewayClass(name = 'vgw'): GatewayClass {
  return { apiVersion: GATEWAY_API, kind: 'GatewayClass', metadata: { name }, spec: { controllerName: CONTROLLER_NAME } };
}

/** A Gateway with one HTTP listener on `address:port`, taking routes from every namespace. */
export function gateway(ns: string, name: string, address: string, port: number, className = 'vgw'): Gateway {
  return {
    apiVersion: GATEWAY_API,
    kind: 'Gateway',
    metadata: { name, namespace: ns, generation: 1 },
    spec: {
      gatewayClassName: className,
      addresses: [{ type: 'IPAddress', value: address }],
      listeners: [{ name: 'http', protocol: 'HTTP', port, allowedRoutes: { namespaces: { from: 'All' } } }],
    },
  };
}

/** A Service with one port 80 named "http". */
export function service(ns: string, name: string, targetPort: number): Service {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: ns }, spec: { ports: [{ name: 'http', port: 80, targetPort }] } };
}

/** An EndpointSlice of `svc`, its one port named like the Service port. */
export function endpointSlice(ns: string, svc: string, name: string, addresses: string[], port: number): EndpointSlice {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name, namespace: ns, labels: { [SERVICE_NAME_LABEL]: svc } },
    addressType: 'IPv4',
    ports: [{ name: 'http', port, protocol: 'TCP' }],
    endpoints: addresses.map((a) => ({ addresses: [a], conditions: { ready: true } })),
  };
}

/** An HTTPRoute for one hostname, everything to `svc` port 80 (in the route's namespace). */
export function httpRoute(ns: string, name: string, gw: { namespace: string; name: string }, hostname: string, svc: string, generation = 1): HTTPRoute {
  return {
    apiVersion: GATEWAY_API,
    kind: 'HTTPRoute',
    metadata: { name, namespace: ns, generation, creationTimestamp: '2026-01-01T00:00:00Z' },
    spec: {
      parentRefs: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', namespace: gw.namespace, name: gw.name }],
      hostnames: [hostname],
      rules: [{ backendRefs: [{ name: svc, port: 80 }] }],
    },
  };
}

export interface World {
  namespaces: Namespace[];
  classes: GatewayClass[];
  gateways: Gateway[];
  routes: HTTPRoute[];
  services: Service[];
}

/** What the operator computes: the routing IR and the status of every object (translate()). */
export function translateWorld(w: World): TranslateResult {
  const snapshot = emptySnapshot();
  snapshot.namespaces = w.namespaces;
  snapshot.gatewayClasses = w.classes;
  snapshot.gateways = w.gateways;
  snapshot.httpRoutes = w.routes;
  snapshot.services = w.services;
  // Endpoints are not part of the IR: the chaperone reads EndpointSlices itself.
  const result = translate(snapshot, { defaultAddress: '127.0.0.1', now: '2026-01-01T00:00:00Z' });
  const notAccepted = result.problems.map((p) => `${p.kind} ${p.object}: ${p.message}`);
  assert.deepEqual(notAccepted, [], 'every test object is accepted by the translator');
  return result;
}

/**
 * What the operator publishes for one Gateway: its own IR (the combined IR of a translation has
 * no route generations, which the agent reports back).
 */
export function gatewayRouting(result: TranslateResult, gw: { namespace: string; name: string }): RoutingIR {
  const own = result.gateways.find((g) => g.gateway.namespace === gw.namespace && g.gateway.name === gw.name);
  assert.ok(own, `the translation has an IR for ${gw.namespace}/${gw.name}`);
  return own.routing;
}

/** The HTTPRoute as the operator leaves it: spec plus its translated status (Accepted, ResolvedRefs). */
export function routeWithStatus(route: HTTPRoute, result: TranslateResult): HTTPRoute & { status: HTTPRouteStatus } {
  const st = result.statuses.filter(ofKind('HTTPRoute')).find((s) => s.metadata.name === route.metadata.name && s.metadata.namespace === route.metadata.namespace);
  assert.ok(st, `status of ${route.metadata.namespace}/${route.metadata.name}`);
  return { ...route, status: st.status };
}

/**
 * Puts `w` into the API server as the operator leaves it: every object, and the HTTPRoutes with
 * their translated status. Returns the translation, whose IR is what gets published.
 */
export function seedWorld(server: KubeApiServer, w: World): TranslateResult {
  const translated = translateWorld(w);
  for (const o of [...w.namespaces, ...w.classes, ...w.gateways, ...w.services]) server.set(kube(o));
  for (const r of w.routes) server.set(kube(routeWithStatus(r, translated)));
  return translated;
}

/** A fresh work directory for an agent's varnishd, which drops privileges and must still reach it. */
export async function makeWorkDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  await chmod(dir, 0o755);
  return dir;
}

/** Removes a directory made by makeWorkDir; nothing when it was never made. */
export async function removeWorkDir(dir: string): Promise<void> {
  if (dir) await rm(dir, { recursive: true, force: true }).catch(() => undefined);
}

export async function startBackend(address: string, port: number, pod: string, ns = 'app'): Promise<EchoServer> {
  return startEchoServer({ address, port, pod, namespace: ns, keep: 100 });
}

export interface Answer {
  status: number;
  /** The echo backend's pod name, or "" for an answer that is not an echo. */
  pod: string;
  ms: number;
}

/** One GET through `agent` (keep-alive when the agent keeps sockets). */
export function get(base: { address: string; port: number }, host: string, path = '/', agent: Agent | false = false, timeoutMs = 10_000): Promise<Answer> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = request({ host: base.address, port: base.port, path, headers: { host }, agent, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        let pod = '';
        if (res.statusCode === 200) {
          try {
            pod = String((JSON.parse(Buffer.concat(chunks).toString()) as { pod?: string }).pod ?? '');
          } catch {
            /* not an echo */
          }
        }
        resolve({ status: res.statusCode ?? 0, pod, ms: performance.now() - t0 });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/**
 * `concurrency` loops of back-to-back GETs, each loop on its own keep-alive connection, until
 * stop(). Every answer is tallied by status and by the pod that served it.
 */
export class LoadGenerator {
  readonly byStatus = new Map<string, number>();
  readonly byPod = new Map<string, number>();
  /** The first few answers that were not 200, for the failure message. */
  readonly failures: string[] = [];
  requests = 0;
  private stopped = false;
  private readonly agents: Agent[] = [];
  private readonly loops: Promise<void>[] = [];

  constructor(base: { address: string; port: number }, host: string, concurrency = 4, path = '/load') {
    for (let i = 0; i < concurrency; i++) {
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      this.agents.push(agent);
      this.loops.push(
        (async () => {
          while (!this.stopped) {
            let key: string;
            try {
              const a = await get(base, host, path, agent);
              key = String(a.status);
              if (a.pod) this.byPod.set(a.pod, (this.byPod.get(a.pod) ?? 0) + 1);
            } catch (err) {
              key = `error: ${(err as Error).message}`;
            }
            this.requests++;
            this.byStatus.set(key, (this.byStatus.get(key) ?? 0) + 1);
            if (key !== '200' && this.failures.length < 10) this.failures.push(`${new Date().toISOString()} ${key}`);
          }
        })(),
      );
    }
  }

  served(pod: string): number {
    return this.byPod.get(pod) ?? 0;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
    for (const a of this.agents) a.destroy();
  }

  describe(): string {
    return [...this.byStatus].map(([k, v]) => `${k} ×${v}`).join(', ');
  }
}

/** A pino logger writing JSON lines into memory, to assert on what the agent logs. */
export function memoryLogger(level = 'debug'): { logger: Logger; lines: () => Record<string, unknown>[] } {
  const text: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      text.push(chunk.toString());
      done();
    },
  });
  const logger = pino({ level }, stream);
  return {
    logger,
    lines: () =>
      text
        .join('')
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

/** The Pod a gateway agent runs in (it annotates it with the config it serves); nothing runs in it. */
export function gatewayPod(ns: string, name: string): KubeObject {
  return kube({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: ns, labels: { 'app.kubernetes.io/component': 'gateway' } },
    spec: { containers: [{ name: 'gateway', image: 'vgw:test' }] },
    status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] },
  });
}

/** The `gateway.vgw.dev/served` report on a Pod, parsed; undefined when absent. */
export function servedReport(pod: unknown): { sha256: string } | undefined {
  const value = (pod as { metadata?: { annotations?: Record<string, string> } } | undefined)?.metadata?.annotations?.['gateway.vgw.dev/served'];
  return value === undefined ? undefined : (JSON.parse(value) as { sha256: string });
}

/** The condition `type` on the status.parents entry of `controller` for Gateway `gw`. */
export function parentCondition(
  route: unknown,
  gw: { namespace: string; name: string },
  type: string,
): { status: string; reason: string; observedGeneration?: number; message: string; lastTransitionTime?: string } | undefined {
  const parents = (((route as { status?: unknown } | undefined)?.status as { parents?: unknown[] } | undefined)?.parents ?? []) as {
    parentRef: { name: string; namespace?: string };
    controllerName: string;
    conditions?: { type: string; status: string; reason: string; observedGeneration?: number; message: string; lastTransitionTime?: string }[];
  }[];
  const p = parents.find((x) => x.controllerName === CONTROLLER_NAME && x.parentRef.name === gw.name && x.parentRef.namespace === gw.namespace);
  return p?.conditions?.find((c) => c.type === type);
}
