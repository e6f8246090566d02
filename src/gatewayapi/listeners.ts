// Gateway and listener validation: which listeners can carry traffic, on which sockets, and the
// conditions that explain the rest.
import { isIP } from 'node:net';
import { condition, programmed } from './conditions.ts';
import { socketKey, type IRCertificateRef, type IRClientValidation, type IRTLSOptions } from '../ir/types.ts';
import { resolveCertificateRef } from './certificates.ts';
import { ANY_HOST, validHostname } from './hostnames.ts';
import { GATEWAY_GROUP, type Condition, type Gateway, type Listener, type ReferenceGrant, type Secret } from './types.ts';

export interface ListenerState {
  gateway: Gateway;
  listener: Listener;
  /** "namespace/gateway/listener" */
  id: string;
  hostname: string;
  /** Accepted and not conflicted: routes may attach and traffic is served. */
  usable: boolean;
  supportedKinds: { group: string; kind: string }[];
  acceptedReason: string;
  acceptedMessage: string;
  resolvedRefsReason: string;
  resolvedRefsMessage: string;
  conflictedReason?: string;
  conflictMessage?: string;
  attachedRoutes: number;
  addresses: string[];
  /**
   * Addresses of `addresses` whose address:port could not be bound (another process holds
   * it): the listener is not served there until it can be. Routes still attach.
   */
  unavailable: { address: string; why: string }[];
  /** HTTPS listeners: the certificates that resolved, in certificateRefs order (the first is
   *  the default). Set by resolveListenerCertificates. */
  certificates?: IRCertificateRef[];
  /** HTTPS listeners: client certificate validation and tls.options (see frontend-tls.ts). */
  clientValidation?: IRClientValidation;
  tlsOptions?: IRTLSOptions;
  /**
   * An HTTPS listener none of whose certificateRefs resolved: still valid, so routes attach
   * and are counted, but not served (Programmed=False) until a certificate resolves.
   */
  noCertificate?: boolean;
}

export interface GatewayState {
  gateway: Gateway;
  listeners: ListenerState[];
  addresses: string[];
  acceptedReason: string;
  acceptedMessage: string;
  accepted: boolean;
}

const SUPPORTED_ROUTE_KINDS = [{ group: GATEWAY_GROUP, kind: 'HTTPRoute' }];

/** `httpsServed: false` where the data plane cannot terminate TLS yet (the operator's pods). */
export function evaluateGateway(gateway: Gateway, defaultAddress: string, httpsServed = true): GatewayState {
  const spec = gateway.spec;
  const gwId = `${gateway.metadata.namespace}/${gateway.metadata.name}`;
  let acceptedReason = 'Accepted';
  let acceptedMessage = 'Gateway is accepted';
  let accepted = true;

  const addresses: string[] = [];
  for (const a of spec.addresses ?? []) {
    const type = a.type ?? 'IPAddress';
    // Spec: an address without a value asks the implementation to assign one.
    if (type === 'IPAddress' && !a.value) {
      if (!addresses.includes(defaultAddress)) addresses.push(defaultAddress);
    } else if (type !== 'IPAddress' || !a.value || isIP(a.value) === 0) {
      accepted = false;
      acceptedReason = 'UnsupportedAddress';
      acceptedMessage = `address ${JSON.stringify(a.value ?? '')} of type ${type} is not supported: use IPAddress values`;
    } else if (!addresses.includes(a.value)) {
      addresses.push(a.value);
    }
  }
  if (addresses.length === 0) addresses.push(defaultAddress);
  if (spec.infrastructure?.parametersRef !== undefined) {
    accepted = false;
    acceptedReason = 'InvalidParameters';
    acceptedMessage = 'spec.infrastructure.parametersRef is not supported';
  }

  const listeners = (spec.listeners ?? []).map((l) => evaluateListener(gwId, gateway, l, addresses, httpsServed));
  markConflicts(listeners);
  return { gateway, listeners, addresses, acceptedReason, acceptedMessage, accepted };
}

/**
 * Settles Gateway acceptance once every listener's fate is known, cross-Gateway conflicts
 * included. Spec: a Gateway with some invalid listeners stays Accepted (reason
 * ListenersNotValid); with none valid it is not accepted.
 */
export function settleGateway(g: GatewayState): void {
  const invalid = g.listeners.filter((l) => !l.usable);
  if (g.accepted && invalid.length) {
    g.acceptedReason = 'ListenersNotValid';
    g.acceptedMessage = `listeners not valid: ${invalid.map((l) => l.listener.name).join(', ')}`;
    if (invalid.length === g.listeners.length) g.accepted = false;
  }
  if (!g.accepted) for (const l of g.listeners) l.usable = false;
}

