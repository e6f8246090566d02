// Gateway API semantics: ResourceSnapshot -> routing IR + the status of every object we own.
// Pure: no I/O, no clock (the caller passes the time used for lastTransitionTime).
import type { IRBackendRef, IRMirror, IRRoute, IRService, IRSocket, IRVirtualHost, RoutingIR } from '../ir/types.ts';
import { IR_VERSION, serviceKey } from '../ir/types.ts';
import type { GatewayIR } from '../ir/infra.ts';
import { compareSocketAddresses, reindexServices, socketNames } from '../ir/merge.ts';
import { gatewayInfra } from './infra.ts';
import { resolveBackendRef, type BackendIndex, type BackendResolution } from './backends.ts';
import { BackendTlsPolicies, resolveClientCertificate, type ClientCertificateResolution } from './backend-tls.ts';
import { condition, mergeConditions } from './conditions.ts';
import { CONTROLLER_NAME, SUPPORTED_FEATURES } from './features.ts';
import { intersectHostnames, patternCovers, specificity } from './hostnames.ts';
import {
  evaluateGateway,
  gatewayProgrammed,
  listenerConditions,
  markCrossGatewayConflicts,
  markUnavailableSockets,
  resolveListenerCertificates,
  settleGateway,
  socketKey,
  type GatewayState,
  type ListenerState,
} from './listeners.ts';
import { insecureFrontendCondition, markTlsSettingConflicts, resolveFrontendTls } from './frontend-tls.ts';
import { compareMatches, type RankedMatch } from './precedence.ts';
import { RouteValueError, ruleAction, validateRoute, type ValidRule } from './rules.ts';
import type { SocketMemo, TableMemo, TranslationMemo } from './translation-memo.ts';
import { pcreProblem, type RegexVerdicts } from './regex.ts';
import { namespaceAllowed } from './namespaces.ts';
import { rejectedBackends, rejectedMessage, rejectedStatuses } from './rejected.ts';
import { freezeRouteStatus, previousParent, type HTTPRouteObjectStatus, type ObjectStatus, type PreviousStatuses, type StatusMetadata } from './status.ts';
import type { Condition, Gateway, GatewayClass, HTTPRoute, ParentReference, ResourceSnapshot } from './types.ts';
import { GATEWAY_GROUP } from './types.ts';

export interface TranslateOptions {
  /** Address a Gateway's listeners bind when it has no spec.addresses. */
  defaultAddress: string;
  /** RFC 3339 time stamped on conditions that changed since `previous` (all of them without it). */
  now: string;
  /**
   * The statuses the last translation wrote (see indexStatuses): a condition whose status,
   * reason and message are unchanged keeps its lastTransitionTime.
   */
  previous?: PreviousStatuses;
  /** PCRE2's verdict on each regex the tokenizer accepted (computed by the caller with varnishd). */
  regexVerdicts?: RegexVerdicts;
  /**
   * Routes whose generated VCL did not compile: the message to reject them with, or null.
   * The caller finds them (src/pipeline/compile-isolation.ts) and remembers them per route version.
   */
  rejectedRoutes?: (route: HTTPRoute) => string | null;
  /**
   * Listen sockets (`address:port`, see socketKey) the runtime found it cannot bind, with why.
   * Listeners on them are reported PortUnavailable and get no socket there.
   */
  unavailableSockets?: ReadonlyMap<string, string>;
  /**
   * Build `gateways`, one IR per Gateway (default true). A caller that serves every Gateway
   * from one data plane (standalone mode) needs only the combined `ir` and skips the work.
   */
  perGateway?: boolean;
  /**
   * Whether all Gateways share one data plane (default true, as standalone mode does): then two
   * Gateways cannot both serve one address:port and hostname, and the younger one is Conflicted.
   * The operator gives every Gateway its own pods and address, so nothing is shared (false).
   */
  sharedDataPlane?: boolean;
  /**
   * Whether HTTPS listeners can be served (default true). The operator's gateway pods do not run
   * the TLS terminator yet, so it passes false: HTTPS listeners are then UnsupportedProtocol
   * rather than Programmed and refused.
   */
  httpsListeners?: boolean;
  /** Conformance features reported in GatewayClass status (default SUPPORTED_FEATURES, standalone's). */
  supportedFeatures?: readonly string[];
  /**
   * Work of the last translation to reuse (see translation-memo.ts): one per caller that
   * translates again and again. The result is the same with or without it.
   */
  memo?: TranslationMemo;
}

export type { ObjectStatus } from './status.ts';

