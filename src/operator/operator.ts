// The operator's reconcile loop: informers feed a snapshot; while this replica leads, each
// reconcile translates it, records every desired status with the status writer, publishes each
// accepted Gateway's routing config and keeps its infrastructure objects in the cluster.
//
// Reconciles are coalesced (a burst of events makes at most one more run, which sees the newest
// state) and level-based: every run computes everything from the current view, so a failed or
// skipped run is repaired by the next one.
import { createHash, randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { isDeepStrictEqual } from 'node:util';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { registerProcessMetrics } from '../util/process-metrics.ts';
import { condition, mergeConditions } from '../gatewayapi/conditions.ts';
import { freezeRouteStatus, indexStatuses, previousParent, type GatewayStatus, type ObjectStatus, type PreviousStatuses } from '../gatewayapi/status.ts';
import { CLUSTER_FEATURES } from '../gatewayapi/features.ts';
import { formatProblem, translate } from '../gatewayapi/translator.ts';
import { TranslationMemo } from '../gatewayapi/translation-memo.ts';
import type { Condition, GatewayClass } from '../gatewayapi/types.ts';
import { encodeRoutingConfig, GATEWAY_LABEL, headName, ROLE_LABEL } from '../ir/configmap.ts';
import { apiStatusCode } from '../providers/kubernetes/errors.ts';
import { Coalescer } from '../util/coalesce.ts';
import { InfrastructureApplier, type ApplyAction, type InfraKind } from './apply.ts';
import { CaBundleConfigMaps } from './ca-bundles.ts';
import { CertificateSecrets } from './certificate-secrets.ts';
import { infraProgrammed, serviceAddresses } from './gateway-status.ts';
import { infraName, renderInfrastructure } from './infrastructure.ts';
import { LeaderElector } from './leader.ts';
import { defaultParameters, PARAMETERS_GROUP, PARAMETERS_KIND, parseParameters, type GatewayClassParametersSpec } from './parameters.ts';
import { publishRoutingConfig } from './publish.ts';
import { CertificatePublisher, markOmittedCertificates, wantsCertificateSecret } from './publish-certificates.ts';
import { PublishedConfigs, replicaReports, routeProgrammed, ROUTE_PROGRAMMED } from './route-programmed.ts';
import { OperatorSources, type ClusterView } from './sources.ts';
import { StatusWriter, type StatusKind } from './status-writer.ts';

export interface OperatorOptions {
  kubeConfig: KubeConfig;
  logger: Logger;
  /** Namespace of the leader-election Lease. */
  namespace: string;
  leaseName: string;
  /** This replica's identity on the Lease. Default: hostname and a random suffix. */
  identity?: string;
  /** Gateway pod image when the class's parameters name none. */
  defaultImage: string;
  /** Leader-election durations (see LeaderElector); tests shorten them. */
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  /**
   * Period of the full resync (0 or absent: none). Each one makes a reconcile that re-reads every
   * status it desires and every routing head ConfigMap, so what was edited behind the
   * operator's back without an event it acts on is put back.
   */
  resyncMs?: number;
  /** Status writer backoffs (see StatusWriter). */
  statusRetryMs?: number;
  now?: () => Date;
}

export interface OperatorMetrics {
  registry: Registry;
  reconcileSeconds: Histogram<'outcome'>;
  translateSeconds: Histogram;
  statusWrites: Counter<'outcome'>;
  publishedConfigs: Counter<never>;
  infraApplies: Counter<'kind' | 'action'>;
  resyncs: Counter<never>;
  /** 1 while this replica holds the leader lease, else 0 (read from the elector at scrape time). */
  leader: Gauge<never>;
}

/** Counts since start, for tests and /status-like views. */
export interface OperatorCounts {
  reconciles: number;
  published: number;
  infra: Record<ApplyAction, number>;
}

const FIRST_RETRY_MS = 1_000;
const MAX_RETRY_MS = 30_000;

/** What a GatewayClass's parametersRef resolves to. */
type ClassParameters = { ok: true; spec: GatewayClassParametersSpec } | { ok: false; message: string };

export class Operator {
  readonly metrics: OperatorMetrics;
  readonly statusWriter: StatusWriter;
  readonly counts: OperatorCounts = { reconciles: 0, published: 0, infra: { created: 0, updated: 0, unchanged: 0, deleted: 0 } };
  private readonly opts: OperatorOptions;
  private readonly log: Logger;
  private readonly sources: OperatorSources;
  /** The certificate Secrets our Gateways reference (data of referenced ones only). */
  private readonly certificates: CertificateSecrets;
  private readonly caBundles: CaBundleConfigMaps;
  private readonly certificatePublisher: CertificatePublisher;
  private readonly applier: InfrastructureApplier;
  private readonly elector: LeaderElector;
  private readonly coalescer: Coalescer;
  private readonly core: CoreV1Api;
  /** The statuses last written (with the operator's own additions): lastTransitionTime of those. */
  private previous: PreviousStatuses | undefined;
  /**
   * The same, with each route's status as the translator produced it (without Programmed): what
   * the next translation gets as `previous`, so that it can hand out the same status object for
   * an unchanged route (it merges only its own condition types, which both have alike).
   */
  private previousTranslated: PreviousStatuses | undefined;
  /** The copy with Programmed made of each translator route status, reused while Programmed stays the same. */
  private programmedCopies = new WeakMap<ObjectStatus, { copy: ObjectStatus; programmed: Condition[] }>();
  /** The last translation's work: a route change does not translate every route again. */
  private readonly translationMemo = new TranslationMemo();

  /** Translations that reused the last one's work / started over (a change beyond routes). */
  get translationStats(): { readonly reused: number; readonly rebuilt: number } {
    return this.translationMemo.stats;
  }
  /** Status keys set by the last reconcile, to forget the ones no longer desired. */
  private statusKeys = new Map<string, { kind: StatusKind; namespace: string | undefined; name: string }>();
  /** The routing config last published per Gateway (namespace/name): sha256 of its IR JSON and of its head ConfigMap. */
  private published = new Map<string, { ir: string; head: string }>();
  /** Route generations of the configs published, by head sha256: what a replica's report means. */
  private readonly publishedConfigs = new PublishedConfigs();
  /** Pod problems logged already (each once, while it lasts). */
  private podProblems = new Set<string>();
  private stopped = false;
  private retryMs = FIRST_RETRY_MS;
  private problems = new Set<string>();
  private retryTimer: NodeJS.Timeout | null = null;
  private resyncTimer: NodeJS.Timeout | null = null;
  /** A resync is due: the next reconcile run by the leader forgets what it had confirmed. */
  private resyncDue = false;
  /** Completed resyncs, for tests. */
  resyncs = 0;

  constructor(opts: OperatorOptions) {
    this.opts = opts;
    this.log = opts.logger.child({ component: 'operator' });
    const registry = new Registry();
    registerProcessMetrics(registry);
    this.metrics = {
      registry,
      reconcileSeconds: new Histogram({ name: 'vgw_operator_reconcile_duration_seconds', help: 'Duration of reconciles, by outcome (ok, error).', labelNames: ['outcome'], registers: [registry], buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] }),
      statusWrites: new Counter({ name: 'vgw_operator_status_writes_total', help: 'Status writes by outcome (written, noop, conflict, failed, gone).', labelNames: ['outcome'], registers: [registry] }),
      publishedConfigs: new Counter({ name: 'vgw_operator_routing_configs_published_total', help: 'Routing configs published (a changed config of one Gateway).', registers: [registry] }),
      infraApplies: new Counter({ name: 'vgw_operator_infrastructure_applies_total', help: 'Per-Gateway objects by kind and action (created, updated, unchanged, deleted).', labelNames: ['kind', 'action'], registers: [registry] }),
      translateSeconds: new Histogram({ name: 'vgw_operator_translation_duration_seconds', help: 'Duration of translating the cluster view into per-Gateway routing IR and statuses.', registers: [registry], buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5] }),
      resyncs: new Counter({ name: 'vgw_operator_resyncs_total', help: 'Periodic resyncs completed by the leader: the reconcile ran and every status it re-checked was found so or written.', registers: [registry] }),
      // Read at scrape time rather than set on term changes, so it can never disagree with the elector.
      leader: new Gauge({ name: 'vgw_operator_leader', help: '1 while this replica holds the leader lease (and so reconciles), else 0.', registers: [registry], collect: () => this.metrics.leader.set(this.elector.isLeader() ? 1 : 0) }),
    };
    this.statusWriter = new StatusWriter({ kubeConfig: opts.kubeConfig, logger: opts.logger, writes: this.metrics.statusWrites, retryMs: opts.statusRetryMs, now: opts.now });
    this.applier = new InfrastructureApplier(opts.kubeConfig, (kind, action, namespace, name) => this.onInfraAction(kind, action, namespace, name));
    this.core = opts.kubeConfig.makeApiClient(CoreV1Api);
    this.coalescer = new Coalescer(
      () => this.reconcile(),
      (err) => this.log.error({ event: 'reconcile-failed', err: describe(err) }, 'reconcile failed; the next change or renewal retries'),
    );
    this.sources = new OperatorSources({ kubeConfig: opts.kubeConfig, logger: opts.logger, onChange: () => void this.trigger() });
    this.certificates = new CertificateSecrets({ kubeConfig: opts.kubeConfig, logger: opts.logger, onChange: () => void this.trigger() });
    this.caBundles = new CaBundleConfigMaps({ kubeConfig: opts.kubeConfig, logger: opts.logger, onChange: () => void this.trigger() });
    this.certificatePublisher = new CertificatePublisher(opts.kubeConfig, (action, namespace, name) => this.onInfraAction('Secret', action, namespace, name));
    this.elector = new LeaderElector({
      kubeConfig: opts.kubeConfig,
      namespace: opts.namespace,
      name: opts.leaseName,
      identity: opts.identity ?? `${hostname()}-${randomUUID().slice(0, 8)}`,
      logger: opts.logger,
      leaseDurationMs: opts.leaseDurationMs,
      renewDeadlineMs: opts.renewDeadlineMs,
      retryPeriodMs: opts.retryPeriodMs,
      onStartedLeading: () => {
        // A new term starts from what the cluster says, not from what an earlier term wrote.
        this.published.clear();
        this.certificatePublisher.clear();
        void this.trigger();
      },
    });
  }

  /** Lists every kind, then campaigns for the lease; reconciles run while leading. */
  async start(): Promise<void> {
    await Promise.all([this.sources.start(), this.certificates.start(), this.caBundles.start()]);
    this.log.info({ event: 'synced' }, 'informers synced');
    if (this.stopped) return;
    this.elector.start();
    const period = this.opts.resyncMs ?? 0;
    if (period > 0) {
      // Followers tick too and do nothing: reconcile() runs only while leading.
      this.resyncTimer = setInterval(() => {
        this.resyncDue = true;
        void this.trigger();
      }, period);
      this.resyncTimer.unref();
    }
  }

  /** Ready once every kind has been listed (a follower is ready too: it can take over). */
  get ready(): boolean {
    return this.sources.isSynced && !this.stopped;
  }

  get leading(): boolean {
    return this.elector.isLeader();
  }

  /** Runs a reconcile (coalesced); resolves when a run that started after this call is done. */
  trigger(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return this.coalescer.run();
  }

  /** For tests and shutdown: a reconcile from the current view, then every status written. */
  async settle(): Promise<void> {
    await this.trigger();
    await this.statusWriter.flush();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    await this.elector.stop();
    await this.coalescer.stop();
    await this.statusWriter.stop();
    await this.sources.stop();
    await this.certificates.stop();
    await this.caBundles.stop();
  }

  private onInfraAction(kind: InfraKind, action: ApplyAction, namespace: string | undefined, name: string): void {
    this.counts.infra[action]++;
    this.metrics.infraApplies.inc({ kind, action });
    if (action !== 'unchanged') this.log.info({ event: `infrastructure-${action}`, kind, object: namespace ? `${namespace}/${name}` : name }, `${kind} ${action}`);
  }

  private async reconcile(): Promise<void> {
    if (this.stopped || !this.elector.isLeader() || !this.sources.isSynced) return;
    const end = this.metrics.reconcileSeconds.startTimer();
    const resync = this.resyncDue;
    this.resyncDue = false;
    if (resync) {
      // Re-read each Gateway's head ConfigMap instead of trusting what this term published.
      this.published.clear();
      this.certificatePublisher.clear();
      this.log.debug({ event: 'resync' }, 'periodic resync');
    }
    try {
      await this.reconcileView(this.sources.view(), resync);
      if (resync) {
        this.resyncs++;
        // Counted once the statuses it re-checked are settled: from then on the cluster is known
        // to match what this leader wants (the observable "synced" of a new term, for tests).
        void this.statusWriter.flush().then(() => this.metrics.resyncs.inc());
      }
      end({ outcome: 'ok' });
      this.retryMs = FIRST_RETRY_MS;
    } catch (err) {
      end({ outcome: 'error' });
      this.scheduleRetry();
      throw err;
    } finally {
      this.counts.reconciles++;
    }
  }

  private async reconcileView(view: ClusterView, resync: boolean): Promise<void> {
    const now = (this.opts.now?.() ?? new Date()).toISOString();
    const { snapshot } = view;

    // Resolve each class's parameters; the translator sees a class without parametersRef when
    // they resolve, and keeps rejecting one whose parameters do not (its message fixed below).
    const classParams = new Map<string, ClassParameters>();
    snapshot.gatewayClasses = snapshot.gatewayClasses.map((gc) => {
      const resolved = resolveParameters(gc, view);
      classParams.set(gc.metadata.name, resolved);
      if (!resolved.ok || gc.spec.parametersRef === undefined) return gc;
      const { parametersRef: _ref, ...spec } = gc.spec;
      return { ...gc, spec };
    });

    // Only the Secrets our Gateways' HTTPS listeners name, read now if not kept already.
    snapshot.secrets = await this.certificates.resolve(snapshot.gateways);
    // Likewise the ConfigMaps their client certificate validation names as CA bundles.
    snapshot.configMaps = await this.caBundles.resolve(snapshot.gateways, snapshot.backendTLSPolicies ?? []);
    const endTranslate = this.metrics.translateSeconds.startTimer();
    const result = translate(snapshot, { defaultAddress: '0.0.0.0', now, previous: this.previousTranslated, sharedDataPlane: false, supportedFeatures: CLUSTER_FEATURES, memo: this.translationMemo });
    endTranslate();
    const statuses = result.statuses;
    // Each problem is logged once, when it appears, not on every run.
    const problems = new Set(result.problems.map(formatProblem));
    for (const p of result.problems) {
      const text = formatProblem(p);
      if (!this.problems.has(text)) this.log.warn({ event: 'problem', kind: p.kind, object: p.object, problem: p.message }, text);
    }
    this.problems = problems;
    for (const s of statuses) {
      if (s.kind !== 'GatewayClass') continue;
      const p = classParams.get(s.metadata.name);
      if (p && !p.ok) {
        const before = this.previous?.gatewayClass(s.metadata.name)?.conditions;
        s.status.conditions = mergeConditions(before, [condition('Accepted', false, 'InvalidParameters', p.message, s.metadata.generation)], now);
      }
    }

    const gatewayStatus = new Map<string, Extract<ObjectStatus, { kind: 'Gateway' }>>();
    for (const s of statuses) if (s.kind === 'Gateway') gatewayStatus.set(`${s.metadata.namespace}/${s.metadata.name}`, s);
    const classOf = new Map(snapshot.gateways.map((g) => [`${g.metadata.namespace}/${g.metadata.name}`, g.spec.gatewayClassName]));
    const addressesOf = new Map(snapshot.gateways.map((g) => [`${g.metadata.namespace}/${g.metadata.name}`, g.spec.addresses]));
    const gatewayOf = new Map(snapshot.gateways.map((g) => [`${g.metadata.namespace}/${g.metadata.name}`, g]));

    let failed = false;
    const keep = new Set<string>();
    const keepConfigs = new Set<string>();
    /** Gateways whose certificate Secret stays (kept even when writing it fails this run). */
    const keepCertificates = new Set<string>();
    for (const gw of result.gateways) {
      const key = `${gw.gateway.namespace}/${gw.gateway.name}`;
      const params = classParams.get(classOf.get(key) ?? '');
      const uid = view.gatewayUids.get(key);
      if (!params?.ok || !uid) continue;
      keep.add(infraName(gw.gateway.namespace, gw.gateway.name));
      keepConfigs.add(key);
      const log = this.log.child({ gateway: key });
      const status = gatewayStatus.get(key);
      if (wantsCertificateSecret(gw.routing)) keepCertificates.add(key);
      try {
        // Certificates first: a pod that sees a config naming a certificate finds it published.
        const certificates = await this.certificatePublisher.publish({ ...gw.gateway, uid }, gw.routing, snapshot.secrets, snapshot.configMaps);
        const gatewayObj = gatewayOf.get(key);
        if (certificates && status && gatewayObj) {
          markOmittedCertificates(status.status, gatewayObj, certificates.omitted, status.metadata.generation, now, this.previous?.gateway(gw.gateway.namespace, gw.gateway.name));
        }
        await this.publish(gw.gateway.namespace, gw.gateway.name, gw.routing, log);
        const infra = renderInfrastructure({ ...gw.gateway, uid, addresses: addressesOf.get(key) }, gw.infra, params.spec, { defaultImage: this.opts.defaultImage });
        const live = await this.applier.apply(infra);
        // Read (or written) in this run: the newest Service and Deployment status there is. The
        // Deployment informer only makes a change of their status start a run.
        if (status) this.applyInfraStatus(status.status, live.service, live.deployment, status.metadata.generation, key, now, infra.addressProblem);
      } catch (err) {
        // One Gateway's failure stays its own: the others are still applied, and this one is
        // retried (below) and reported not Programmed meanwhile.
        failed = true;
        log.error({ event: 'gateway-apply-failed', err: describe(err) }, 'could not publish or apply the Gateway\'s objects');
        if (status) this.failInfraStatus(status.status, status.metadata.generation, key, now);
      }
    }
    // A Gateway without infrastructure has no address (the translator's bind address is the
    // pods' wildcard, not where clients reach it).
    for (const [key, s] of gatewayStatus) if (!keepConfigs.has(key)) s.status.addresses = [];
    try {
      await this.applier.sweep(keep);
      await this.sweepConfigs(keepConfigs);
      await this.certificatePublisher.sweep(keepCertificates);
    } catch (err) {
      failed = true;
      this.log.error({ event: 'cleanup-failed', err: describe(err) }, 'could not delete the objects of removed Gateways');
    }

    // Gateway and class statuses are the same objects in both (changed in place above).
    this.previousTranslated = indexStatuses(statuses);
    this.setRouteProgrammed(statuses, view.pods, keepConfigs, now);
    this.previous = indexStatuses(statuses);
    const keys = new Map<string, { kind: StatusKind; namespace: string | undefined; name: string }>();
    for (const s of statuses) {
      const id = `${s.kind}/${s.metadata.namespace ?? ''}/${s.metadata.name}`;
      keys.set(id, { kind: s.kind, namespace: s.metadata.namespace, name: s.metadata.name });
      const uid = view.statusUids.get(id);
      if (s.kind === 'GatewayClass') this.statusWriter.set('GatewayClass', undefined, s.metadata.name, s.status, uid);
      else if (s.kind === 'Gateway') this.statusWriter.set('Gateway', s.metadata.namespace, s.metadata.name, s.status, uid);
      else if (s.kind === 'BackendTLSPolicy') this.statusWriter.set('BackendTLSPolicy', s.metadata.namespace, s.metadata.name, s.status, uid);
      else this.statusWriter.set('HTTPRoute', s.metadata.namespace, s.metadata.name, s.status, uid);
    }
    const routes = new Set(snapshot.httpRoutes.map((r) => `${r.metadata.namespace}/${r.metadata.name}`));
    const policies = new Set((snapshot.backendTLSPolicies ?? []).map((p) => `${p.metadata.namespace}/${p.metadata.name}`));
    for (const [id, k] of this.statusKeys) {
      if (keys.has(id)) continue;
      if (k.kind === 'HTTPRoute' && routes.has(`${k.namespace}/${k.name}`)) {
        // A route that no longer names any of our Gateways: our parent entries go, others stay.
        this.statusWriter.set('HTTPRoute', k.namespace, k.name, { parents: [] }, view.statusUids.get(id));
        keys.set(id, k);
      } else if (k.kind === 'BackendTLSPolicy' && policies.has(`${k.namespace}/${k.name}`)) {
        // A policy no longer applying to our Gateways' backends: our ancestor entries go, others stay.
        this.statusWriter.set('BackendTLSPolicy', k.namespace, k.name, { ancestors: [] }, view.statusUids.get(id));
        keys.set(id, k);
      } else {
        this.statusWriter.forget(k.kind, k.namespace, k.name);
      }
    }
    this.statusKeys = keys;
    // Our own status writes are ignored as events, so are someone else's: a resync re-reads
    // every status we desire and writes back whatever differs.
    if (resync) for (const k of keys.values()) this.statusWriter.recheck(k.kind, k.namespace, k.name);
    if (failed) throw new Error('part of the reconcile failed (see the errors logged above)');
  }

  /**
   * Adds `Programmed` to every accepted route parent entry of a Gateway with infrastructure: True
   * once each ready replica of the Gateway reports a config serving the route's generation.
   */
  private setRouteProgrammed(statuses: ObjectStatus[], pods: readonly unknown[], gateways: ReadonlySet<string>, now: string): void {
    this.publishedConfigs.retain(gateways);
    const { ready, problems } = replicaReports(pods, gateways);
    const seen = new Set<string>();
    for (const p of problems) {
      const text = `${p.pod}: ${p.error}`;
      seen.add(text);
      if (!this.podProblems.has(text)) this.log.warn({ event: 'pod-report-unusable', object: p.pod, problem: p.error }, 'gateway pod report ignored');
    }
    this.podProblems = seen;
    // The translator's route statuses are frozen (it may hand the same one out again): a route
    // that gets Programmed gets a copy of its status in the list. The copy is frozen too and
    // handed out again while the translator's status and the Programmed conditions are the
    // same, so the status writer recognises an unchanged route by identity.
    statuses.forEach((s, i) => {
      if (s.kind !== 'HTTPRoute') return;
      const routeKey = `${s.metadata.namespace}/${s.metadata.name}`;
      const before = this.previous?.httpRoute(s.metadata.namespace ?? '', s.metadata.name);
      const programmed: Condition[] = [];
      const parents = s.status.parents.map((parent) => {
        const ref = parent.parentRef;
        if ((ref.kind ?? 'Gateway') !== 'Gateway' || parent.conditions.find((c) => c.type === 'Accepted')?.status !== 'True') return parent;
        const gateway = `${ref.namespace ?? s.metadata.namespace}/${ref.name}`;
        if (!gateways.has(gateway)) return parent;
        const c = routeProgrammed(gateway, routeKey, s.metadata.generation, ready.get(gateway) ?? [], this.publishedConfigs);
        const merged = mergeConditions(previousParent(before, ref)?.conditions, [c], now)[0];
        programmed.push(merged);
        return { ...parent, conditions: [...parent.conditions.filter((x) => x.type !== ROUTE_PROGRAMMED), merged] };
      });
      if (programmed.length === 0) return;
      const last = this.programmedCopies.get(s);
      if (last && isDeepStrictEqual(last.programmed, programmed)) {
        statuses[i] = last.copy;
        return;
      }
      const copy = freezeRouteStatus({ ...s, status: { ...s.status, parents } });
      this.programmedCopies.set(s, { copy, programmed });
      statuses[i] = copy;
    });
  }

  /** Programmed=False while a Gateway's objects could not be applied. */
  private failInfraStatus(status: GatewayStatus, generation: number, key: string, now: string): void {
    status.addresses = [];
    const i = status.conditions.findIndex((c) => c.type === 'Programmed');
    if (i < 0 || status.conditions[i].status !== 'True') return;
    const [gwNamespace, gwName] = key.split('/');
    const before = this.previous?.gateway(gwNamespace, gwName)?.conditions;
    const c = condition('Programmed', false, 'Pending', 'the Gateway\'s routing config or Deployment could not be written; retrying', generation);
    status.conditions[i] = mergeConditions(before, [c], now)[0];
  }

  /** After a failed run: another one after a backoff (1 s doubling to 30 s), even without events. */
  private scheduleRetry(): void {
    if (this.stopped || this.retryTimer) return;
    const delay = this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, MAX_RETRY_MS);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.trigger();
    }, delay);
    this.retryTimer.unref();
  }

  /** Addresses from the Service; Programmed from pods and address once the translator found nothing wrong. */
  private applyInfraStatus(status: GatewayStatus, service: Parameters<typeof serviceAddresses>[0], deployment: Parameters<typeof infraProgrammed>[0], generation: number, key: string, now: string, addressProblem: string | undefined): void {
    const addresses = serviceAddresses(service);
    status.addresses = addresses;
    const i = status.conditions.findIndex((c) => c.type === 'Programmed');
    if (i < 0 || status.conditions[i].status !== 'True') return;
    const [gwNamespace, gwName] = key.split('/');
    const before = this.previous?.gateway(gwNamespace, gwName)?.conditions;
    const programmed = addressProblem
      ? condition('Programmed', false, 'AddressNotUsable', addressProblem, generation)
      : infraProgrammed(deployment, addresses, generation);
    status.conditions[i] = mergeConditions(before, [programmed], now)[0];
  }

  private async publish(namespace: string, gateway: string, routing: Parameters<typeof publishRoutingConfig>[3], log: Logger): Promise<void> {
    const key = `${namespace}/${gateway}`;
    const sha = sha256(JSON.stringify(routing));
    const generations = routing.routeGenerations ?? {};
    const known = this.published.get(key);
    if (known?.ir === sha) {
      this.publishedConfigs.remember(key, known.head, generations);
      return;
    }
    // After a restart: the head already in the cluster may be this very config.
    if (!this.published.has(key)) {
      const head = encodeRoutingConfig(routing, namespace, gateway).at(-1);
      const live = await this.core.readNamespacedConfigMap({ namespace, name: headName(gateway) }).catch((err: unknown) => {
        if (apiStatusCode(err) === 404) return undefined;
        throw err;
      });
      if (head && live?.data?.sha256 === head.data.sha256) {
        this.published.set(key, { ir: sha, head: head.data.sha256 });
        this.publishedConfigs.remember(key, head.data.sha256, generations);
        return;
      }
    }
    const r = await publishRoutingConfig(this.opts.kubeConfig, namespace, gateway, routing);
    this.published.set(key, { ir: sha, head: r.sha256 });
    this.publishedConfigs.remember(key, r.sha256, generations);
    this.counts.published++;
    this.metrics.publishedConfigs.inc();
    log.info({ event: 'routing-published', sha256: r.sha256, configMaps: r.written.length, deleted: r.deleted.length }, 'routing config published');
  }

  /** Deletes the routing ConfigMaps of Gateways that are gone or no longer ours. */
  private async sweepConfigs(keep: ReadonlySet<string>): Promise<void> {
    const list = await this.core.listConfigMapForAllNamespaces({ labelSelector: `${GATEWAY_LABEL},${ROLE_LABEL}` });
    for (const cm of list.items) {
      const namespace = cm.metadata?.namespace as string;
      const name = cm.metadata?.name as string;
      const gateway = cm.metadata?.labels?.[GATEWAY_LABEL];
      if (keep.has(`${namespace}/${gateway}`)) continue;
      await this.core.deleteNamespacedConfigMap({ namespace, name }).catch((err: unknown) => {
        if (apiStatusCode(err) !== 404) throw err;
      });
      this.published.delete(`${namespace}/${gateway}`);
      this.log.info({ event: 'routing-deleted', object: `${namespace}/${name}` }, 'routing ConfigMap of a removed Gateway deleted');
    }
  }
}

/** A class's parameters: defaults without parametersRef, else the referenced GatewayClassParameters. */
function resolveParameters(gc: GatewayClass, view: ClusterView): ClassParameters {
  const ref = gc.spec.parametersRef as { group?: string; kind?: string; name?: string; namespace?: string } | undefined;
  if (ref === undefined) return { ok: true, spec: defaultParameters() };
  if (ref.group !== PARAMETERS_GROUP || ref.kind !== PARAMETERS_KIND) {
    return { ok: false, message: `spec.parametersRef must name a ${PARAMETERS_GROUP}/${PARAMETERS_KIND}` };
  }
  if (ref.namespace !== undefined) return { ok: false, message: `spec.parametersRef: ${PARAMETERS_KIND} is cluster-scoped; namespace must be unset` };
  const obj = view.parameters.get(ref.name ?? '');
  if (!obj) return { ok: false, message: `${PARAMETERS_KIND} ${ref.name} not found` };
  const parsed = parseParameters(obj);
  return parsed.ok ? { ok: true, spec: parsed.value.spec } : { ok: false, message: parsed.error };
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

function describe(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
