// The status assertions of the upstream tests (kubernetes helpers such as HTTPRouteMustHaveParents,
// HTTPRouteMustHaveCondition, GatewayListenersMustHaveConditions, GatewayStatusMustHaveListeners,
// HTTPRouteMustHaveNoAcceptedParents, GatewayMustHaveZeroRoutes, *MustHaveLatestConditions),
// evaluated against the documents `vgw check` prints. Pure, for unit tests.
import { parseAllDocuments } from 'yaml';
import { CONTROLLER_NAME } from '../../src/gatewayapi/features.ts';
import type { Condition, StatusCheck } from './data.ts';

export interface StatusDoc {
  apiVersion?: string;
  kind: string;
  metadata: { name: string; namespace?: string; generation?: number; labels?: Record<string, string>; annotations?: Record<string, string> };
  // Spec and status are whatever the API or `vgw check` gave; each check narrows what it reads.
  spec?: any;
  status?: any;
}

export interface CheckOutcome {
  label: string;
  failure?: string;
}

/** An expected condition; no status or no reason matches any (upstream findConditionInList). */
interface ExpectedCondition {
  type: string;
  status?: string;
  reason?: string;
}

interface ActualCondition {
  type?: string;
  status?: string;
  reason?: string;
  observedGeneration?: number;
}

const GROUP = 'gateway.networking.k8s.io';

export function parseStatusStream(text: string): StatusDoc[] {
  const out: StatusDoc[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length) throw new Error(`check output is not YAML: ${doc.errors[0].message}`);
    const v = doc.toJS() as StatusDoc | null;
    if (v && typeof v === 'object' && v.kind && v.metadata?.name) out.push(v);
  }
  return out;
}

/** Spec listener names per Gateway ("ns/name"), so "all listeners" can be held to the spec. */
export type SpecListeners = Map<string, string[]>;

export function specListeners(world: { objects: readonly { kind: string; metadata: { name: string; namespace?: string }; spec?: any }[] }): SpecListeners {
  const out: SpecListeners = new Map();
  for (const o of world.objects) {
    if (o.kind !== 'Gateway') continue;
    out.set(`${o.metadata.namespace ?? 'default'}/${o.metadata.name}`, (o.spec?.listeners ?? []).map((l: { name: string }) => l.name));
  }
  return out;
}

export function evaluateStatusCheck(check: StatusCheck, docs: StatusDoc[], specListeners: SpecListeners = new Map()): CheckOutcome {
  const label = describeCheck(check);
  try {
    const failure = evaluate(check, docs, specListeners);
    return failure === undefined ? { label } : { label, failure };
  } catch (err) {
    return { label, failure: (err as Error).message };
  }
}

function evaluate(check: StatusCheck, docs: StatusDoc[], specListeners: SpecListeners): string | undefined {
  switch (check.check) {
    case 'HTTPRouteParentAccepted':
      return routeParentAccepted(docs, str(check.route), str(check.parent), check.condition as Condition);
    case 'HTTPRouteCondition':
      return routeCondition(docs, str(check.route), str(check.parent), check.condition as Condition);
    case 'HTTPRouteParents':
      return routeParents(docs, str(check.route), check.parents as ExpectedParent[]);
    case 'GatewayListenersConditions': {
      if (check.listeners !== 'all') return `unsupported listeners selector ${JSON.stringify(check.listeners)}`;
      return gatewayListenersConditions(docs, str(check.gateway), undefined, check.conditions as Condition[], specListeners);
    }
    case 'GatewayListenerConditions':
      return gatewayListenersConditions(docs, str(check.gateway), str(check.listener), check.conditions as Condition[], specListeners);
    case 'GatewayStatusListeners':
      return gatewayStatusListeners(docs, str(check.gateway), check.listeners as ExpectedListener[]);
    case 'GatewayCondition': {
      const gw = find(docs, 'Gateway', str(check.gateway));
      return conditionsFailure([check.condition as Condition], gw.status?.conditions, gw, 'Gateway conditions');
    }
    case 'GatewayClassCondition': {
      const gwc = find(docs, 'GatewayClass', str(check.gatewayClass));
      return conditionsFailure([check.condition as ExpectedCondition], gwc.status?.conditions, gwc, 'GatewayClass conditions');
    }
    case 'HTTPRouteNoAcceptedParents':
      return noAcceptedParents(find(docs, 'HTTPRoute', str(check.route)));
    case 'GatewayZeroRoutes':
      return zeroRoutes(find(docs, 'Gateway', str(check.gateway)));
    case 'LatestObservedGeneration':
      return latestObservedGeneration(find(docs, str(check.kind), str(check.object)), check.generation);
    case 'GatewayInfrastructureMetadata':
      return infrastructureMetadata(docs, str(check.gateway));
    case 'BackendTLSPolicyCondition':
      return policyAncestorCondition(find(docs, 'BackendTLSPolicy', str(check.policy)), str(check.ancestor), check.condition as Condition);
    case 'GatewayAddress': {
      const gw = find(docs, 'Gateway', str(check.gateway));
      const addrs: { value?: string }[] = gw.status?.addresses ?? [];
      return addrs.some((a) => a?.value) ? undefined : 'status.addresses is empty';
    }
    default:
      return `unknown status check kind ${JSON.stringify(check.check)}`;
  }
}

