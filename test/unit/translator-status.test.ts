// lastTransitionTime follows the Kubernetes contract: it moves when a condition's status (or,
// here, its reason or message) changes, not on every translation nor on a generation bump.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { condition, mergeConditions } from '../../src/gatewayapi/conditions.ts';
import { indexStatuses, type ObjectStatus } from '../../src/gatewayapi/status.ts';
import { translate, type TranslateResult } from '../../src/gatewayapi/translator.ts';
import type { Condition, ResourceSnapshot } from '../../src/gatewayapi/types.ts';
import { DEFAULT_ADDRESS, NOW, gatewayStatus, listener, parentRef, route, routeParent, simpleWorld } from './fixtures/builders.ts';

const LATER = '2030-01-02T04:00:00Z';

function again(snapshot: ResourceSnapshot, first: TranslateResult, now = LATER): TranslateResult {
  return translate(snapshot, { defaultAddress: DEFAULT_ADDRESS, now, previous: indexStatuses(first.statuses) });
}

function first(snapshot: ResourceSnapshot): TranslateResult {
  return translate(snapshot, { defaultAddress: DEFAULT_ADDRESS, now: NOW });
}

/** "Kind ns/name <where> Type" -> lastTransitionTime, for every condition of every status. */
function times(statuses: ObjectStatus[]): Map<string, string | undefined> {
  const out = new Map<string, string | undefined>();
  const add = (where: string, conditions: Condition[]) => {
    for (const c of conditions) out.set(`${where} ${c.type}`, c.lastTransitionTime);
  };
  for (const s of statuses) {
    const id = `${s.kind} ${s.metadata.namespace ?? ''}/${s.metadata.name}`;
    if (s.kind === 'GatewayClass') add(id, s.status.conditions);
    else if (s.kind === 'Gateway') {
      add(id, s.status.conditions);
      for (const l of s.status.listeners) add(`${id} listener ${l.name}`, l.conditions);
    } else if (s.kind === 'HTTPRoute') {
      for (const p of s.status.parents) add(`${id} parent ${p.parentRef.namespace}/${p.parentRef.name}/${p.parentRef.sectionName ?? ''}`, p.conditions);
    }
  }
  return out;
}

describe('mergeConditions', () => {
  const before = [{ ...condition('Accepted', true, 'Accepted', 'ok', 1), lastTransitionTime: NOW }];

  test('an unchanged condition keeps its time', () => {
    assert.deepEqual(mergeConditions(before, [condition('Accepted', true, 'Accepted', 'ok', 1)], LATER), before);
  });

  test('a changed status, reason or message moves the time', () => {
    for (const next of [
      condition('Accepted', false, 'Accepted', 'ok', 1),
      condition('Accepted', true, 'Other', 'ok', 1),
      condition('Accepted', true, 'Accepted', 'changed', 1),
    ]) {
      assert.equal(mergeConditions(before, [next], LATER)[0].lastTransitionTime, LATER, JSON.stringify(next));
    }
  });

  test('a new generation alone keeps the time and reports the new observedGeneration', () => {
    const [c] = mergeConditions(before, [condition('Accepted', true, 'Accepted', 'ok', 2)], LATER);
    assert.equal(c.lastTransitionTime, NOW);
    assert.equal(c.observedGeneration, 2);
  });

  test('a condition without a previous one of its type, or without previous conditions, gets now', () => {
    assert.equal(mergeConditions(before, [condition('ResolvedRefs', true, 'ResolvedRefs', 'ok', 1)], LATER)[0].lastTransitionTime, LATER);
    assert.equal(mergeConditions(undefined, [condition('Accepted', true, 'Accepted', 'ok', 1)], LATER)[0].lastTransitionTime, LATER);
  });

  test('does not mutate its inputs', () => {
    const next = [condition('Accepted', false, 'Invalid', 'no', 1)];
    const copies = structuredClone([before, next]);
    mergeConditions(before, next, LATER);
    assert.deepEqual([before, next], copies);
  });
});

describe('translator status across translations', () => {
  const snapshot = () => {
    const s = simpleWorld(
      [listener('a', { hostname: 'a.example.com' }), listener('b', { port: 81, hostname: 'b.example.com' })],
      [
        route('r1', { hostnames: ['a.example.com'] }),
        route('r2', { hostnames: ['b.example.com'], parentRefs: [parentRef('gw', { sectionName: 'b' }), parentRef('gw', { sectionName: 'missing' })] }),
      ],
    );
    // A route that failed its schema still gets (rejected) status on our Gateway.
    s.rejected = [
      { kind: 'HTTPRoute', display: 'default/bad', name: 'bad', namespace: 'default', file: 'bad.yaml', line: 3, path: ['spec', 'hostnames'], message: 'spec.hostnames: expected array', parentRefs: [parentRef('gw')] },
    ];
    return s;
  };

  test('translating again with the first result as previous keeps every lastTransitionTime', () => {
    const snap = snapshot();
    const a = first(snap);
    const b = again(snap, a);
    const before = times(a.statuses);
    assert.ok(before.size >= 15, `conditions of every kind are covered (${before.size})`);
    assert.ok([...before.values()].every((t) => t === NOW));
    assert.deepEqual(times(b.statuses), before);
    assert.deepEqual(b.statuses, a.statuses, 'nothing else changes either');
  });

  test("a route whose Accepted reason changes moves only that condition's time", () => {
    const snap = snapshot();
    const a = first(snap);
    snap.httpRoutes[0].spec.hostnames = ['c.example.com']; // no listener hostname intersects now
    const b = again(snap, a);
    assert.equal(routeParent(b, 'r1').conditions.find((c) => c.type === 'Accepted')?.reason, 'NoMatchingListenerHostname');
    const moved = [...times(b.statuses)].filter(([, t]) => t !== NOW).map(([k]) => k);
    assert.deepEqual(moved, ['HTTPRoute default/r1 parent default/gw/ Accepted']);
    assert.equal(gatewayStatus(b).listeners.find((l) => l.name === 'a')?.attachedRoutes, 0, 'listener counts change without a transition');
  });

  test('a generation bump moves observedGeneration but not lastTransitionTime', () => {
    const snap = snapshot();
    const a = first(snap);
    snap.httpRoutes[0].metadata.generation = 2;
    snap.gateways[0].metadata.generation = 5;
    const b = again(snap, a);
    for (const c of routeParent(b, 'r1').conditions) assert.equal(c.observedGeneration, 2, c.type);
    for (const c of gatewayStatus(b).conditions) assert.equal(c.observedGeneration, 5, c.type);
    assert.deepEqual(times(b.statuses), times(a.statuses));
  });

  test('a rejected object whose message changes moves its time; a new route takes no time from the others', () => {
    const snap = snapshot();
    const a = first(snap);
    const rejected = snap.rejected?.[0];
    assert.ok(rejected);
    rejected.message = 'spec.hostnames: expected array, received string';
    snap.httpRoutes.push(route('r3', { hostnames: ['a.example.com'] }));
    const b = again(snap, a);
    const moved = [...times(b.statuses)].filter(([, t]) => t !== NOW).map(([k]) => k);
    assert.deepEqual(moved.sort(), [
      'HTTPRoute default/bad parent default/gw/ Accepted',
      'HTTPRoute default/r3 parent default/gw/ Accepted',
      'HTTPRoute default/r3 parent default/gw/ ResolvedRefs',
    ]);
  });
});