/** An object of ours that is not accepted, and why; logged and shown by check and /status. */
export interface Problem {
  /** Our three kinds, or any kind the loader read and rejected (Service, EndpointSlice, ...). */
  kind: 'GatewayClass' | 'Gateway' | 'HTTPRoute' | 'ReferenceGrant' | 'Service' | 'EndpointSlice' | 'Namespace' | 'Secret' | 'ConfigMap' | 'BackendTLSPolicy';
  /** "namespace/name" (just the name for cluster-scoped kinds). */
  object: string;
  message: string;
}

export function formatProblem(p: Problem): string {
  return `${p.kind} ${p.object}: ${p.message}`;
}

export interface TranslateResult {
  /** What one data plane serving every Gateway routes: mergeGatewayIRs of `gateways`' routing. */
  ir: RoutingIR;
  /** One per accepted Gateway of our classes, by namespace/name: its infrastructure and routing. */
  gateways: GatewayIR[];
  statuses: ObjectStatus[];
  problems: Problem[];
  /** Sockets that usable listeners want but that were left out as unavailable. */
  leftOutSockets: { address: string; port: number }[];
}

export interface Attachment {
  route: HTTPRoute;
  /** The route's evaluation, which this attachment is part of. */
  state: RouteState;
  listener: ListenerState;
  hostnames: string[];
}

export interface RouteState {
  route: HTTPRoute;
  rules: ValidRule[] | null;
  invalidMessage?: string;
  backends: BackendResolution[][];
  /** Mirror backendRefs per rule index, resolved like backends. */
  mirrors: { resolution: BackendResolution; percent: number }[][];
  parents: { ref: ParentReference; conditions: Condition[] }[];
}