function routeParentAccepted(docs: StatusDoc[], routeRef: string, gwRef: string, cond: Condition): string | undefined {
  const route = find(docs, 'HTTPRoute', routeRef);
  const [gwNs, gwName] = splitRef(gwRef);
  const routeNs = route.metadata.namespace ?? 'default';
  const candidates = parentsFor(route, gwNs, gwName);
  if (candidates.length === 0) return `no status.parents entry for Gateway ${gwRef} (${parentSummary(route)})`;
  let firstFailure: string | undefined;
  for (const p of candidates) {
    const failure = parentFailure(p, route, { group: GROUP, kind: 'Gateway', namespace: gwNs, name: gwName }, routeNs !== gwNs, [cond], false);
    if (failure === undefined) return undefined;
    firstFailure ??= failure;
  }
  return firstFailure;
}

function routeCondition(docs: StatusDoc[], routeRef: string, gwRef: string, cond: Condition): string | undefined {
  const route = find(docs, 'HTTPRoute', routeRef);
  const [gwNs, gwName] = splitRef(gwRef);
  const parents: any[] = route.status?.parents ?? [];
  for (const p of parents) {
    const stale = generationFailure(p?.conditions, route);
    if (stale) return `parent ${refString(p?.parentRef)}: ${stale}`;
  }
  const matching = parents.filter((p) => p?.parentRef?.name === gwName && (p.parentRef.namespace === undefined || p.parentRef.namespace === gwNs));
  if (matching.length === 0) return `no status.parents entry for Gateway ${gwRef} (${parentSummary(route)})`;
  if (matching.some((p) => conditionsFailure([cond], p.conditions, route, '') === undefined)) return undefined;
  return conditionsFailure([cond], matching[0].conditions, route, `parent ${gwRef}`);
}

// upstream BackendTLSPolicyMustHaveCondition: the policy's status.ancestors entry for the Gateway
// carries the condition, at the policy's current generation.
function policyAncestorCondition(policy: StatusDoc, gwRef: string, cond: Condition): string | undefined {
  const [gwNs, gwName] = splitRef(gwRef);
  const policyNs = policy.metadata.namespace ?? 'default';
  const ancestors: any[] = policy.status?.ancestors ?? [];
  const entry = ancestors.find((a) => a?.ancestorRef?.name === gwName && (a.ancestorRef.namespace ?? policyNs) === gwNs && (a.ancestorRef.kind ?? 'Gateway') === 'Gateway');
  if (!entry) return `no status.ancestors entry for Gateway ${gwRef} (ancestors: ${ancestors.map((a) => refString(a?.ancestorRef)).join(', ') || 'none'})`;
  return conditionsFailure([cond], entry.conditions, policy, `ancestor ${gwRef}`);
}

// upstream HTTPRouteMustHaveNoAcceptedParents: no parent entries, or exactly one whose Accepted
// condition is False.
function noAcceptedParents(route: StatusDoc): string | undefined {
  const parents: any[] = route.status?.parents ?? [];
  if (parents.length === 0) return undefined;
  if (parents.length > 1) return `expected no parents or one not accepted parent, got ${parents.length} (${parentSummary(route)})`;
  return conditionsFailure([{ type: 'Accepted', status: 'False' }], parents[0]?.conditions, route, `parent ${refString(parents[0]?.parentRef)}`);
}

// upstream GatewayMustHaveZeroRoutes: no listener statuses, or exactly one with no attached routes.
function zeroRoutes(gw: StatusDoc): string | undefined {
  const stale = generationFailure(gw.status?.conditions, gw);
  if (stale) return `Gateway conditions: ${stale}`;
  const listeners: any[] = gw.status?.listeners ?? [];
  if (listeners.length === 0) return undefined;
  if (listeners.length > 1) return `expected no listener statuses or exactly one, got ${listeners.length}`;
  return listeners[0]?.attachedRoutes === 0 ? undefined : `listener ${listeners[0]?.name}: attachedRoutes ${listeners[0]?.attachedRoutes}, expected 0`;
}

