// The operator's status writer against the Kubernetes API test server, through the real
// @kubernetes/client-node: shared HTTPRoute status, no-op writes skipped, conflicts retried,
// many objects coalesced, lastTransitionTime kept.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { Counter, Registry } from 'prom-client';
import { startKubeApiServer, type KubeApiServer } from '../support/kube-api-server.ts';
import { StatusWriter, onlyStatusChanged } from '../../src/operator/status-writer.ts';
import { CONTROLLER_NAME } from '../../src/gatewayapi/features.ts';
import { eventually } from './support/poll.ts';
import type { Condition } from '../../src/gatewayapi/types.ts';
import type { GatewayStatus, RouteParentStatus } from '../../src/gatewayapi/status.ts';

const GW_API = 'gateway.networking.k8s.io/v1';
const OTHER = 'example.com/other-controller';
const logger = pino({ level: 'silent' });
const T = { timeout: 30_000 };

let server: KubeApiServer;
before(async () => {
  server = await startKubeApiServer({ bookmarkIntervalMs: 0 });
});
after(() => server.close());
beforeEach(() => server.resetRequests());

let clock = new Date('2030-01-01T00:00:00Z');
function writer(extra: { writes?: Counter<'outcome'> } = {}): StatusWriter {
  return new StatusWriter({ kubeConfig: server.kubeConfig(), logger, backoffMs: 5, now: () => clock, ...extra });
}

function cond(type: string, ok: boolean, reason: string, generation = 1, message = `${type} ${reason}`): Condition {
  return { type, status: ok ? 'True' : 'False', reason, message, observedGeneration: generation };
}

function route(name: string, parents: RouteParentStatus[] = []) {
  return server.set({
    apiVersion: GW_API,
    kind: 'HTTPRoute',
    metadata: { name, namespace: 'apps' },
    spec: { parentRefs: [{ name: 'gw', namespace: 'infra' }, { name: 'theirs', namespace: 'infra' }] },
    status: { parents },
  });
}

function liveParents(name: string): RouteParentStatus[] {
  const obj = server.get({ apiVersion: GW_API, kind: 'HTTPRoute', namespace: 'apps', name });
  return ((obj?.status as { parents?: RouteParentStatus[] } | undefined)?.parents ?? []);
}

const statusWrites = (name?: string) => server.countRequests({ verb: 'update', path: /\/status$/, ...(name ? { name } : {}) });

const theirEntry: RouteParentStatus = {
  parentRef: { group: 'gateway.networking.k8s.io', kind: 'Gateway', namespace: 'infra', name: 'theirs' },
  controllerName: OTHER,
  conditions: [{ ...cond('Accepted', true, 'Accepted'), lastTransitionTime: '2020-01-01T00:00:00Z' }],
};

function ours(accepted: boolean, generation = 1, name = 'gw'): RouteParentStatus {
  return { parentRef: { namespace: 'infra', name }, controllerName: CONTROLLER_NAME, conditions: [cond('Accepted', accepted, accepted ? 'Accepted' : 'NotAllowedByListeners', generation)] };
}

test('another controller\'s parent entry is kept in place while ours is added, updated and removed', T, async () => {
  route('shared', [theirEntry]);
  const w = writer();
  w.set('HTTPRoute', 'apps', 'shared', { parents: [ours(true)] });
  await w.flush();
  let parents = liveParents('shared');
  assert.equal(parents.length, 2);
  assert.deepEqual(parents[0], theirEntry, 'their entry untouched and first');
  assert.equal(parents[1].controllerName, CONTROLLER_NAME);
  assert.deepEqual(parents[1].parentRef, { group: 'gateway.networking.k8s.io', kind: 'Gateway', namespace: 'infra', name: 'gw' }, 'CRD defaults spelled out');
  assert.equal(parents[1].conditions[0].status, 'True');

  // Their entry changes after ours was added; ours is updated in place, theirs stays as they wrote it.
  const theirs2 = { ...theirEntry, conditions: [{ ...theirEntry.conditions[0], message: 'changed by them' }] };
  route('shared', [parents[1], theirs2]);
  w.set('HTTPRoute', 'apps', 'shared', { parents: [ours(false)] });
  await w.flush();
  parents = liveParents('shared');
  assert.equal(parents.length, 2);
  assert.equal(parents[0].controllerName, CONTROLLER_NAME, 'ours updated in place');
  assert.equal(parents[0].conditions[0].status, 'False');
  assert.deepEqual(parents[1], theirs2);

  // An entry of another controller in the desired status is not ours to write.
  w.set('HTTPRoute', 'apps', 'shared', { parents: [{ ...theirEntry, controllerName: OTHER, conditions: [] }] });
  await w.flush();
  assert.deepEqual(liveParents('shared'), [theirs2], 'ours removed, theirs kept');
});

