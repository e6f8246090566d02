// Service addresses and the load-balancer stand-in. Every Service (but ExternalName and headless
// ones) gets a `spec.clusterIP` from the cluster-IP pool; a Service of type LoadBalancer gets
// `status.loadBalancer.ingress[0].ip` from the load-balancer pool. On both addresses the cluster
// listens on each Service port and forwards TCP, round-robin, to the ready endpoints the
// Service's EndpointSlices list (as kube-proxy would, but in this process and without NAT).
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { CoreV1Api, DiscoveryV1Api, PatchStrategy, setHeaderOptions, type KubeConfig, type V1EndpointSlice, type V1Service, type V1ServicePort } from '@kubernetes/client-node';
import type { AddressPool } from './addresses.ts';
import { ignoreNotFound } from './deployment-controller.ts';
import { SERVICE_NAME_LABEL } from './endpoints-controller.ts';

const MERGE = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
/** Connections open at once through one listener; more are refused (closed at once). */
export const MAX_CONNECTIONS_PER_LISTENER = 1024;

interface Backend {
  ip: string;
  port: number;
}

class Forwarder {
  readonly key: string;
  private readonly server: Server;
  private backends: Backend[] = [];
  private next = 0;
  private readonly sockets = new Set<Socket>();

  constructor(key: string) {
    this.key = key;
    this.server = createServer((client) => this.accept(client));
    this.server.maxConnections = MAX_CONNECTIONS_PER_LISTENER;
  }

  listen(ip: string, port: number): Promise<void> {
    return new Promise((ok, fail) => {
      this.server.once('error', fail);
      this.server.listen(port, ip, () => {
        this.server.off('error', fail);
        ok();
      });
    });
  }

  setBackends(backends: Backend[]): void {
    this.backends = backends;
  }

  private accept(client: Socket): void {
    this.sockets.add(client);
    client.on('close', () => this.sockets.delete(client));
    client.on('error', () => client.destroy());
    client.pause();
    this.connect(client, this.backends.length);
  }

  /** A backend that refuses the connection (it just went away) is skipped; nothing has been sent yet. */
  private connect(client: Socket, triesLeft: number): void {
    if (triesLeft <= 0 || this.backends.length === 0 || client.destroyed) {
      client.destroy();
      return;
    }
    const b = this.backends[this.next++ % this.backends.length];
    const upstream = createConnection({ host: b.ip, port: b.port });
    let connected = false;
    upstream.once('connect', () => {
      connected = true;
      this.sockets.add(upstream);
      upstream.on('close', () => this.sockets.delete(upstream));
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
    upstream.on('error', () => {
      if (!connected) return this.connect(client, triesLeft - 1);
      client.destroy();
    });
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => {
      if (connected) client.destroy();
    });
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((ok) => this.server.close(() => ok()));
  }
}

function servicePortKey(svc: V1Service, port: V1ServicePort): string {
  return `${svc.metadata!.namespace}/${svc.metadata!.name}/${port.name ?? ''}`;
}

/** Ready endpoint addresses and ports of one Service port, from the Service's slices. */
function backendsOf(slices: V1EndpointSlice[], port: V1ServicePort): Backend[] {
  const out: Backend[] = [];
  for (const s of slices) {
    if (s.addressType !== 'IPv4') continue;
    const p = (s.ports ?? []).find((x) => (x.name ?? '') === (port.name ?? ''));
    if (p?.port === undefined) continue;
    for (const e of s.endpoints ?? []) if (e.conditions?.ready !== false) for (const ip of e.addresses) out.push({ ip, port: p.port });
  }
  return out;
}

export interface ServiceProxyOptions {
  kubeConfig: KubeConfig;
  clusterIPs: AddressPool;
  loadBalancerIPs: AddressPool;
  onError: (what: string, err: unknown) => void;
}

export class ServiceProxy {
  private readonly opts: ServiceProxyOptions;
  private readonly core: CoreV1Api;
  private readonly discovery: DiscoveryV1Api;
  /** `ip:port` to its forwarder. */
  private readonly listeners = new Map<string, Forwarder>();