// upstream *MustHaveLatestConditions, applied to every condition list in the status: the object's
// own, each listener's and each route parent's.
function latestObservedGeneration(doc: StatusDoc, generation: unknown): string | undefined {
  if (generation !== undefined && doc.metadata.generation !== generation) {
    return `metadata.generation ${doc.metadata.generation ?? '(none)'}, expected ${JSON.stringify(generation)}`;
  }
  const lists: [string, ActualCondition[] | undefined][] = [
    [`${doc.kind} conditions`, doc.status?.conditions],
    ...((doc.status?.listeners ?? []) as any[]).map((l): [string, ActualCondition[] | undefined] => [`listener ${l?.name}`, l?.conditions]),
    ...((doc.status?.parents ?? []) as any[]).map((p): [string, ActualCondition[] | undefined] => [`parent ${refString(p?.parentRef)}`, p?.conditions]),
    ...((doc.status?.ancestors ?? []) as any[]).map((a): [string, ActualCondition[] | undefined] => [`ancestor ${refString(a?.ancestorRef)}`, a?.conditions]),
  ];
  if (lists.every(([, l]) => !l?.length)) return 'status has no conditions';
  for (const [where, list] of lists) {
    const stale = generationFailure(list, doc);
    if (stale) return `${where}: ${stale}`;
  }
  return undefined;
}

interface ExpectedParent {
  parentRef: { group?: string; kind?: string; namespace?: string; name: string; sectionName?: string; port?: number };
  controllerName?: string;
  conditions: Condition[];
}

function routeParents(docs: StatusDoc[], routeRef: string, expected: ExpectedParent[]): string | undefined {
  const route = find(docs, 'HTTPRoute', routeRef);
  const actual: any[] = route.status?.parents ?? [];
  if (actual.length !== expected.length) return `expected ${expected.length} status.parents entries, got ${actual.length} (${parentSummary(route)})`;
  for (let i = 0; i < expected.length; i++) {
    const failure = parentFailure(actual[i], route, expected[i].parentRef, true, expected[i].conditions, true, expected[i].controllerName);
    if (failure) return `parents[${i}]: ${failure}`;
  }
  return undefined;
}

// upstream parentsForRouteMatch for one entry: group and kind must be spelled out in status,
// namespace too unless the route lives in the Gateway's namespace.
function parentFailure(
  actual: any,
  route: StatusDoc,
  want: ExpectedParent['parentRef'],
  namespaceRequired: boolean,
  conditions: Condition[],
  exactSection: boolean,
  controllerName = CONTROLLER_NAME,
): string | undefined {
  const ref = actual?.parentRef ?? {};
  if (actual?.controllerName !== controllerName) return `controllerName ${JSON.stringify(actual?.controllerName)}, expected ${JSON.stringify(controllerName)}`;
  if ((want.group ?? GROUP) !== ref.group) return `parentRef.group ${JSON.stringify(ref.group)}, expected ${JSON.stringify(want.group ?? GROUP)}`;
  if ((want.kind ?? 'Gateway') !== ref.kind) return `parentRef.kind ${JSON.stringify(ref.kind)}, expected ${JSON.stringify(want.kind ?? 'Gateway')}`;
  if (want.name !== ref.name) return `parentRef.name ${JSON.stringify(ref.name)}, expected ${JSON.stringify(want.name)}`;
  if (want.namespace !== ref.namespace && (namespaceRequired || ref.namespace !== undefined)) {
    return `parentRef.namespace ${JSON.stringify(ref.namespace)}, expected ${JSON.stringify(want.namespace)}`;
  }
  if (exactSection && want.sectionName !== ref.sectionName) return `parentRef.sectionName ${JSON.stringify(ref.sectionName)}, expected ${JSON.stringify(want.sectionName)}`;
  return conditionsFailure(conditions, actual?.conditions, route, '');
}

interface ExpectedListener {
  name: string;
  supportedKinds: string[];
  conditions: ExpectedCondition[];
  attachedRoutes: number;
}