export function translate(snapshot: ResourceSnapshot, options: TranslateOptions): TranslateResult {
  const problems: Problem[] = [];
  const statuses: ObjectStatus[] = [];

  const classes = new Map<string, GatewayClass>();
  for (const gc of sortObjects(snapshot.gatewayClasses)) {
    if (gc.spec.controllerName !== CONTROLLER_NAME) continue;
    classes.set(gc.metadata.name, gc);
    const gen = generation(gc);
    const ok = gc.spec.parametersRef === undefined;
    if (!ok) problems.push({ kind: 'GatewayClass', object: gc.metadata.name, message: 'parametersRef is not supported' });
    statuses.push({
      apiVersion: gc.apiVersion,
      kind: gc.kind,
      metadata: statusMetadata(gc),
      status: {
        conditions: mergeConditions(
          options.previous?.gatewayClass(gc.metadata.name)?.conditions,
          [
            condition(
              'Accepted',
              ok,
              ok ? 'Accepted' : 'InvalidParameters',
              ok ? 'GatewayClass is accepted' : 'spec.parametersRef is not supported',
              gen,
            ),
          ],
          options.now,
        ),
        supportedFeatures: [...(options.supportedFeatures ?? SUPPORTED_FEATURES)].sort().map((name) => ({ name })),
      },
    });
  }

  // Everything derived from the objects that are not HTTPRoutes: taken from the memo while
  // they and the options are unchanged.
  const deriveEnvironment = (): Environment => {
    const gateways: GatewayState[] = [];
    for (const gw of sortObjects(snapshot.gateways)) {
      const gc = classes.get(gw.spec.gatewayClassName);
      if (!gc || gc.spec.parametersRef !== undefined) continue;
      gateways.push(evaluateGateway(gw, options.defaultAddress, options.httpsListeners !== false));
    }
    resolveListenerCertificates(gateways.flatMap((g) => g.listeners), snapshot.secrets, snapshot.referenceGrants);
    resolveFrontendTls(gateways.flatMap((g) => g.listeners), snapshot.configMaps, snapshot.referenceGrants);
    if (options.sharedDataPlane !== false) markCrossGatewayConflicts(gateways.flatMap((g) => g.listeners));
    markTlsSettingConflicts(gateways.flatMap((g) => g.listeners), options.sharedDataPlane === false);
    markUnavailableSockets(gateways.flatMap((g) => g.listeners), options.unavailableSockets);
    for (const g of gateways) settleGateway(g);
    const gatewayByKey = new Map(gateways.map((g) => [key(g.gateway), g]));

    const backendTls = new BackendTlsPolicies(snapshot.backendTLSPolicies ?? [], snapshot.configMaps);
    const index: BackendIndex = {
      services: new Map(snapshot.services.map((s) => [key(s), s])),
      grants: snapshot.referenceGrants,
      invalid: rejectedBackends(snapshot.rejected ?? []),
      tlsTargets: (ns, name) => backendTls.targets(ns, name),
    };
    const secretsByKey = new Map(snapshot.secrets.map((s) => [key(s), s]));
    const clientCertificates = new Map<Gateway, ClientCertificateResolution>(
      gateways.map((g) => [g.gateway, resolveClientCertificate(g.gateway, secretsByKey, snapshot.referenceGrants)]),
    );
    const namespaceLabels = new Map(snapshot.namespaces.map((n) => [n.metadata.name, n.metadata.labels ?? {}]));
    return { gateways, gatewayByKey, backendTls, index, clientCertificates, namespaceLabels };
  };
  const memo = options.memo;
  const envMemo = memo?.environment<Environment, Evaluation>(snapshot, options, deriveEnvironment);
  const { gateways, gatewayByKey, backendTls, index, clientCertificates, namespaceLabels } = envMemo ? envMemo.memo.value : deriveEnvironment();
  // Routes attach afresh on every translation.
  if (envMemo?.reused) for (const g of gateways) for (const l of g.listeners) l.attachedRoutes = 0;

  const attachments: Attachment[] = [];
  const routeStates: RouteState[] = [];
  for (const route of memo ? memo.sortRoutes(snapshot.httpRoutes) : sortObjects(snapshot.httpRoutes)) {
    let evaluation: Evaluation | null;
    if (envMemo) {
      // Reused while the route object, the environment and the route's verdict are the same.
      const validity = routeValidity(route, options);
      const known = envMemo.memo.evaluations.get(route);
      if (known && known.invalidMessage === validity.invalidMessage) {
        evaluation = known.evaluation;
      } else {
        evaluation = evaluateRoute(route, () => validity, gatewayByKey, index, namespaceLabels);
        envMemo.memo.evaluations.set(route, { invalidMessage: validity.invalidMessage, evaluation });
      }
    } else {
      evaluation = evaluateRoute(route, () => routeValidity(route, options), gatewayByKey, index, namespaceLabels);
    }
    if (!evaluation) continue;
    routeStates.push(evaluation.state);
    for (const a of evaluation.attachments) {
      a.listener.attachedRoutes++;
      attachments.push(a);
    }
  }

  // With a memo the numbering before reindexServices lives as long as the environment, so the
  // service indexes in IR routes it keeps stay valid.
  const services: IRService[] = envMemo?.memo.services ?? [];
  const serviceIds = envMemo?.memo.serviceIds ?? new Map<string, number>();
  // null: a BackendTLSPolicy applies but cannot be honoured, so the backend must not be reached
  // (in clear text least of all).
  const serviceId = (b: { namespace: string; name: string; port: number }, gw: Gateway): number | null => {
    const port = index.services.get(`${b.namespace}/${b.name}`)?.spec.ports?.find((p) => p.port === b.port);
    const svc: IRService = { namespace: b.namespace, name: b.name, port: b.port, portName: port?.name ?? '' };
    if (port?.targetPort !== undefined) svc.targetPort = port.targetPort;
    const tls = backendTls.forPort(b.namespace, b.name, port);
    if (tls && !tls.ok) return null;
    if (tls) {
      svc.tls = { ...tls.tls };
      const client = clientCertificates.get(gw);
      if (client?.ok && client.ref) svc.tls.clientCertificate = client.ref;
    }
    // One IR service per Service port and client certificate: Gateways presenting different
    // certificates to one Service get one TLS proxy service each.
    const k = svc.tls?.clientCertificate ? `${serviceKey(svc)}|${svc.tls.clientCertificate.namespace}/${svc.tls.clientCertificate.name}` : serviceKey(svc);
    let id = serviceIds.get(k);
    if (id === undefined) {
      id = services.length;
      services.push(svc);
      serviceIds.set(k, id);
    }
    return id;
  };
  const backendsOf = (state: RouteState, rule: ValidRule, gw: Gateway): IRBackendRef[] =>
    state.backends[rule.index].flatMap((b, i) => {
      if (b.weight <= 0) return [];
      const ref: IRBackendRef = { weight: b.weight, service: b.ok ? serviceId(b, gw) : null };
      const f = rule.backendFilters[i];
      if (f?.requestHeaders) ref.requestHeaders = f.requestHeaders;
      if (f?.responseHeaders) ref.responseHeaders = f.responseHeaders;
      return [ref];
    });
  const mirrorsOf = (state: RouteState, rule: ValidRule, gw: Gateway): IRMirror[] =>
    (state.mirrors[rule.index] ?? []).flatMap((m) => {
      if (!m.resolution.ok || m.percent <= 0) return [];
      const service = serviceId(m.resolution, gw);
      return service === null ? [] : [{ service, percent: m.percent }];
    });

  // Built once per attachment and match: the combined and the per-Gateway tables share them.
  const built = new Map<Attachment, Map<string, IRRoute>>();
  const buildRoute: RouteBuilder = (att, rule, matchIndex) => {
    const perAttachment = built.get(att) ?? new Map<string, IRRoute>();
    built.set(att, perAttachment);
    const id = `${routeKey(att.route)}/${rule.index}/${matchIndex}`;
    let route = perAttachment.get(id);
    if (!route) {
      const state = att.state;
      const m = rule.matches[matchIndex];
      route = {
        id,
        match: m,
        action: ruleAction(rule, backendsOf(state, rule, att.listener.gateway), mirrorsOf(state, rule, att.listener.gateway), att.listener.listener.port, m.path.value),
      } satisfies IRRoute;
      perAttachment.set(id, route);
    }
    return route;
  };
  // The combined table is built from all listeners at once (not by merging the per-Gateway
  // ones), so the test that merging reproduces it checks two independent computations.
  const reindex = (table: string, sockets: IRSocket[]) => (envMemo ? envMemo.memo.table<Attachment, Ranked>(table).reindexServices(sockets, services) : reindexServices(sockets, services));
  const tableMemo = (table: string) => envMemo?.memo.table<Attachment, Ranked>(table);
  const combined = reindex('', buildSockets(gateways, attachments, buildRoute, tableMemo('')));
  const gatewayIRs: GatewayIR[] = gateways
    .filter((g) => g.accepted && options.perGateway !== false)
    .sort((a, b) => compareKeys(a.gateway.metadata.namespace as string, b.gateway.metadata.namespace as string) || compareKeys(a.gateway.metadata.name, b.gateway.metadata.name))
    .map((g) => {
      const own = attachments.filter((a) => a.listener.gateway === g.gateway);
      const routing = reindex(key(g.gateway), buildSockets([g], own, buildRoute, tableMemo(key(g.gateway))));
      const routeGenerations: Record<string, number> = {};
      for (const att of own) routeGenerations[routeKey(att.route)] = generation(att.route);
      return {
        gateway: { namespace: g.gateway.metadata.namespace as string, name: g.gateway.metadata.name },
        infra: gatewayInfra(g),
        routing: { version: IR_VERSION, routeGenerations, sockets: routing.sockets, services: routing.services },
      };
    });

  for (const g of gateways) {
    const gen = generation(g.gateway);
    if (!g.accepted) problems.push({ kind: 'Gateway', object: key(g.gateway), message: `${g.acceptedReason}: ${g.acceptedMessage}` });
    // A certificate that does not resolve takes an HTTPS listener (or some of its SNI names)
    // out of service: worth a line in the log and /status, not only in the listener status.
    for (const l of g.listeners) {
      if (l.listener.protocol === 'HTTPS' && l.resolvedRefsReason !== 'ResolvedRefs') {
        problems.push({ kind: 'Gateway', object: key(g.gateway), message: `listener ${l.listener.name}: ${l.resolvedRefsReason}: ${l.resolvedRefsMessage}` });
      }
    }
    const before = options.previous?.gateway(g.gateway.metadata.namespace as string, g.gateway.metadata.name);
    const gatewayConditions = [condition('Accepted', g.accepted, g.acceptedReason, g.acceptedMessage, gen), gatewayProgrammed(g, gen)];
    // ResolvedRefs of the Gateway itself: reported when it names a backend client certificate.
    const client = clientCertificates.get(g.gateway);
    if (g.gateway.spec.tls?.backend?.clientCertificateRef && client) {
      gatewayConditions.push(client.ok ? condition('ResolvedRefs', true, 'ResolvedRefs', 'All references are resolved', gen) : condition('ResolvedRefs', false, client.reason, client.message, gen));
      if (!client.ok) problems.push({ kind: 'Gateway', object: key(g.gateway), message: `${client.reason}: ${client.message}` });
    }
    statuses.push({
      apiVersion: g.gateway.apiVersion,
      kind: g.gateway.kind,
      metadata: statusMetadata(g.gateway),
      status: {
        addresses: g.addresses.map((value) => ({ type: 'IPAddress', value })),
        conditions: mergeConditions(before?.conditions, [...gatewayConditions, ...[insecureFrontendCondition(g, gen)].filter((c) => c !== null)], options.now),
        listeners: g.listeners.map((l) => ({
          name: l.listener.name,
          supportedKinds: l.supportedKinds,
          attachedRoutes: l.attachedRoutes,
          conditions: mergeConditions(
            before?.listeners.find((p) => p.name === l.listener.name)?.conditions,
            listenerConditions(l, gen),
            options.now,
          ),
        })),
      },
    });
  }
  for (const s of routeStates) {
    const before = options.previous?.httpRoute(s.route.metadata.namespace as string, s.route.metadata.name);
    // A route state reused from the memo produces the same status again when the previous
    // status passed in is the one it produced (mergeConditions of the same conditions is that
    // status): handed out again, nothing per route is allocated.
    const last = envMemo ? routeOutputs.get(s) : undefined;
    if (last && before !== undefined && last.status.status === before) {
      statuses.push(last.status);
      for (const p of last.problems) problems.push(p);
      continue;
    }
    const routeProblems: Problem[] = [];
    for (const p of s.parents) {
      const bad = p.conditions.find((c) => c.status !== 'True' && c.type === 'Accepted');
      if (bad) routeProblems.push({ kind: 'HTTPRoute', object: key(s.route), message: `parent ${p.ref.namespace}/${p.ref.name}: ${bad.reason}: ${bad.message}` });
    }
    const status = freezeRouteStatus({
      apiVersion: s.route.apiVersion,
      kind: s.route.kind,
      metadata: statusMetadata(s.route),
      status: {
        parents: s.parents.map((p) => ({
          parentRef: p.ref,
          controllerName: CONTROLLER_NAME,
          conditions: mergeConditions(previousParent(before, p.ref)?.conditions, p.conditions, options.now),
        })),
      },
    });
    if (envMemo) routeOutputs.set(s, { status, problems: routeProblems });
    statuses.push(status);
    for (const p of routeProblems) problems.push(p);
  }

  // BackendTLSPolicies: an ancestor entry per Gateway whose accepted routes use a target.
  const ancestors = new Map<string, Set<string>>();
  // Without policies there is no status to write: the walk is skipped.
  for (const att of (snapshot.backendTLSPolicies ?? []).length ? attachments : []) {
    const state = att.state;
    const used = [...state.backends.flat(), ...state.mirrors.flat().map((m) => m.resolution)];
    for (const b of used) {
      if (!b.ok) continue;
      const k = `${b.namespace}/${b.name}`;
      const set = ancestors.get(k) ?? new Set<string>();
      set.add(key(att.listener.gateway));
      ancestors.set(k, set);
    }
  }
  for (const s of backendTls.statuses(ancestors, options.now, options.previous)) {
    statuses.push(s);
    for (const a of s.status.ancestors) {
      const bad = a.conditions.find((c) => c.status !== 'True');
      if (bad) problems.push({ kind: 'BackendTLSPolicy', object: `${s.metadata.namespace}/${s.metadata.name}`, message: `ancestor ${a.ancestorRef.namespace}/${a.ancestorRef.name}: ${bad.reason}: ${bad.message}` });
    }
  }

  // Objects that failed their schema: a problem each, and status where they are ours.
  // Problems read like those of accepted objects ("parent ns/gw: Reason: message") wherever a
  // status names a reason, so one reader handles both.
  const ourGateway = (ns: string, name: string) => gatewayByKey.has(`${ns}/${name}`);
  const reported = new Map<string, string>();
  for (const s of rejectedStatuses(snapshot.rejected ?? [], (c) => classes.has(c), ourGateway, options.now, options.previous)) {
    statuses.push(s);
    const id = `${s.kind} ${s.metadata.namespace}/${s.metadata.name}`;
    if (s.kind === 'HTTPRoute') {
      reported.set(id, s.status.parents.map((p) => `parent ${p.parentRef.namespace}/${p.parentRef.name}: UnsupportedValue`).join(', '));
    } else {
      reported.set(id, s.status.conditions[0].reason);
    }
  }
  for (const r of snapshot.rejected ?? []) {
    const prefix = reported.get(`${r.kind} ${r.namespace}/${r.name}`);
    problems.push({ kind: r.kind as Problem['kind'], object: r.display, message: prefix ? `${prefix}: ${rejectedMessage(r)}` : rejectedMessage(r) });
  }

  const leftOut = new Map<string, { address: string; port: number }>();
  for (const l of gateways.flatMap((g) => (g.accepted ? g.listeners : []))) {
    if (!l.usable) continue;
    for (const u of l.unavailable) leftOut.set(socketKey(u.address, l.listener.port), { address: u.address, port: l.listener.port });
  }
  memo?.endUse();
  return {
    // No routeGenerations: those are for a data plane to report which generation of a route
    // it serves, and data planes get per-Gateway IRs (gatewayIRs). At 5 000 routes building the
    // record was a few ms of every route change.
    ir: { version: IR_VERSION, sockets: combined.sockets, services: combined.services },
    gateways: gatewayIRs,
    statuses,
    problems,
    leftOutSockets: [...leftOut.values()],
  };
}