test('a second set with the same desired status performs no write, and neither does a fresh writer finding it already so', T, async () => {
  route('same');
  const registry = new Registry();
  const writes = new Counter({ name: 'status_writes_total', help: 'x', labelNames: ['outcome'], registers: [registry] });
  const w = writer({ writes });
  w.set('HTTPRoute', 'apps', 'same', { parents: [ours(true)] });
  await w.flush();
  assert.equal(statusWrites('same'), 1);
  w.set('HTTPRoute', 'apps', 'same', { parents: [ours(true)] });
  await w.flush();
  assert.equal(statusWrites('same'), 1, 'no second write');
  const values = (await registry.getSingleMetric('status_writes_total')!.get()).values;
  assert.equal(values.find((v) => v.labels.outcome === 'written')?.value, 1);
  assert.equal(values.find((v) => v.labels.outcome === 'noop')?.value, 1);

  // A new writer (an operator restart) reads the object, finds it as desired and writes nothing,
  // even when the desired status spells its keys in another order and its clock moved on.
  clock = new Date('2031-01-01T00:00:00Z');
  const w2 = writer();
  const reordered = { conditions: ours(true).conditions, controllerName: CONTROLLER_NAME, parentRef: { name: 'gw', namespace: 'infra' } };
  w2.set('HTTPRoute', 'apps', 'same', { parents: [reordered] });
  await w2.flush();
  assert.equal(statusWrites('same'), 1, 'no write after a restart');
  assert.equal(w2.counts.noop, 1);
});

test('an object deleted and created again under its name gets its status written, even the same one', T, async () => {
  const first = route('reborn');
  const w = writer();
  w.set('HTTPRoute', 'apps', 'reborn', { parents: [ours(true)] }, first.metadata.uid);
  await w.flush();
  assert.equal(statusWrites('reborn'), 1);
  // Deleted and created again between two reconciles: the operator never saw it gone.
  server.remove({ apiVersion: GW_API, kind: 'HTTPRoute', namespace: 'apps', name: 'reborn' });
  const second = route('reborn');
  assert.notEqual(second.metadata.uid, first.metadata.uid);
  w.set('HTTPRoute', 'apps', 'reborn', { parents: [ours(true)] }, second.metadata.uid);
  await w.flush();
  assert.equal(statusWrites('reborn'), 2, 'written to the new object');
  assert.deepEqual(liveParents('reborn').map((p) => p.controllerName), [CONTROLLER_NAME]);
  w.set('HTTPRoute', 'apps', 'reborn', { parents: [ours(true)] }, second.metadata.uid);
  await w.flush();
  assert.equal(statusWrites('reborn'), 2, 'the same object again: no write');
});