function gatewayStatusListeners(docs: StatusDoc[], gwRef: string, expected: ExpectedListener[]): string | undefined {
  const gw = find(docs, 'Gateway', gwRef);
  const actual: any[] = gw.status?.listeners ?? [];
  if (actual.length !== expected.length) return `expected ${expected.length} listener statuses, got ${actual.length}`;
  for (const want of expected) {
    const got = actual.find((l) => l?.name === want.name);
    if (!got) return `no status for listener ${want.name}`;
    // As upstream: an empty expected list must be empty, otherwise each expected kind must be
    // present (an implementation may support more kinds than a test names); no group means the
    // Gateway API group.
    const kinds: { group?: string; kind?: string }[] = got.supportedKinds ?? [];
    const gotKinds = kinds.map((k) => `${k.group ?? GROUP}/${k.kind ?? ''}`);
    const missing = want.supportedKinds.filter((k) => !gotKinds.includes(k));
    if ((want.supportedKinds.length === 0 && gotKinds.length > 0) || missing.length > 0) {
      return `listener ${want.name}: supportedKinds [${gotKinds.join(', ')}], expected ${want.supportedKinds.length ? `to include [${missing.join(', ')}]` : '[]'}`;
    }
    if (got.attachedRoutes !== want.attachedRoutes) return `listener ${want.name}: attachedRoutes ${got.attachedRoutes}, expected ${want.attachedRoutes}`;
    const failure = conditionsFailure(want.conditions, got.conditions, gw, `listener ${want.name}`);
    if (failure) return failure;
  }
  return undefined;
}

function gatewayListenersConditions(docs: StatusDoc[], gwRef: string, only: string | undefined, conditions: ExpectedCondition[], specListeners: SpecListeners): string | undefined {
  const gw = find(docs, 'Gateway', gwRef);
  const actual: any[] = gw.status?.listeners ?? [];
  const names = only ? [only] : (specListeners.get(gwRef) ?? actual.map((l) => String(l?.name)));
  if (names.length === 0) return 'no listener statuses';
  for (const name of names) {
    const got = actual.find((l) => l?.name === name);
    if (!got) return `no status for listener ${name}`;
    const failure = conditionsFailure(conditions, got.conditions, gw, `listener ${name}`);
    if (failure) return failure;
  }
  return undefined;
}

function conditionsFailure(expected: ExpectedCondition[], actual: ActualCondition[] | undefined, owner: StatusDoc, where: string): string | undefined {
  const list = actual ?? [];
  const prefix = where ? `${where}: ` : '';
  for (const want of expected) {
    const got = list.find((c) => c?.type === want.type);
    if (!got) return `${prefix}no ${want.type} condition (have ${conditionSummary(list)})`;
    if ((want.status && got.status !== want.status) || (want.reason && got.reason !== want.reason)) {
      return `${prefix}${want.type}=${got.status}/${got.reason ?? ''}, expected ${conditionString(want)}`;
    }
  }
  const stale = generationFailure(list, owner);
  return stale ? `${prefix}${stale}` : undefined;
}

function generationFailure(conditions: ActualCondition[] | undefined, owner: StatusDoc): string | undefined {
  const gen = owner.metadata.generation;
  if (typeof gen !== 'number') return 'metadata.generation missing';
  const stale = (conditions ?? []).find((c) => c?.observedGeneration !== gen);
  return stale ? `${stale.type} observedGeneration ${stale.observedGeneration}, metadata.generation ${gen}` : undefined;
}

function parentsFor(route: StatusDoc, gwNs: string, gwName: string): any[] {
  const routeNs = route.metadata.namespace ?? 'default';
  const parents: any[] = route.status?.parents ?? [];
  return parents.filter((p) => p?.parentRef?.name === gwName && (p.parentRef.namespace ?? routeNs) === gwNs && (p.parentRef.kind ?? 'Gateway') === 'Gateway');
}

// upstream GatewayInfrastructure: the first ServiceAccount, Pod and Service (whichever exist, at
// least one) labelled with the Gateway's name carry every spec.infrastructure label and annotation.
function infrastructureMetadata(docs: StatusDoc[], gwRef: string): string | undefined {
  const gw = find(docs, 'Gateway', gwRef);
  const stale = generationFailure(gw.status?.conditions, gw);
  if (stale) return `Gateway conditions: ${stale}`;
  const [ns, name] = splitRef(gwRef);
  const want = { labels: gw.spec?.infrastructure?.labels ?? {}, annotations: gw.spec?.infrastructure?.annotations ?? {} };
  const problems: string[] = [];
  let found = 0;
  for (const kind of ['ServiceAccount', 'Pod', 'Service']) {
    const generated = docs.find((d) => d.kind === kind && d.metadata.namespace === ns && d.metadata.labels?.['gateway.networking.k8s.io/gateway-name'] === name);
    if (!generated) continue;
    found++;
    for (const field of ['labels', 'annotations'] as const) {
      const have: Record<string, string> = generated.metadata[field] ?? {};
      const missing = Object.entries(want[field] as Record<string, string>).filter(([k, v]) => have[k] !== v);
      if (missing.length) problems.push(`${kind} ${generated.metadata.name} lacks ${field} ${missing.map(([k, v]) => `${k}=${v}`).join(', ')}`);
    }
  }
  if (found === 0) return `no ServiceAccount, Pod or Service labelled gateway-name=${name} in ${ns}`;
  return problems.length ? problems.join('; ') : undefined;
}