/** What translate() derives from everything but the HTTPRoutes (see deriveEnvironment). */
interface Environment {
  gateways: GatewayState[];
  gatewayByKey: Map<string, GatewayState>;
  backendTls: BackendTlsPolicies;
  index: BackendIndex;
  clientCertificates: Map<Gateway, ClientCertificateResolution>;
  namespaceLabels: Map<string, Record<string, string>>;
}

/** One route's evaluation: its state, and where it attaches when accepted. */
interface Evaluation {
  state: RouteState;
  attachments: Attachment[];
}

/** A route's validated rules, and why it is rejected whole (invalid value, PCRE2, VCL), if it is. */
interface RouteValidity {
  rules: ValidRule[] | null;
  invalidMessage?: string;
}

function routeValidity(route: HTTPRoute, options: TranslateOptions): RouteValidity {
  const memo = options.memo;
  let rules: ValidRule[];
  if (memo) {
    const v = memo.validation(route, validateRoute);
    if (v.rules === null) return { rules: null, invalidMessage: v.error };
    rules = v.rules;
  } else {
    try {
      rules = validateRoute(route);
    } catch (err) {
      if (!(err instanceof RouteValueError)) throw err;
      return { rules: null, invalidMessage: err.message };
    }
  }
  // The verdicts and the rejected routes change from call to call: never remembered.
  const rejected = (options.regexVerdicts && pcreProblem(route, options.regexVerdicts, memo?.regexes(route))) || options.rejectedRoutes?.(route);
  return rejected ? { rules, invalidMessage: rejected } : { rules };
}

