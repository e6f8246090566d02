// The status we write for each kind we own, shaped like the Gateway API v1 status types, and
// the previous statuses a translation is given so that unchanged conditions keep their
// lastTransitionTime.
import type { Condition, ParentReference } from './types.ts';

export interface SupportedFeature {
  name: string;
}

export interface GatewayClassStatus {
  conditions: Condition[];
  supportedFeatures: SupportedFeature[];
}

export interface GatewayStatusAddress {
  type: string;
  value: string;
}

export interface RouteGroupKind {
  group: string;
  kind: string;
}

export interface ListenerStatus {
  name: string;
  supportedKinds: RouteGroupKind[];
  attachedRoutes: number;
  conditions: Condition[];
}

export interface GatewayStatus {
  /** Absent on a Gateway rejected before its addresses could be read. */
  addresses?: GatewayStatusAddress[];
  conditions: Condition[];
  listeners: ListenerStatus[];
}

export interface RouteParentStatus {
  parentRef: ParentReference;
  controllerName: string;
  conditions: Condition[];
}

export interface HTTPRouteStatus {
  parents: RouteParentStatus[];
}

/** Gateway API PolicyAncestorStatus: how one policy fares for one Gateway. */
export interface PolicyAncestorStatus {
  ancestorRef: ParentReference;
  controllerName: string;
  conditions: Condition[];
}

export interface PolicyStatus {
  ancestors: PolicyAncestorStatus[];
}

export interface StatusMetadata {
  name: string;
  namespace?: string;
  generation: number;
}

interface StatusOf<K extends string, S> {
  apiVersion: string;
  kind: K;
  metadata: StatusMetadata;
  status: S;
}

export type GatewayClassObjectStatus = StatusOf<'GatewayClass', GatewayClassStatus>;
export type GatewayObjectStatus = StatusOf<'Gateway', GatewayStatus>;
export type HTTPRouteObjectStatus = StatusOf<'HTTPRoute', HTTPRouteStatus>;
export type BackendTLSPolicyObjectStatus = StatusOf<'BackendTLSPolicy', PolicyStatus>;

/** The status of one object we own, discriminated by kind. */
export type ObjectStatus = GatewayClassObjectStatus | GatewayObjectStatus | HTTPRouteObjectStatus | BackendTLSPolicyObjectStatus;

/** The statuses a previous translation wrote, looked up by object. */
export interface PreviousStatuses {
  gatewayClass(name: string): GatewayClassStatus | undefined;
  gateway(namespace: string, name: string): GatewayStatus | undefined;
  httpRoute(namespace: string, name: string): HTTPRouteStatus | undefined;
  backendTLSPolicy?(namespace: string, name: string): PolicyStatus | undefined;
}

/**
 * Indexes a translation's statuses for the next one. Namespaced kinds are looked up by namespace,
 * then name: the translator looks up every route on every change, and a "namespace/name" key
 * would be a string built and hashed per route, twice.
 */
export function indexStatuses(statuses: readonly ObjectStatus[]): PreviousStatuses {
  const classes = new Map<string, GatewayClassStatus>();
  const gateways = new ByNamespace<GatewayStatus>();
  const routes = new ByNamespace<HTTPRouteStatus>();
  const policies = new ByNamespace<PolicyStatus>();
  for (const s of statuses) {
    if (s.kind === 'GatewayClass') classes.set(s.metadata.name, s.status);
    else if (s.kind === 'Gateway') gateways.set(s.metadata.namespace, s.metadata.name, s.status);
    else if (s.kind === 'HTTPRoute') routes.set(s.metadata.namespace, s.metadata.name, s.status);
    else policies.set(s.metadata.namespace, s.metadata.name, s.status);
  }
  return {
    gatewayClass: (name) => classes.get(name),
    gateway: (namespace, name) => gateways.get(namespace, name),
    httpRoute: (namespace, name) => routes.get(namespace, name),
    backendTLSPolicy: (namespace, name) => policies.get(namespace, name),
  };
}

class ByNamespace<V> {
  private readonly namespaces = new Map<string, Map<string, V>>();
  set(namespace: string | undefined, name: string, value: V): void {
    const ns = namespace ?? '';
    let names = this.namespaces.get(ns);
    if (!names) {
      names = new Map();
      this.namespaces.set(ns, names);
    }
    names.set(name, value);
  }
  get(namespace: string, name: string): V | undefined {
    return this.namespaces.get(namespace)?.get(name);
  }
}

/**
 * Freezes an HTTPRoute status, its parents and their conditions. The translator hands route
 * statuses out frozen because a later translation may hand the same one out again (and the
 * operator its Programmed copy of one): a caller that adds to a status must build its own copy,
 * and one that tries to change it in place fails loudly instead.
 */
export function freezeRouteStatus(s: HTTPRouteObjectStatus): HTTPRouteObjectStatus {
  for (const p of s.status.parents) {
    for (const c of p.conditions) Object.freeze(c);
    Object.freeze(p.conditions);
    Object.freeze(p);
  }
  Object.freeze(s.status.parents);
  Object.freeze(s.status);
  Object.freeze(s.metadata);
  return Object.freeze(s);
}

/** The previous status entry for the same parent (all parentRef fields equal), if any. */
export function previousParent(previous: HTTPRouteStatus | undefined, ref: ParentReference): RouteParentStatus | undefined {
  return previous?.parents.find((p) => sameParentRef(p.parentRef, ref));
}

function sameParentRef(a: ParentReference, b: ParentReference): boolean {
  return (
    a.group === b.group && a.kind === b.kind && a.namespace === b.namespace && a.name === b.name && a.sectionName === b.sectionName && a.port === b.port
  );
}

export type StatusOfKind<K extends ObjectStatus['kind']> = Extract<ObjectStatus, { kind: K }>;

/** A filter/find predicate that narrows statuses to one kind. */
export function ofKind<K extends ObjectStatus['kind']>(kind: K): (s: ObjectStatus) => s is StatusOfKind<K> {
  return (s): s is StatusOfKind<K> => s.kind === kind;
}