function evaluateListener(gwId: string, gateway: Gateway, l: Listener, addresses: string[], httpsServed: boolean): ListenerState {
  const state: ListenerState = {
    gateway,
    listener: l,
    id: `${gwId}/${l.name}`,
    hostname: l.hostname ?? ANY_HOST,
    usable: true,
    supportedKinds: [],
    acceptedReason: 'Accepted',
    acceptedMessage: 'Listener is accepted',
    resolvedRefsReason: 'ResolvedRefs',
    resolvedRefsMessage: 'All references are resolved',
    attachedRoutes: 0,
    addresses,
    unavailable: [],
  };
  const reject = (reason: string, message: string) => {
    state.usable = false;
    state.acceptedReason = reason;
    state.acceptedMessage = message;
  };
  if (l.protocol === 'HTTP' || l.protocol === 'HTTPS') {
    const kinds = l.allowedRoutes?.kinds;
    if (kinds === undefined || kinds.length === 0) {
      state.supportedKinds = [...SUPPORTED_ROUTE_KINDS];
    } else {
      for (const k of kinds) {
        const group = k.group ?? GATEWAY_GROUP;
        if (group === GATEWAY_GROUP && k.kind === 'HTTPRoute') {
          if (!state.supportedKinds.length) state.supportedKinds.push({ group, kind: k.kind });
        } else {
          state.resolvedRefsReason = 'InvalidRouteKinds';
          state.resolvedRefsMessage = `route kind ${group}/${k.kind} is not supported on an ${l.protocol} listener`;
        }
      }
      if (!state.supportedKinds.length) state.usable = false;
    }
    if (l.protocol === 'HTTPS' && !httpsServed) {
      reject('UnsupportedProtocol', 'HTTPS listeners are served in standalone mode only so far; gateway pods do not terminate TLS yet');
    } else if (l.protocol === 'HTTPS') {
      if (l.tls?.mode === 'Passthrough') reject('UnsupportedValue', 'tls.mode Passthrough is not valid on an HTTPS listener; use Terminate');
      // tls.options are checked with the other TLS settings (frontend-tls.ts).
    }
  } else if (l.protocol === 'TLS') {
    reject('UnsupportedProtocol', 'protocol TLS is not supported yet (TLS passthrough is not implemented); use HTTPS to terminate TLS');
  } else {
    reject('UnsupportedProtocol', `protocol ${JSON.stringify(l.protocol)} is not supported; use HTTP or HTTPS`);
  }
  if (!Number.isInteger(l.port) || l.port < 1 || l.port > 65535) {
    reject('UnsupportedValue', `port ${l.port} is out of range 1-65535`);
  }
  if (l.hostname !== undefined) {
    const problem = validHostname(l.hostname, true);
    if (problem) reject('UnsupportedValue', `hostname ${JSON.stringify(l.hostname)}: ${problem}`);
  }
  return state;
}

/**
 * Resolves the certificateRefs of every HTTPS listener. An invalid or unpermitted ref sets
 * ResolvedRefs=False (InvalidCertificateRef or RefNotPermitted, the first one found); the
 * listener still serves with the refs that resolved, and is not served when none did (routes
 * still attach to it, as upstream's GatewayWithAttachedRoutes expects).
 */
export function resolveListenerCertificates(listeners: ListenerState[], secrets: readonly Secret[], grants: readonly ReferenceGrant[]): void {
  const byKey = new Map(secrets.map((s) => [`${s.metadata.namespace}/${s.metadata.name}`, s]));
  for (const l of listeners) {
    if (l.listener.protocol !== 'HTTPS') continue;
    const refs = l.listener.tls?.certificateRefs ?? [];
    const gatewayNs = l.gateway.metadata.namespace as string;
    const certificates: IRCertificateRef[] = [];
    let failed = false;
    const fail = (reason: string, message: string) => {
      if (failed) return;
      failed = true;
      l.resolvedRefsReason = reason;
      l.resolvedRefsMessage = message;
    };
    if (refs.length === 0) fail('InvalidCertificateRef', 'an HTTPS listener needs at least one tls.certificateRefs entry');
    for (const ref of refs) {
      const r = resolveCertificateRef(gatewayNs, ref, byKey, grants);
      if (!r.ok) fail(r.reason, r.message);
      else if (!certificates.some((c) => c.namespace === r.ref.namespace && c.name === r.ref.name)) certificates.push(r.ref);
    }
    l.certificates = certificates;
    l.noCertificate = certificates.length === 0;
  }
}

/**
 * Listeners of one Gateway that share a port must differ in hostname and agree on protocol.
 * Spec: no conflicting listener may win, so every listener of a conflicting pair is marked.
 */
function markConflicts(listeners: ListenerState[]): void {
  const mark = (l: ListenerState, reason: string, message: string) => {
    if (l.conflictedReason) return;
    l.conflictedReason = reason;
    l.conflictMessage = message;
    l.usable = false;
  };
  for (let i = 0; i < listeners.length; i++) {
    const a = listeners[i];
    for (let j = 0; j < i; j++) {
      const b = listeners[j];
      if (a.listener.port !== b.listener.port) continue;
      if (a.listener.name === b.listener.name) {
        mark(a, 'HostnameConflict', `listener name ${a.listener.name} is used twice`);
      } else if (a.listener.protocol !== b.listener.protocol) {
        mark(a, 'ProtocolConflict', `port ${a.listener.port} is used by listener ${b.listener.name} with protocol ${b.listener.protocol}`);
        mark(b, 'ProtocolConflict', `port ${b.listener.port} is used by listener ${a.listener.name} with protocol ${a.listener.protocol}`);
      } else if (a.hostname === b.hostname) {
        mark(a, 'HostnameConflict', `hostname ${a.hostname} on port ${a.listener.port} is also used by listener ${b.listener.name}`);
        mark(b, 'HostnameConflict', `hostname ${b.hostname} on port ${b.listener.port} is also used by listener ${a.listener.name}`);
      }
    }
  }
}