function evaluateRoute(
  route: HTTPRoute,
  validity: () => RouteValidity,
  gateways: Map<string, GatewayState>,
  index: BackendIndex,
  namespaceLabels: Map<string, Record<string, string>>,
): Evaluation | null {
  const routeNs = route.metadata.namespace as string;
  const gen = generation(route);
  const refs = (route.spec.parentRefs ?? [])
    .map((r) => ({ ...r, group: r.group ?? GATEWAY_GROUP, kind: r.kind ?? 'Gateway', namespace: r.namespace ?? routeNs }))
    .filter((r) => r.group === GATEWAY_GROUP && r.kind === 'Gateway' && gateways.has(`${r.namespace}/${r.name}`));
  if (refs.length === 0) return null; // Not ours: another controller (or nobody) reports on it.

  const state: RouteState = { route, rules: null, backends: [], mirrors: [], parents: [] };
  const checked = validity();
  state.rules = checked.rules;
  if (checked.invalidMessage !== undefined) state.invalidMessage = checked.invalidMessage;
  const attachments: Attachment[] = [];
  let refsOk = true;
  let refsReason = 'ResolvedRefs';
  let refsMessage = 'All references are resolved';
  for (const [i, rule] of (route.spec.rules ?? []).entries()) {
    const resolved = (rule.backendRefs ?? []).map((b) => resolveBackendRef(route, b, index));
    state.backends.push(resolved);
    const mirrors = (state.rules?.[i]?.mirrors ?? []).map((m) => ({ resolution: resolveBackendRef(route, m.ref, index), percent: m.percent }));
    state.mirrors.push(mirrors);
    const bad = [...resolved, ...mirrors.map((m) => m.resolution)].find((b) => !b.ok);
    if (bad && !bad.ok && refsOk) {
      refsOk = false;
      refsReason = bad.reason === 'UnsupportedValue' ? 'BackendNotFound' : bad.reason;
      refsMessage = bad.message;
    }
  }
  if (state.backends.length === 0) state.backends.push([]);

  for (const ref of refs) {
    const gw = gateways.get(`${ref.namespace}/${ref.name}`) as GatewayState;
    const candidates = gw.listeners.filter(
      (l) => (ref.sectionName === undefined || l.listener.name === ref.sectionName) && (ref.port === undefined || l.listener.port === ref.port),
    );
    let accepted: [boolean, string, string];
    const local: Attachment[] = [];
    if (candidates.length === 0) {
      accepted = [false, 'NoMatchingParent', describeMissingListener(ref)];
    } else {
      const allowed = candidates.filter(
        (l) =>
          l.usable &&
          l.supportedKinds.some((k) => k.kind === 'HTTPRoute') &&
          namespaceAllowed(l.listener.allowedRoutes, gw.gateway.metadata.namespace as string, routeNs, namespaceLabels),
      );
      if (allowed.length === 0) {
        accepted = [false, 'NotAllowedByListeners', `no listener of ${ref.namespace}/${ref.name} allows this route`];
      } else {
        for (const l of allowed) {
          const hostnames = intersectHostnames(l.listener.hostname, route.spec.hostnames ?? []);
          if (hostnames.length) local.push({ route, state, listener: l, hostnames });
        }
        accepted = local.length
          ? [true, 'Accepted', 'Route is accepted']
          : [false, 'NoMatchingListenerHostname', 'no listener hostname intersects the route hostnames'];
      }
    }
    if (accepted[0] && state.invalidMessage !== undefined) {
      accepted = [false, 'UnsupportedValue', state.invalidMessage];
    }
    if (accepted[0]) attachments.push(...local);
    const parentRef: ParentReference = { group: ref.group, kind: ref.kind, namespace: ref.namespace, name: ref.name };
    if (ref.sectionName !== undefined) parentRef.sectionName = ref.sectionName;
    if (ref.port !== undefined) parentRef.port = ref.port;
    state.parents.push({
      ref: parentRef,
      conditions: [condition('Accepted', ...accepted, gen), condition('ResolvedRefs', refsOk, refsReason, refsMessage, gen)],
    });
  }
  return { state, attachments };
}