  constructor(opts: ServiceProxyOptions) {
    this.opts = opts;
    this.core = opts.kubeConfig.makeApiClient(CoreV1Api);
    this.discovery = opts.kubeConfig.makeApiClient(DiscoveryV1Api);
  }

  async sync(): Promise<void> {
    const services = (await this.core.listServiceForAllNamespaces()).items;
    const slices = (await this.discovery.listEndpointSliceForAllNamespaces()).items;
    const live = new Set(services.map((s) => s.metadata!.uid!));
    const wanted = new Map<string, { key: string; backends: Backend[] }>();
    for (const svc of services) {
      const uid = svc.metadata!.uid!;
      const ns = svc.metadata!.namespace!;
      const name = svc.metadata!.name!;
      const type = svc.spec?.type ?? 'ClusterIP';
      let clusterIP = svc.spec?.clusterIP;
      if (type !== 'ExternalName' && !clusterIP) {
        clusterIP = this.opts.clusterIPs.allocate(uid);
        await this.core.patchNamespacedService({ namespace: ns, name, body: { spec: { clusterIP, clusterIPs: [clusterIP] } } }, MERGE).catch(ignoreNotFound);
      }
      let lbIP: string | undefined;
      const ingress = svc.status?.loadBalancer?.ingress ?? [];
      if (type === 'LoadBalancer') {
        lbIP = this.opts.loadBalancerIPs.allocate(uid);
        if (ingress.length !== 1 || ingress[0].ip !== lbIP) {
          await this.core.patchNamespacedServiceStatus({ namespace: ns, name, body: { status: { loadBalancer: { ingress: [{ ip: lbIP, ipMode: 'VIP' }] } } } }, MERGE).catch(ignoreNotFound);
        }
      } else {
        this.opts.loadBalancerIPs.release(uid);
        if (ingress.length > 0) await this.core.patchNamespacedServiceStatus({ namespace: ns, name, body: { status: { loadBalancer: { ingress: null } } } }, MERGE).catch(ignoreNotFound);
      }
      const own = slices.filter((s) => s.metadata?.namespace === ns && s.metadata?.labels?.[SERVICE_NAME_LABEL] === name);
      const ips = [lbIP, clusterIP === this.opts.clusterIPs.get(uid) ? clusterIP : undefined].filter((x): x is string => Boolean(x));
      for (const port of svc.spec?.ports ?? []) {
        if ((port.protocol ?? 'TCP') !== 'TCP') continue;
        for (const ip of ips) wanted.set(`${ip}:${port.port}`, { key: servicePortKey(svc, port), backends: backendsOf(own, port) });
      }
    }
    for (const uid of this.opts.clusterIPs.owners()) if (!live.has(uid)) this.opts.clusterIPs.release(uid);
    for (const uid of this.opts.loadBalancerIPs.owners()) if (!live.has(uid)) this.opts.loadBalancerIPs.release(uid);

    for (const [addr, f] of this.listeners) {
      const want = wanted.get(addr);
      if (want && want.key === f.key) continue;
      this.listeners.delete(addr);
      await f.close();
    }
    for (const [addr, want] of wanted) {
      let f = this.listeners.get(addr);
      if (!f) {
        const [ip, port] = addr.split(':');
        f = new Forwarder(want.key);
        try {
          await f.listen(ip, Number(port));
        } catch (err) {
          this.opts.onError(`service ${want.key}: cannot listen on ${addr}`, err);
          continue;
        }
        this.listeners.set(addr, f);
      }
      f.setBackends(want.backends);
    }
  }

  async stop(): Promise<void> {
    await Promise.all([...this.listeners.values()].map((f) => f.close()));
    this.listeners.clear();
  }
}
