import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CONTROLLER_NAME } from '../../src/gatewayapi/features.ts';
import type { StatusCheck } from './data.ts';
import { evaluateStatusCheck, parseStatusStream, type StatusDoc } from './status.ts';

const NS = 'gateway-conformance-infra';
const accepted = (gen = 1) => ({ type: 'Accepted', status: 'True', reason: 'Accepted', observedGeneration: gen });
const resolved = (gen = 1) => ({ type: 'ResolvedRefs', status: 'True', reason: 'ResolvedRefs', observedGeneration: gen });
const programmed = (gen = 1) => ({ type: 'Programmed', status: 'True', reason: 'Programmed', observedGeneration: gen });

function route(parents: unknown[], generation = 1): StatusDoc {
  return { kind: 'HTTPRoute', metadata: { name: 'r', namespace: NS, generation }, status: { parents } };
}
function parent(over: Record<string, unknown> = {}, conditions = [accepted(), resolved()]) {
  return { parentRef: { group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'gw', namespace: NS, ...over }, controllerName: CONTROLLER_NAME, conditions };
}
function gateway(listeners: unknown[], generation = 1): StatusDoc {
  return { kind: 'Gateway', metadata: { name: 'gw', namespace: NS, generation }, status: { addresses: [{ type: 'IPAddress', value: '127.0.1.1' }], conditions: [accepted(generation)], listeners } };
}
const parentAccepted: StatusCheck = { check: 'HTTPRouteParentAccepted', route: `${NS}/r`, parent: `${NS}/gw`, condition: { type: 'Accepted', status: 'True', reason: 'Accepted' } };

test('parent accepted: passes with a complete parent entry', () => {
  assert.equal(evaluateStatusCheck(parentAccepted, [route([parent()])]).failure, undefined);
});

test('parent accepted: controller, group/kind spelled out, generation', () => {
  const wrongController = { ...parent(), controllerName: 'other' };
  assert.match(evaluateStatusCheck(parentAccepted, [route([wrongController])]).failure ?? '', /controllerName/);
  const noGroup = parent({ group: undefined });
  assert.match(evaluateStatusCheck(parentAccepted, [route([noGroup])]).failure ?? '', /parentRef.group/);
  assert.match(evaluateStatusCheck(parentAccepted, [route([parent()], 2)]).failure ?? '', /observedGeneration 1, metadata.generation 2/);
  assert.match(evaluateStatusCheck(parentAccepted, [route([])]).failure ?? '', /no status.parents entry/);
  assert.match(evaluateStatusCheck(parentAccepted, []).failure ?? '', /not in the check output/);
});

test('parent accepted: namespace may be omitted only when route and Gateway share it', () => {
  assert.equal(evaluateStatusCheck(parentAccepted, [route([parent({ namespace: undefined })])]).failure, undefined);
  const cross: StatusDoc = { kind: 'HTTPRoute', metadata: { name: 'r', namespace: 'other', generation: 1 }, status: { parents: [parent({ namespace: undefined })] } };
  const check = { ...parentAccepted, route: 'other/r' };
  assert.ok(evaluateStatusCheck(check, [cross]).failure);
});

test('route condition: matches reason, checks every parent generation', () => {
  const check: StatusCheck = { check: 'HTTPRouteCondition', route: `${NS}/r`, parent: `${NS}/gw`, condition: { type: 'ResolvedRefs', status: 'False', reason: 'RefNotPermitted' } };
  const refused = parent({}, [accepted(), { type: 'ResolvedRefs', status: 'False', reason: 'RefNotPermitted', observedGeneration: 1 }]);
  assert.equal(evaluateStatusCheck(check, [route([refused])]).failure, undefined);
  assert.match(evaluateStatusCheck(check, [route([parent()])]).failure ?? '', /ResolvedRefs=True\/ResolvedRefs, expected ResolvedRefs=False\/RefNotPermitted/);
});

test('exact parents list', () => {
  const check: StatusCheck = {
    check: 'HTTPRouteParents',
    route: `${NS}/r`,
    parents: [{ parentRef: { group: 'gateway.networking.k8s.io', kind: 'Gateway', namespace: NS, name: 'gw' }, conditions: [{ type: 'Accepted', status: 'False', reason: 'NoMatchingListenerHostname' }] }],
  };
  const rejected = parent({}, [{ type: 'Accepted', status: 'False', reason: 'NoMatchingListenerHostname', observedGeneration: 1 }]);
  assert.equal(evaluateStatusCheck(check, [route([rejected])]).failure, undefined);
  assert.match(evaluateStatusCheck(check, [route([rejected, rejected])]).failure ?? '', /expected 1 status.parents entries, got 2/);
  assert.match(evaluateStatusCheck(check, [route([parent({ namespace: undefined }, rejected.conditions)])]).failure ?? '', /namespace/);
});