function describeMissingListener(ref: ParentReference): string {
  const parts = [];
  if (ref.sectionName !== undefined) parts.push(`sectionName ${ref.sectionName}`);
  if (ref.port !== undefined) parts.push(`port ${ref.port}`);
  return `Gateway ${ref.namespace}/${ref.name} has no listener with ${parts.join(' and ')}`;
}

type RouteBuilder = (att: Attachment, rule: ValidRule, matchIndex: number) => IRRoute;
type Ranked = RankedMatch & { route: IRRoute };

/**
 * One socket per address:port. A request first picks the most specific listener whose
 * hostname matches it (listener isolation), then the most specific route hostname among that
 * listener's routes. Both steps fold into one lookup: each vhost key belongs to the listener
 * that would be chosen for it, and every listener's own hostname is a key, so a host never
 * falls through to a less specific listener's routes.
 */
function buildSockets(
  gateways: GatewayState[],
  attachments: Attachment[],
  build: RouteBuilder,
  memo?: TableMemo<Attachment, Ranked>,
): IRSocket[] {
  const byAddress = new Map<string, { address: string; port: number; listeners: ListenerState[] }>();
  for (const g of gateways) {
    for (const l of g.listeners) {
      if (!l.usable || l.noCertificate) continue;
      for (const address of l.addresses) {
        if (l.unavailable.some((u) => u.address === address)) continue;
        const k = `${address}|${l.listener.port}`;
        const entry = byAddress.get(k) ?? { address, port: l.listener.port, listeners: [] };
        entry.listeners.push(l);
        byAddress.set(k, entry);
      }
    }
  }
  const sockets: IRSocket[] = [];
  const sorted = [...byAddress.values()].sort(compareSocketAddresses);
  const names = socketNames(sorted);
  for (const [i, s] of sorted.entries()) {
    const name = names[i];
    const owner = (pattern: string): ListenerState | undefined => {
      let best: ListenerState | undefined;
      for (const l of s.listeners) {
        if (!patternCovers(l.hostname, pattern)) continue;
        if (!best || specificity(l.hostname) > specificity(best.hostname)) best = l;
      }
      return best;
    };
    // With a memo, what an attachment contributes to this socket and the sorted vhosts are
    // reused while the environment (hence this socket's listeners) is the same.
    const socketMemo: SocketMemo<Attachment, Ranked> | undefined = memo?.socket(`${s.address}|${s.port}`);
    // Per hostname, its listener and the ranked entries reaching it. A hostname with one
    // contribution takes that contribution's array as it is (`own` false), the common case of
    // one route per host: a change then allocates nothing per unchanged host, and the memo
    // below recognises the same array. A second contribution makes it a copy of its own.
    const vhosts = new Map<string, { listener: ListenerState; ranked: readonly Ranked[]; own: boolean }>();
    const vhostFor = (hostname: string, l: ListenerState) => {
      let v = vhosts.get(hostname);
      if (!v) {
        v = { listener: l, ranked: NO_RANKED, own: false };
        vhosts.set(hostname, v);
      }
      return v;
    };
    for (const l of s.listeners) vhostFor(l.hostname, l);
    const listeners = new Set(s.listeners);
    for (const att of attachments) {
      if (!listeners.has(att.listener)) continue;
      let contributions = socketMemo?.contributions.get(att);
      if (!contributions) {
        contributions = [];
        const rules = att.state.rules ?? [];
        for (const hostname of att.hostnames) {
          if (owner(hostname) !== att.listener) continue;
          const ranked: Ranked[] = [];
          for (const rule of rules) {
            rule.matches.forEach((m, matchIndex) => {
              ranked.push({
                match: m,
                routeCreated: att.route.metadata.creationTimestamp ?? '',
                routeKey: routeKey(att.route),
                ruleIndex: rule.index,
                matchIndex,
                route: build(att, rule, matchIndex),
              });
            });
          }
          contributions.push({ hostname, ranked });
        }
        socketMemo?.contributions.set(att, contributions);
      }
      for (const c of contributions) {
        const v = vhostFor(c.hostname, att.listener);
        if (v.ranked.length === 0) {
          v.ranked = c.ranked;
        } else {
          if (!v.own) {
            v.ranked = [...v.ranked];
            v.own = true;
          }
          for (const r of c.ranked) (v.ranked as Ranked[]).push(r);
        }
      }
    }
    // Sorts a copy: the entries may be a contribution's own array.
    const sortRanked = (ranked: readonly Ranked[]) => [...ranked].sort(compareMatches).map((r) => r.route);
    let list: IRVirtualHost[];
    if (socketMemo) {
      list = socketMemo.sortedHostnames(vhosts).map((hostname) => {
        const { listener, ranked } = vhosts.get(hostname) as { listener: ListenerState; ranked: readonly Ranked[] };
        return socketMemo.vhost(hostname, listener.id, ranked, sortRanked);
      });
    } else {
      list = [...vhosts].map(([hostname, { listener, ranked }]) => ({ hostname, listener: listener.id, routes: sortRanked(ranked) }));
      list.sort((a, b) => (a.hostname < b.hostname ? -1 : a.hostname > b.hostname ? 1 : 0));
    }
    const socket: IRSocket = { name, address: s.address, port: s.port, vhosts: list };
    // Listeners sharing an address:port agree on protocol (markConflicts), so one HTTPS
    // listener makes the whole socket TLS; its certificates are all its listeners' together.
    if (s.listeners.some((l) => l.listener.protocol === 'HTTPS')) {
      const seen = new Set<string>();
      const certificates = s.listeners.flatMap((l) => l.certificates ?? []).filter((c) => {
        const k = `${c.namespace}/${c.name}`;
        if (seen.has(k)) return false;
        seen.add(k);
        return true;
      });
      socket.tls = { certificates, listeners: [...new Set(s.listeners.map((l) => l.hostname))] };
      // Every HTTPS listener here has the same TLS settings (markTlsSettingConflicts).
      const first = s.listeners.find((l) => l.listener.protocol === 'HTTPS');
      if (first?.clientValidation) socket.tls.clientValidation = first.clientValidation;
      if (first?.tlsOptions) socket.tls.options = first.tlsOptions;
    }
    sockets.push(socket);
  }
  return sockets;
}