function find(docs: StatusDoc[], kind: string, ref: string): StatusDoc {
  const [ns, name] = splitRef(ref);
  const doc = docs.find((d) => d.kind === kind && d.metadata.name === name && (d.metadata.namespace ?? 'default') === ns);
  if (!doc) throw new Error(`${kind} ${ref} is not in the check output`);
  return doc;
}

function splitRef(ref: string): [string, string] {
  const i = ref.indexOf('/');
  return i < 0 ? ['default', ref] : [ref.slice(0, i), ref.slice(i + 1)];
}

function str(v: unknown): string {
  if (typeof v !== 'string') throw new Error(`malformed status check: expected a string, got ${JSON.stringify(v)}`);
  return v;
}

function refString(ref: any): string {
  if (!ref) return '(no parentRef)';
  return `${ref.namespace ? `${ref.namespace}/` : ''}${ref.name}${ref.sectionName ? `#${ref.sectionName}` : ''}`;
}

function parentSummary(route: StatusDoc): string {
  const parents: any[] = route.status?.parents ?? [];
  if (parents.length === 0) return 'status.parents is empty';
  return `parents: ${parents.map((p) => `${refString(p?.parentRef)} [${conditionSummary(p?.conditions ?? [])}]`).join('; ')}`;
}

function conditionSummary(list: ActualCondition[]): string {
  return list.length ? list.map((c) => `${c.type}=${c.status}/${c.reason ?? ''}`).join(', ') : 'none';
}

function conditionString(c: ExpectedCondition): string {
  return `${c.type}=${c.status ?? '(any)'}${c.reason ? `/${c.reason}` : ''}`;
}

export function describeCheck(check: StatusCheck): string {
  const cond = (c: unknown) => (c ? conditionString(c as ExpectedCondition) : '');
  switch (check.check) {
    case 'HTTPRouteParentAccepted':
    case 'HTTPRouteCondition':
      return `${check.check} ${check.route} @ ${check.parent}: ${cond(check.condition)}`;
    case 'HTTPRouteParents':
      return `${check.check} ${check.route}: ${(check.parents as ExpectedParent[]).map((p) => `${p.parentRef.name} ${p.conditions.map(cond).join(',')}`).join('; ')}`;
    case 'GatewayListenersConditions':
      return `${check.check} ${check.gateway} (${check.listeners}): ${(check.conditions as Condition[]).map(cond).join(',')}`;
    case 'GatewayListenerConditions':
      return `${check.check} ${check.gateway}#${check.listener}: ${(check.conditions as Condition[]).map(cond).join(',')}`;
    case 'GatewayStatusListeners':
      return `${check.check} ${check.gateway}: ${(check.listeners as ExpectedListener[])
        .map((l) => `${l.name} attachedRoutes=${l.attachedRoutes}${l.supportedKinds.length ? '' : ' no kinds'} ${l.conditions.map(cond).join(',')}`)
        .join('; ')}`;
    case 'GatewayCondition':
      return `${check.check} ${check.gateway}: ${cond(check.condition)}`;
    case 'BackendTLSPolicyCondition':
      return `${check.check} ${check.policy} @ ${check.ancestor}: ${cond(check.condition)}`;
    case 'GatewayClassCondition':
      return `${check.check} ${check.gatewayClass}: ${cond(check.condition)}`;
    case 'HTTPRouteNoAcceptedParents':
      return `${check.check} ${check.route}`;
    case 'GatewayZeroRoutes':
      return `${check.check} ${check.gateway}`;
    case 'LatestObservedGeneration':
      return `${check.check} ${check.kind} ${check.object}${check.generation === undefined ? '' : ` = ${check.generation}`}`;
    case 'GatewayInfrastructureMetadata':
      return `${check.check} ${check.gateway}: spec.infrastructure labels and annotations on its ServiceAccount, Pod and Service`;
    default:
      return `${check.check} ${String(check.gateway ?? check.route ?? '')}`;
  }
}
