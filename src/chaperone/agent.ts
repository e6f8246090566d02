// The in-pod agent ("chaperone"): runs varnishd for one Gateway and keeps it serving the
// routing config the operator publishes, with live endpoints.
//
// Startup order: watches listed -> first complete config decoded -> VCL compiled -> varnishd
// manager up with it, CLI connected, child started -> ready (health 200). After that every
// change of the config or of a referenced Service's EndpointSlices is coalesced into one
// compile + reload; a config that cannot be decoded or compiled is reported (log, metrics,
// /status) and the last good one keeps serving.
//
// HTTPS listeners: hitch terminates TLS in front of varnishd (src/runtime/data-plane.ts) with
// the certificates of the Gateway's certificate Secret, the one Secret this pod may read. A
// certificate change is a hitch reload (SIGHUP), a change of HTTPS sockets a hitch restart;
// neither restarts varnishd. A starting pod waits until every HTTPS socket has a certificate
// and hitch listens on it before it is ready.
import type { KubeConfig } from '@kubernetes/client-node';
import { createHash } from 'node:crypto';
import { chmod } from 'node:fs/promises';
import type { Logger } from 'pino';
import { bindSocketsTo } from '../ir/bind-address.ts';
import type { EndpointMap, RoutingIR } from '../ir/types.ts';
import { countEndpoints, createGatewayMetrics, type GatewayMetrics } from '../metrics/registry.ts';
import { backendTlsProxy, tlsProxyTargets } from '../pipeline/backend-tls-proxy.ts';
import { compileConfig } from '../pipeline/render.ts';
import { ConfigApplier } from '../runtime/config-applier.ts';
import type { DataPlaneState } from '../runtime/data-plane.ts';
import { TlsProxyPorts } from '../runtime/tls-proxy-ports.ts';
import { ObservedDataPlane } from '../runtime/observed-data-plane.ts';
import { activeSessions } from '../varnish/stats.ts';
import type { Varnishd } from '../varnish/varnishd.ts';
import type { ShardCache } from '../vcl/shards.ts';
import { drainConnections, type DrainOptions } from './drain.ts';
import { summarizeError } from './error-summary.ts';
import { podSockets } from './pod-sockets.ts';
import { podBackendTlsMaterial } from './pod-backend-tls.ts';
import { podTls } from './pod-tls.ts';
import { ServedReporter } from './served-report.ts';
import { ChaperoneSources } from './sources.ts';

export interface ChaperoneOptions {
  kubeConfig: KubeConfig;
  /** The Gateway this pod serves. */
  namespace: string;
  gateway: string;
  podName: string;
  /** This pod's namespace (where its Pod object is). Default: the Gateway's namespace. */
  podNamespace?: string;
  /** Parent of varnishd's work directories. */
  workDir: string;
  logger: Logger;
  /** varnishd -p parameters of the cluster admin; the gateway's own win (GATEWAY_PARAMS). */
  params?: Record<string, string>;
  /** Extra varnishd options (option/value pairs, checked by varnishdArgsProblems). */
  varnishdArgs?: readonly string[];
  /** Size of the malloc storage in bytes. */
  storageBytes?: number;
  /** Serve HTTP/2 (opt-in, see DataPlaneOptions.http2). */
  http2?: boolean;
  shards?: number;
  metrics?: GatewayMetrics;
  /**
   * Report the live config on this pod's Pod (annotation gateway.vgw.dev/served), from which the
   * operator sets the HTTPRoutes' `Programmed` (default true).
   */
  reportRouteStatus?: boolean;
  /**
   * Bind every IR socket on this address (its port and name kept, same-port sockets merged;
   * src/ir/bind-address.ts) instead of the address the IR names. `vgw chaperone` always sets it.
   */
  listenAddress?: string;
  /**
   * The ports this pod listens on (its Deployment names them; a change of ports is a new pod).
   * The pod listens on exactly these (src/chaperone/pod-sockets.ts): sockets of the config on
   * other ports are left out, and a port whose listener the config no longer has keeps a
   * socket that routes nothing, so adding or removing a listener never restarts this pod's
   * varnishd (that would cut the connections of every listener); the roll replaces the pod.
   * Absent: every port of the config.
   */
  listenPorts?: readonly number[];
  /**
   * Name of the Gateway's certificate Secret (in `namespace`), the one Secret this pod reads.
   * Absent: none is read, and HTTPS listeners have no certificate.
   */
  certificateSecret?: string;
}