function sortObjects<T extends { metadata: { name: string; namespace?: string; creationTimestamp?: string } }>(list: T[]): T[] {
  return [...list].sort((a, b) => {
    const ta = a.metadata.creationTimestamp ?? '';
    const tb = b.metadata.creationTimestamp ?? '';
    if (ta !== tb) return ta < tb ? -1 : 1;
    const ka = key(a);
    const kb = key(b);
    return ka < kb ? -1 : ka > kb ? 1 : 0;
  });
}

/**
 * What a memoised route state last produced: its status and problems. Keyed by the state, which
 * lives as long as the environment memo reuses it, so entries go with their states.
 */
const routeOutputs = new WeakMap<RouteState, { status: HTTPRouteObjectStatus; problems: Problem[] }>();

/** No ranked entries yet (shared, never written to). */
const NO_RANKED: readonly Ranked[] = Object.freeze([]);

function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function key(o: { metadata: { name: string; namespace?: string } }): string {
  return o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : o.metadata.name;
}

/**
 * key(route), remembered per route object: route objects keep their identity while unchanged,
 * and a change would otherwise build (and hash, as a record key) thousands of these strings.
 */
const routeKeys = new WeakMap<HTTPRoute, string>();
function routeKey(route: HTTPRoute): string {
  let k = routeKeys.get(route);
  if (k === undefined) {
    k = key(route);
    routeKeys.set(route, k);
  }
  return k;
}

function generation(o: { metadata: { generation?: number } }): number {
  return o.metadata.generation ?? 1;
}

function statusMetadata(o: GatewayClass | Gateway | HTTPRoute): StatusMetadata {
  return o.metadata.namespace
    ? { name: o.metadata.name, namespace: o.metadata.namespace, generation: generation(o) }
    : { name: o.metadata.name, generation: generation(o) };
}