test('our entry is exactly the desired one: a condition on it that is no longer desired is removed', T, async () => {
  // The operator owns every condition of its entries, Programmed included (it aggregates the
  // gateway pods' reports): nothing on our entry is kept from the API object.
  const programmed = { ...cond('Programmed', true, 'Programmed'), lastTransitionTime: '2020-01-01T00:00:00Z' };
  const entry = ours(true);
  route('programmed', [{ ...entry, parentRef: { group: 'gateway.networking.k8s.io', kind: 'Gateway', ...entry.parentRef }, conditions: [{ ...entry.conditions[0], lastTransitionTime: '2020-01-01T00:00:00Z' }, programmed] }]);
  const w = writer();
  w.set('HTTPRoute', 'apps', 'programmed', { parents: [{ ...ours(true), conditions: [...ours(true).conditions, programmed] }] });
  await w.flush();
  assert.equal(statusWrites('programmed'), 0, 'already as desired');
  w.set('HTTPRoute', 'apps', 'programmed', { parents: [ours(false)] });
  await w.flush();
  const [parent] = liveParents('programmed');
  assert.deepEqual(parent.conditions.map((c) => [c.type, c.status]), [['Accepted', 'False']]);
});

test('a 409 on the status write is retried on the re-read object and succeeds', T, async () => {
  route('conflicted', [theirEntry]);
  server.failNext({ verb: 'update', name: 'conflicted', code: 409, reason: 'Conflict', times: 2 });
  const w = writer();
  w.set('HTTPRoute', 'apps', 'conflicted', { parents: [ours(true)] });
  await w.flush();
  assert.equal(w.counts.conflict, 2);
  assert.equal(w.counts.written, 1);
  assert.equal(server.countRequests({ verb: 'get', name: 'conflicted' }), 3, 're-read before each attempt');
  const parents = liveParents('conflicted');
  assert.deepEqual(parents.map((p) => p.controllerName), [OTHER, CONTROLLER_NAME]);
});

test('a deleted object is dropped; a failing server is retried later', T, async () => {
  const w = new StatusWriter({ kubeConfig: server.kubeConfig(), logger, backoffMs: 1, attempts: 2, retryMs: 20 });
  w.set('HTTPRoute', 'apps', 'never-existed', { parents: [ours(true)] });
  await w.flush();
  assert.equal(w.counts.gone, 1);

  route('flaky');
  server.failNext({ verb: 'update', name: 'flaky', code: 500, times: 2 });
  w.set('HTTPRoute', 'apps', 'flaky', { parents: [ours(true)] });
  await w.flush();
  assert.equal(w.counts.failed, 1);
  await eventually('the retry writes the status', () => liveParents('flaky').length === 1);
  await w.stop();
});

test('200 routes with desired statuses set twice converge with exactly one write each', T, async () => {
  const names = Array.from({ length: 200 }, (_, i) => `many-${i}`);
  for (const name of names) route(name, [theirEntry]);
  const w = writer();
  // The first desired state is superseded before it is written: coalesced, even for the writes already started.
  for (const name of names) w.set('HTTPRoute', 'apps', name, { parents: [ours(false)] });
  for (const name of names) w.set('HTTPRoute', 'apps', name, { parents: [ours(true, 2)] });
  await w.flush();
  for (const name of names) {
    const parents = liveParents(name);
    assert.deepEqual(parents[0], theirEntry);
    assert.equal(parents[1].conditions[0].status, 'True', name);
    assert.equal(parents[1].conditions[0].observedGeneration, 2, name);
  }
  for (const name of names) assert.equal(statusWrites(name), 1, name);

  // Set twice with the same state again: converged objects get no further writes.
  server.resetRequests();
  for (let round = 0; round < 2; round++) for (const name of names) w.set('HTTPRoute', 'apps', name, { parents: [ours(true, 2)] });
  await w.flush();
  assert.equal(statusWrites(), 0);

  // And set twice with a new state: exactly one write each.
  for (let round = 0; round < 2; round++) for (const name of names) w.set('HTTPRoute', 'apps', name, { parents: [ours(true, 3)] });
  await w.flush();
  for (const name of names) assert.equal(statusWrites(name), 1, name);
});