/** Listeners of different Gateways bound to the same address:port and hostname conflict too. */
export function markCrossGatewayConflicts(listeners: ListenerState[]): void {
  const owner = new Map<string, ListenerState>();
  // One address:port speaks TLS or it does not: the first usable listener there decides.
  const protocolOwner = new Map<string, ListenerState>();
  for (const l of listeners) {
    // An HTTPS listener without a certificate is not served, so it claims no socket.
    if (!l.usable || l.noCertificate) continue;
    for (const address of l.addresses) {
      const socket = socketKey(address, l.listener.port);
      const first = protocolOwner.get(socket);
      if (first && first.gateway !== l.gateway && first.listener.protocol !== l.listener.protocol) {
        l.usable = false;
        l.conflictedReason = 'ProtocolConflict';
        l.conflictMessage = `${socket} is already served with protocol ${first.listener.protocol} by ${first.id}`;
        break;
      }
      if (!first) protocolOwner.set(socket, l);
      const key = `${address}:${l.listener.port} ${l.hostname}`;
      const prev = owner.get(key);
      // The older Gateway keeps serving: creating a Gateway must not break a running one.
      if (prev && prev.gateway !== l.gateway) {
        l.usable = false;
        l.conflictedReason = 'HostnameConflict';
        l.conflictMessage = `${address}:${l.listener.port} with hostname ${l.hostname} is already served by ${prev.id}`;
        break;
      }
      owner.set(key, l);
    }
  }
}

// The socket key is shared with the data plane, which reports busy sockets by it.
export { socketKey };

/**
 * Marks, on every usable listener, the addresses whose address:port is in `unavailable`
 * (sockets the runtime found it cannot bind, with why). Those addresses get no socket; the
 * listener keeps its routes and is reported PortUnavailable / not Programmed until they bind.
 */
export function markUnavailableSockets(listeners: ListenerState[], unavailable: ReadonlyMap<string, string> | undefined): void {
  if (!unavailable || unavailable.size === 0) return;
  for (const l of listeners) {
    if (!l.usable) continue;
    for (const address of l.addresses) {
      const why = unavailable.get(socketKey(address, l.listener.port));
      if (why !== undefined) l.unavailable.push({ address, why });
    }
  }
}

function unavailableMessage(l: ListenerState): string {
  const list = l.unavailable.map((u) => `${socketKey(u.address, l.listener.port)} (${u.why})`).join(', ');
  return `cannot bind ${list}; retrying until it is free`;
}

/**
 * Listener conditions. A listener whose port another process holds: Accepted=False with
 * reason PortUnavailable (the spec's reason for "the port is already in use") and
 * Programmed=False with reason Pending (it goes live by itself once the port is free).
 */
export function listenerConditions(l: ListenerState, generation: number): Condition[] {
  const conflict = l.conflictedReason;
  const portUnavailable = conflict === undefined && l.usable && l.unavailable.length > 0;
  const accepted = conflict === undefined && l.acceptedReason === 'Accepted' && !portUnavailable;
  const refsOk = l.resolvedRefsReason === 'ResolvedRefs';
  const acceptedCondition = portUnavailable
    ? condition('Accepted', false, 'PortUnavailable', unavailableMessage(l), generation)
    : condition('Accepted', accepted, conflict ?? l.acceptedReason, conflict ? (l.conflictMessage ?? '') : l.acceptedMessage, generation);
  return [
    acceptedCondition,
    condition('Conflicted', conflict !== undefined, conflict ?? 'NoConflicts', l.conflictMessage ?? 'No conflicts', generation),
    condition('ResolvedRefs', refsOk, l.resolvedRefsReason, l.resolvedRefsMessage, generation),
    portUnavailable
      ? condition('Programmed', false, 'Pending', unavailableMessage(l), generation)
      : l.usable && l.noCertificate
        ? programmed(false, 'Listener', 'no certificate of tls.certificateRefs resolved', generation)
        : programmed(l.usable, 'Listener', 'Listener is not valid', generation),
  ];
}

/**
 * Gateway Programmed: False/Invalid when not accepted; False/Pending while one of its
 * listeners waits for a port another process holds (the others serve meanwhile).
 */
export function gatewayProgrammed(g: GatewayState, generation: number): Condition {
  if (!g.accepted) return programmed(false, 'Gateway', 'Gateway is not accepted', generation);
  const waiting = g.listeners.filter((l) => l.usable && l.unavailable.length > 0);
  if (waiting.length === 0) return programmed(true, 'Gateway', '', generation);
  const message = `listeners waiting for a port: ${waiting.map((l) => `${l.listener.name}: ${unavailableMessage(l)}`).join('; ')}`;
  return condition('Programmed', false, 'Pending', message, generation);
}