export interface ChaperoneState extends DataPlaneState {
  phase: 'starting' | 'serving' | 'draining' | 'stopped';
  /** SHA-256 of the routing config that is live. */
  configHash?: string;
  endpoints: number;
  lastError?: { at: string; message: string };
  /** HTTPS certificates that cannot be served now (the rest are). */
  certificateProblems?: string[];
}

export class Chaperone {
  private readonly opts: ChaperoneOptions;
  private readonly log: Logger;
  private readonly sources: ChaperoneSources;
  private readonly dataPlane: ObservedDataPlane;
  private readonly routeStatus: ServedReporter | null;
  private readonly shardCache: ShardCache = new Map();
  /** Local ports of the backend TLS proxy, one per TLS endpoint, stable while the endpoint is. */
  private readonly tlsProxyPorts = new TlsProxyPorts();
  private readonly applier: ConfigApplier;
  readonly metrics: GatewayMetrics;
  readonly state: ChaperoneState = { phase: 'starting', ready: false, generation: 0, listeners: [], endpoints: 0 };
  /** The decoded config and the endpoints last compiled, to skip work when neither changed. */
  private compiled: { hash: string; endpoints: string; tls: string } | null = null;
  /** Certificate problems as last logged. */
  private lastCertificateProblems = '';
  private lastInvalid = '';
  /** Ports of the published config left out, and pod ports kept unrouted, as last logged. */
  private lastLeftOut = '';
  /** The socket name used for each of the pod's ports, kept when its listener goes away. */
  private readonly socketNames = new Map<number, string>();

  constructor(opts: ChaperoneOptions) {
    this.opts = opts;
    this.log = opts.logger.child({ component: 'chaperone', gateway: `${opts.namespace}/${opts.gateway}` });
    this.metrics = opts.metrics ?? createGatewayMetrics();
    // The log keeps the whole message (a VCC error with its VCL excerpt); the state, which the
    // HTTP endpoints serve, only a one-line summary.
    this.applier = new ConfigApplier({
      apply: () => this.applyOnce(),
      state: this.state,
      configErrors: this.metrics.configErrors,
      logger: this.log,
      summarize: summarizeError,
    });
    this.sources = new ChaperoneSources({
      kubeConfig: opts.kubeConfig,
      namespace: opts.namespace,
      gateway: opts.gateway,
      certificateSecret: opts.certificateSecret,
      logger: opts.logger,
      onChange: () => void this.applier.run(),
    });
    this.routeStatus =
      opts.reportRouteStatus === false
        ? null
        : new ServedReporter({ kubeConfig: opts.kubeConfig, namespace: opts.podNamespace ?? opts.namespace, podName: opts.podName, logger: opts.logger });
    this.dataPlane = new ObservedDataPlane({
      workDir: opts.workDir,
      logger: opts.logger,
      params: opts.params,
      extraArgs: opts.varnishdArgs,
      storageBytes: opts.storageBytes,
      state: this.state,
      metrics: this.metrics,
      http2: opts.http2,
    });
  }

  get varnish(): Varnishd | null {
    return this.dataPlane.varnish;
  }

  /** Ready to take traffic: serving a config and not draining. */
  get ready(): boolean {
    return this.state.phase === 'serving' && this.state.ready;
  }

  /** Starts watching; the first config goes live as soon as it is complete. */
  async start(): Promise<void> {
    // varnishd drops privileges to its own user, which must read the files written here.
    await chmod(this.opts.workDir, 0o755).catch(() => undefined);
    this.log.info({ event: 'starting' }, 'watching the routing config and EndpointSlices');
    await this.sources.start();
    await this.sources.synced;
    await this.applier.run();
  }