test('lastTransitionTime is kept for unchanged conditions and moves for changed ones (Gateway, listeners included)', T, async () => {
  server.set({ apiVersion: GW_API, kind: 'Gateway', metadata: { name: 'gw', namespace: 'infra' }, spec: { gatewayClassName: 'vgw', listeners: [] } });
  const status = (programmed: boolean, generation: number, address = '10.0.0.1'): GatewayStatus => ({
    addresses: [{ type: 'IPAddress', value: address }],
    conditions: [cond('Accepted', true, 'Accepted', generation), cond('Programmed', programmed, programmed ? 'Programmed' : 'Pending', generation)],
    listeners: [{ name: 'http', supportedKinds: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute' }], attachedRoutes: 1, conditions: [cond('Accepted', true, 'Accepted', generation)] }],
  });
  const live = () => server.get({ apiVersion: GW_API, kind: 'Gateway', namespace: 'infra', name: 'gw' })!.status as unknown as GatewayStatus;
  const w = writer();
  clock = new Date('2030-01-01T00:00:00Z');
  w.set('Gateway', 'infra', 'gw', status(false, 1));
  await w.flush();
  assert.ok(live().conditions.every((c) => c.lastTransitionTime === '2030-01-01T00:00:00Z'));

  clock = new Date('2030-01-02T00:00:00Z');
  w.set('Gateway', 'infra', 'gw', status(true, 2));
  await w.flush();
  const [accepted, programmed] = live().conditions;
  assert.equal(accepted.lastTransitionTime, '2030-01-01T00:00:00Z', 'unchanged verdict on a newer generation keeps its time');
  assert.equal(accepted.observedGeneration, 2);
  assert.equal(programmed.lastTransitionTime, '2030-01-02T00:00:00Z', 'a transition gets the new time');
  assert.equal(live().listeners[0].conditions[0].lastTransitionTime, '2030-01-01T00:00:00Z');

  // Addresses are part of the status compared: a new address alone is written.
  server.resetRequests();
  w.set('Gateway', 'infra', 'gw', status(true, 2, '10.0.0.2'));
  await w.flush();
  assert.equal(statusWrites('gw'), 1);
  assert.deepEqual(live().addresses, [{ type: 'IPAddress', value: '10.0.0.2' }]);
  assert.equal(live().conditions[0].lastTransitionTime, '2030-01-01T00:00:00Z');
});

test('GatewayClass status is written whole, at cluster scope', T, async () => {
  server.set({ apiVersion: GW_API, kind: 'GatewayClass', metadata: { name: 'vgw' }, spec: { controllerName: CONTROLLER_NAME }, status: { conditions: [{ ...cond('Accepted', false, 'Pending'), status: 'Unknown' }] } });
  const w = writer();
  w.set('GatewayClass', undefined, 'vgw', { conditions: [cond('Accepted', true, 'Accepted')], supportedFeatures: [{ name: 'HTTPRoute' }] });
  await w.flush();
  const st = server.get({ apiVersion: GW_API, kind: 'GatewayClass', name: 'vgw' })!.status as { conditions: Condition[]; supportedFeatures: unknown[] };
  assert.equal(st.conditions.length, 1);
  assert.equal(st.conditions[0].status, 'True');
  assert.deepEqual(st.supportedFeatures, [{ name: 'HTTPRoute' }]);
});

test('onlyStatusChanged tells our own status writes from spec and metadata changes', () => {
  const base = { metadata: { generation: 3, resourceVersion: '10', labels: { a: '1' }, annotations: { b: '2' } }, spec: { x: 1 }, status: { s: 1 } };
  assert.equal(onlyStatusChanged(base, { ...base, metadata: { ...base.metadata, resourceVersion: '11' }, status: { s: 2 } }), true);
  assert.equal(onlyStatusChanged(base, { ...base, metadata: { ...base.metadata, generation: 4 } }), false);
  assert.equal(onlyStatusChanged(base, { ...base, metadata: { ...base.metadata, labels: { a: '2' } } }), false);
  assert.equal(onlyStatusChanged(base, { ...base, metadata: { ...base.metadata, annotations: {} } }), false);
  assert.equal(onlyStatusChanged(base, { ...base, spec: { x: 2 } }), false);
  assert.equal(onlyStatusChanged(base, { ...base, metadata: { ...base.metadata, deletionTimestamp: '2030-01-01T00:00:00Z' } }), false);
});