test('listener conditions for all spec listeners, and listener lists', () => {
  const l = (name: string, attachedRoutes: number) => ({ name, attachedRoutes, supportedKinds: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute' }], conditions: [accepted(), resolved(), programmed()] });
  const gw = gateway([l('a', 2), l('b', 1)]);
  const all: StatusCheck = { check: 'GatewayListenersConditions', gateway: `${NS}/gw`, listeners: 'all', conditions: [{ type: 'Programmed', status: 'True' }] };
  assert.equal(evaluateStatusCheck(all, [gw]).failure, undefined);
  assert.match(evaluateStatusCheck(all, [gw], new Map([[`${NS}/gw`, ['a', 'b', 'c']]])).failure ?? '', /no status for listener c/);
  const one: StatusCheck = { check: 'GatewayListenerConditions', gateway: `${NS}/gw`, listener: 'b', conditions: [{ type: 'Accepted', status: 'True' }] };
  assert.equal(evaluateStatusCheck(one, [gw]).failure, undefined);
  const list: StatusCheck = {
    check: 'GatewayStatusListeners',
    gateway: `${NS}/gw`,
    listeners: [
      { name: 'a', supportedKinds: ['gateway.networking.k8s.io/HTTPRoute'], conditions: [{ type: 'Accepted', status: 'True' }], attachedRoutes: 2 },
      { name: 'b', supportedKinds: ['gateway.networking.k8s.io/HTTPRoute'], conditions: [{ type: 'Accepted', status: 'True' }], attachedRoutes: 2 },
    ],
  };
  assert.match(evaluateStatusCheck(list, [gw]).failure ?? '', /listener b: attachedRoutes 1, expected 2/);
});

test('gateway condition and address', () => {
  const gw = gateway([]);
  assert.equal(evaluateStatusCheck({ check: 'GatewayAddress', gateway: `${NS}/gw` }, [gw]).failure, undefined);
  assert.match(evaluateStatusCheck({ check: 'GatewayCondition', gateway: `${NS}/gw`, condition: { type: 'Programmed', status: 'True' } }, [gw]).failure ?? '', /no Programmed condition/);
});

test('an unknown check kind fails', () => {
  assert.match(evaluateStatusCheck({ check: 'SomethingNew' }, []).failure ?? '', /unknown status check kind/);
});

test('the check output is a YAML stream', () => {
  const docs = parseStatusStream('kind: GatewayClass\nmetadata: {name: vgw, generation: 1}\nstatus: {}\n---\nkind: Gateway\nmetadata: {name: gw, namespace: ns, generation: 3}\n');
  assert.deepEqual(docs.map((d) => `${d.kind}/${d.metadata.name}/${d.metadata.generation}`), ['GatewayClass/vgw/1', 'Gateway/gw/3']);
});

test('no accepted parents: none, or exactly one that is not accepted', () => {
  const check: StatusCheck = { check: 'HTTPRouteNoAcceptedParents', route: `${NS}/r` };
  const refused = parent({}, [{ type: 'Accepted', status: 'False', reason: 'NotAllowedByListeners', observedGeneration: 1 }, resolved()]);
  assert.equal(evaluateStatusCheck(check, [route([])]).failure, undefined);
  assert.equal(evaluateStatusCheck(check, [route([refused])]).failure, undefined);
  assert.match(evaluateStatusCheck(check, [route([parent()])]).failure ?? '', /Accepted=True\/Accepted, expected Accepted=False/);
  assert.match(evaluateStatusCheck(check, [route([refused, refused])]).failure ?? '', /got 2/);
  assert.match(evaluateStatusCheck(check, [route([refused], 2)]).failure ?? '', /observedGeneration 1, metadata.generation 2/);
});

test('zero routes: no listener statuses, or one listener with nothing attached', () => {
  const check: StatusCheck = { check: 'GatewayZeroRoutes', gateway: `${NS}/gw` };
  const l = (name: string, attachedRoutes: number) => ({ name, attachedRoutes, supportedKinds: [], conditions: [accepted()] });
  assert.equal(evaluateStatusCheck(check, [gateway([])]).failure, undefined);
  assert.equal(evaluateStatusCheck(check, [gateway([l('http', 0)])]).failure, undefined);
  assert.match(evaluateStatusCheck(check, [gateway([l('http', 1)])]).failure ?? '', /attachedRoutes 1, expected 0/);
  assert.match(evaluateStatusCheck(check, [gateway([l('a', 0), l('b', 0)])]).failure ?? '', /exactly one, got 2/);
});

test('latest observed generation covers the object, listener and parent conditions', () => {
  const stale = { name: 'http', attachedRoutes: 0, supportedKinds: [], conditions: [accepted(1)] };
  const gw = gateway([stale], 2);
  assert.match(evaluateStatusCheck({ check: 'LatestObservedGeneration', kind: 'Gateway', object: `${NS}/gw` }, [gw]).failure ?? '', /listener http: Accepted observedGeneration 1, metadata.generation 2/);
  const fresh = gateway([{ ...stale, conditions: [accepted(2)] }], 2);
  assert.equal(evaluateStatusCheck({ check: 'LatestObservedGeneration', kind: 'Gateway', object: `${NS}/gw`, generation: 2 }, [fresh]).failure, undefined);
  assert.match(evaluateStatusCheck({ check: 'LatestObservedGeneration', kind: 'Gateway', object: `${NS}/gw`, generation: 3 }, [fresh]).failure ?? '', /metadata.generation 2, expected 3/);
  assert.match(evaluateStatusCheck({ check: 'LatestObservedGeneration', kind: 'HTTPRoute', object: `${NS}/r` }, [route([parent()], 2)]).failure ?? '', /parent .*gw: Accepted observedGeneration 1/);
  const empty: StatusDoc = { kind: 'GatewayClass', metadata: { name: 'c', generation: 1 }, status: {} };
  assert.match(evaluateStatusCheck({ check: 'LatestObservedGeneration', kind: 'GatewayClass', object: 'c' }, [empty]).failure ?? '', /no conditions/);
});

test('GatewayClass condition: a missing status matches any', () => {
  const gwc: StatusDoc = { kind: 'GatewayClass', metadata: { name: 'c', generation: 1 }, status: { conditions: [{ type: 'Accepted', status: 'False', reason: 'InvalidParameters', observedGeneration: 1 }] } };
  assert.equal(evaluateStatusCheck({ check: 'GatewayClassCondition', gatewayClass: 'c', condition: { type: 'Accepted' } }, [gwc]).failure, undefined);
  assert.match(evaluateStatusCheck({ check: 'GatewayClassCondition', gatewayClass: 'c', condition: { type: 'Accepted', status: 'True' } }, [gwc]).failure ?? '', /Accepted=False/);
});

test('listener supportedKinds: expected kinds must be present; an empty expectation means none', () => {
  const both = { name: 'a', attachedRoutes: 0, supportedKinds: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute' }, { kind: 'GRPCRoute' }], conditions: [accepted()] };
  const want = (supportedKinds: string[]): StatusCheck => ({ check: 'GatewayStatusListeners', gateway: `${NS}/gw`, listeners: [{ name: 'a', supportedKinds, conditions: [], attachedRoutes: 0 }] });
  assert.equal(evaluateStatusCheck(want(['gateway.networking.k8s.io/HTTPRoute']), [gateway([both])]).failure, undefined);
  assert.equal(evaluateStatusCheck(want(['gateway.networking.k8s.io/GRPCRoute']), [gateway([both])]).failure, undefined, 'no group means the Gateway API group');
  assert.match(evaluateStatusCheck(want([]), [gateway([both])]).failure ?? '', /expected \[\]/);
  assert.match(evaluateStatusCheck(want(['gateway.networking.k8s.io/TLSRoute']), [gateway([both])]).failure ?? '', /to include \[gateway.networking.k8s.io\/TLSRoute\]/);
});

test('BackendTLSPolicy condition: on the ancestor entry for the Gateway, at the current generation', () => {
  const policy = (conditions: unknown[], generation = 1): StatusDoc => ({
    kind: 'BackendTLSPolicy',
    metadata: { name: 'p', namespace: NS, generation },
    status: { ancestors: [{ ancestorRef: { group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'gw', namespace: NS }, controllerName: CONTROLLER_NAME, conditions }] },
  });
  const check = (condition: Record<string, string>, ancestor = `${NS}/gw`): StatusCheck => ({ check: 'BackendTLSPolicyCondition', policy: `${NS}/p`, ancestor, condition });
  const conflicted = { type: 'Accepted', status: 'False', reason: 'Conflicted', observedGeneration: 1 };
  assert.equal(evaluateStatusCheck(check({ type: 'Accepted', status: 'True', reason: 'Accepted' }), [policy([accepted()])]).failure, undefined);
  assert.match(evaluateStatusCheck(check({ type: 'Accepted', status: 'True', reason: 'Accepted' }), [policy([conflicted])]).failure ?? '', /Accepted=False\/Conflicted/);
  assert.match(evaluateStatusCheck(check({ type: 'Accepted', status: 'True' }), [policy([accepted(1)], 2)]).failure ?? '', /observedGeneration 1, metadata.generation 2/);
  assert.match(evaluateStatusCheck(check({ type: 'Accepted', status: 'True' }, `${NS}/other`), [policy([accepted()])]).failure ?? '', /no status.ancestors entry for Gateway/);
  // Latest-generation checks cover ancestor conditions too.
  assert.match(evaluateStatusCheck({ check: 'LatestObservedGeneration', kind: 'BackendTLSPolicy', object: `${NS}/p` }, [policy([accepted(1)], 2)]).failure ?? '', /ancestor/);
});