  /** Resolves once a config is live (or the agent stops). */
  async waitReady(timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.state.ready) {
      if (this.state.phase === 'stopped') throw new Error('chaperone stopped');
      if (Date.now() > deadline) throw new Error(`no config live after ${timeoutMs} ms${this.state.lastError ? `: ${this.state.lastError.message}` : ''}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Waits for pending applies and status reports (tests). */
  async settled(): Promise<void> {
    await this.applier.run();
    await this.routeStatus?.settled();
  }

  private async applyOnce(): Promise<void> {
    if (this.state.phase === 'draining' || this.state.phase === 'stopped') return;
    const decoded = this.sources.routingConfig();
    if (decoded.state === 'incomplete') {
      this.log.debug({ event: 'config-incomplete', reason: decoded.reason }, 'routing config not complete yet');
      return;
    }
    const usable = decoded.state === 'invalid' ? decoded : this.boundToListenAddress(decoded.ir);
    if (decoded.state === 'invalid' || usable.state === 'invalid') {
      const reason = usable.state === 'invalid' ? usable.reason : '';
      // Reported once per distinct problem, not on every endpoint change while it lasts.
      if (reason !== this.lastInvalid) this.applier.reject(`routing config rejected, last good config keeps serving: ${reason}`);
      this.lastInvalid = reason;
      return;
    }
    this.lastInvalid = '';
    const { ir } = usable;
    const endpoints = this.sources.endpoints(ir);
    const endpointsKey = endpointFingerprint(endpoints);
    const tls = podTls(ir, this.sources.certificateSecret());
    // Waited for only when there is a Secret to wait for.
    if (tls?.pending && this.opts.certificateSecret !== undefined && this.state.phase === 'starting') {
      this.log.debug({ event: 'certificates-pending' }, 'an HTTPS listener has no certificate in the certificate Secret yet');
      return;
    }
    // Over the proxy's endpoint limit, the endpoints without a port fail; the rest keep serving.
    const wantsBackendTls = ir.services.some((s) => s.tls);
    const material = wantsBackendTls ? podBackendTlsMaterial(this.sources.certificateSecret()) : null;
    const targets = material ? tlsProxyTargets(ir, endpoints, material) : new Map<string, string>();
    const portProblem = await this.tlsProxyPorts.assign(targets).then(() => null, (err: unknown) => `backend TLS: ${(err as Error).message}`);
    const tlsProxyPorts = this.tlsProxyPorts.map;
    const backendTls = material ? backendTlsProxy(ir, endpoints, tlsProxyPorts, material) : null;
    this.noteCertificateProblems([...(tls?.problems ?? []), ...(backendTls?.missing ?? []), ...(portProblem ? [portProblem] : [])]);
    const tlsKey = `${tls?.key ?? ''}/${backendTls ? backendTlsKey(backendTls) : ''}`;
    if (this.compiled?.hash === decoded.sha256 && this.compiled.endpoints === endpointsKey && this.compiled.tls === tlsKey && this.state.ready) {
      // What is published is what is live (say, the last good config published again after a
      // rejected one): no problem is outstanding.
      this.applier.accepted();
      return;
    }
    const config = compileConfig(ir, endpoints, { shards: this.opts.shards, shardCache: this.shardCache, tlsProxyPorts });
    if (backendTls) config.backendTls = backendTls;
    if (tls) config.tls = { frontends: tls.frontends, pems: tls.pems, caBundles: tls.caBundles, missing: [] };
    await this.dataPlane.apply(config);
    // The first config is the pod starting, not a change propagating.
    if (this.compiled && decoded.sha256 !== this.compiled.hash) this.observePropagation(decoded.publishedAt);
    this.compiled = { hash: decoded.sha256, endpoints: endpointsKey, tls: tlsKey };
    this.state.configHash = decoded.sha256;
    this.state.endpoints = countEndpoints(endpoints);
    this.applier.accepted();
    if (this.state.phase === 'starting') {
      this.state.phase = 'serving';
      this.log.info({ event: 'ready', routes: config.stats.routes, endpoints: this.state.endpoints }, 'first config live: ready');
    }
    this.routeStatus?.live(decoded.sha256);
  }

  /**
   * A newly published config is live: how long since the operator published it. A negative or
   * hour-long figure is clock skew, not propagation, and is left out.
   */
  private observePropagation(publishedAt: number | undefined): void {
    if (publishedAt === undefined) return;
    const seconds = (Date.now() - publishedAt) / 1000;
    if (seconds >= 0 && seconds < 3600) this.metrics.configPropagation.observe(seconds);
  }

  /** Logs certificate problems once per distinct set, and shows them in /status. */
  private noteCertificateProblems(problems: string[]): void {
    const key = problems.join('\n');
    if (problems.length) this.state.certificateProblems = problems;
    else delete this.state.certificateProblems;
    if (key === this.lastCertificateProblems) return;
    this.lastCertificateProblems = key;
    if (problems.length) this.log.warn({ event: 'certificates-unusable', problems }, 'HTTPS certificates left out; the other certificates keep serving');
    else this.log.info({ event: 'certificates-usable' }, 'every HTTPS certificate of the config is served');
  }

  /** The published IR as this pod binds it (see ChaperoneOptions.listenAddress). */
  private boundToListenAddress(published: RoutingIR): { state: 'ok'; ir: RoutingIR } | { state: 'invalid'; reason: string } {
    if (this.opts.listenAddress === undefined) return { state: 'ok', ir: published };
    const bound = bindSocketsTo(published, this.opts.listenAddress);
    if (!bound.ok) return { state: 'invalid', reason: bound.error };
    const ports = this.opts.listenPorts;
    if (ports === undefined) return { state: 'ok', ir: bound.ir };
    const { ir, leftOut, unrouted } = podSockets(bound.ir, ports, this.opts.listenAddress, this.socketNames);
    const key = `${leftOut.join(',')}/${unrouted.join(',')}`;
    if (key !== this.lastLeftOut) {
      if (leftOut.length > 0) {
        this.log.info({ event: 'listeners-left-out', ports: leftOut, podPorts: ports }, 'ports of the routing config this pod does not listen on are left out; pods rolled out for them serve them');
      }
      if (unrouted.length > 0) {
        this.log.info({ event: 'listeners-unrouted', ports: unrouted, podPorts: ports }, 'ports of this pod with no listener in the routing config keep their socket (404 for every request) until the pod is replaced');
      }
    }
    this.lastLeftOut = key;
    for (const s of ir.sockets) this.socketNames.set(s.port, s.name);
    return { state: 'ok', ir };
  }

  /** The state as /status serves it: errors summarised, never VCL text. */
  publicState(): ChaperoneState {
    const s: ChaperoneState = { ...this.state, ready: this.ready };
    if (s.lastReload?.error !== undefined) s.lastReload = { ...s.lastReload, error: summarizeError(s.lastReload.error) };
    return s;
  }

  /** Routing configs inflated and parsed so far (a changed ConfigMap set, not every event). */
  get configDecodes(): number {
    return this.sources.configReader.decodes;
  }

  /**
   * SIGTERM: not ready at once (health 503, so Kubernetes stops sending traffic), wait until no
   * client connection is open and none arrived for a quiet period, then stop varnishd cleanly. No timeout of our own: the
   * pod's terminationGracePeriodSeconds ends it.
   */
  async drain(options: Omit<DrainOptions, 'logger' | 'varnishd' | 'connections' | 'closeConnections'> = {}): Promise<void> {
    if (this.state.phase === 'draining' || this.state.phase === 'stopped') return;
    this.state.phase = 'draining';
    this.state.ready = false;
    this.metrics.draining.set(1);
    await this.sources.stop();
    await this.applier.stop();
    this.routeStatus?.stop();
    const stats = this.dataPlane.statsCollector;
    await drainConnections({
      ...options,
      logger: this.log,
      varnishd: this.dataPlane.varnish,
      closeConnections: () => this.loadDrainingVcl(),
      // A fresh poll each time: the background one may be up to a poll interval old.
      connections: async () => {
        if (!stats) return { open: 0, accepted: 0 };
        const snapshot = await stats.get();
        return { open: activeSessions(snapshot) ?? Number.NaN, accepted: snapshot.counter('MAIN.sess_conn') ?? Number.NaN };
      },
    });
    await this.stop();
  }

  /**
   * The live config once more, compiled to close every connection after its response
   * (CompileVclOptions.draining): busy keep-alive clients move to the pods that stay instead
   * of holding this one until the grace period ends. Nothing else changes: same IR, same
   * endpoints, same sockets, never a varnishd restart. A failure leaves the live VCL serving
   * and the drain waits as it would without it.
   */
  private async loadDrainingVcl(): Promise<void> {
    const live = this.dataPlane.live;
    if (!live) return;
    try {
      const config = compileConfig(live.ir, live.endpoints, { shards: live.deploy.shards.length || 1, draining: true });
      await this.dataPlane.reloadVcl(config);
      this.log.info({ event: 'drain-vcl-active', vcl: this.state.activeVcl }, 'draining VCL live: every response closes its connection');
    } catch (err) {
      this.log.warn({ event: 'drain-vcl-failed', err: summarizeError((err as Error).message) }, 'draining VCL could not be loaded; the live config keeps serving and connections end on their own');
    }
  }

  async stop(): Promise<void> {
    this.state.phase = 'stopped';
    this.state.ready = false;
    this.routeStatus?.stop();
    await this.sources.stop();
    await this.applier.stop();
    await this.dataPlane.stop();
  }
}

function endpointFingerprint(endpoints: EndpointMap): string {
  const parts: string[] = [];
  for (const [key, list] of endpoints) parts.push(`${key}=${list.map((e) => `${e.address}:${e.port}`).join(',')}`);
  return parts.sort().join(';');
}

/** Equal backend TLS proxy configuration (services and material), equal key: a change restarts it. */
function backendTlsKey(proxy: { services: readonly unknown[]; pems: ReadonlyMap<string, Buffer> }): string {
  const h = createHash('sha256');
  h.update(JSON.stringify(proxy.services));
  for (const [id, pem] of [...proxy.pems].sort(([a], [b]) => (a < b ? -1 : 1))) h.update(id).update('\0').update(pem);
  return h.digest('hex');
}
