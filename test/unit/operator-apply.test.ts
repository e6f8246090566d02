// When the operator replaces a per-Gateway object: the rendering must be contained in the live
// object (apiserver defaults and others' annotations ignored), labels must be equal.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { contains, matches } from '../../src/operator/apply.ts';

const desired = {
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name: 's', namespace: 'n', labels: { a: '1' }, annotations: { x: 'y' } },
  spec: { type: 'LoadBalancer', ports: [{ name: 'l-80', port: 80 }] },
};
const live = {
  ...desired,
  metadata: { ...desired.metadata, resourceVersion: '7', annotations: { x: 'y', 'other.example/tool': 'z' } },
  spec: { ...desired.spec, clusterIP: '10.0.0.1', ports: [{ name: 'l-80', port: 80, protocol: 'TCP', nodePort: 30080 }] },
  status: { loadBalancer: {} },
};

test('defaults and others\' annotations on the live object are not differences', () => {
  assert.equal(matches(desired, live), true);
});

test('a changed field, a missing list element, a changed or extra label are differences', () => {
  assert.equal(matches({ ...desired, spec: { ...desired.spec, type: 'NodePort' } }, live), false);
  assert.equal(matches({ ...desired, spec: { ...desired.spec, ports: [...desired.spec.ports, { name: 'l-81', port: 81 }] } }, live), false);
  assert.equal(matches({ ...desired, metadata: { ...desired.metadata, labels: { a: '2' } } }, live), false);
  assert.equal(matches(desired, { ...live, metadata: { ...live.metadata, labels: { a: '1', stale: 'x' } } }), false);
  assert.equal(matches({ ...desired, metadata: { ...desired.metadata, annotations: { x: 'changed' } } }, live), false);
});

test('contains: undefined wants nothing, arrays must have the same length', () => {
  assert.equal(contains({ a: undefined }, {}), true);
  assert.equal(contains([1], [1, 2]), false);
  assert.equal(contains({ a: { b: 1 } }, { a: { b: 1, c: 2 } }), true);
  assert.equal(contains({ a: [] }, { a: null }), false);
});
