// GatewayClassParameters through a Kubernetes API: created and read back with client-node's
// CustomObjectsApi, then parsed by the operator's schema, as the operator will read it.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { CustomObjectsApi } from '@kubernetes/client-node';
import {
  PARAMETERS_API_VERSION,
  PARAMETERS_GROUP,
  PARAMETERS_KIND,
  PARAMETERS_PLURAL,
  PARAMETERS_VERSION,
  parseParameters,
} from '../../src/operator/parameters.ts';
import type { KubeApiServer } from '../support/kube-api-server.ts';
import { startOperatorApi } from './support/operator-api.ts';

let server: KubeApiServer;
let custom: CustomObjectsApi;

before(async () => {
  ({ server, custom } = await startOperatorApi());
});

after(async () => {
  await server?.close();
});

test('a GatewayClassParameters object round-trips through the API and parses with its defaults', async () => {
  const body = {
    apiVersion: PARAMETERS_API_VERSION,
    kind: PARAMETERS_KIND,
    metadata: { name: 'edge' },
    spec: { replicas: 2, varnish: { parameters: { thread_pools: '4' } }, service: { type: 'NodePort' } },
  };
  await custom.createClusterCustomObject({ group: PARAMETERS_GROUP, version: PARAMETERS_VERSION, plural: PARAMETERS_PLURAL, body });
  const read = await custom.getClusterCustomObject({ group: PARAMETERS_GROUP, version: PARAMETERS_VERSION, plural: PARAMETERS_PLURAL, name: 'edge' });
  assert.equal(read.metadata.name, 'edge');
  assert.ok(read.metadata.resourceVersion, 'stored by the API server');
  const parsed = parseParameters(read);
  assert.ok(parsed.ok, parsed.ok ? '' : parsed.error);
  assert.equal(parsed.value.name, 'edge');
  assert.equal(parsed.value.spec.replicas, 2);
  assert.deepEqual(parsed.value.spec.varnish.parameters, { thread_pools: '4' });
  assert.equal(parsed.value.spec.service.type, 'NodePort');
  assert.equal(parsed.value.spec.terminationGracePeriodSeconds, 300);

  const list = await custom.listClusterCustomObject({ group: PARAMETERS_GROUP, version: PARAMETERS_VERSION, plural: PARAMETERS_PLURAL });
  assert.deepEqual((list.items as { metadata: { name: string } }[]).map((o) => o.metadata.name), ['edge']);
});

test('an object with a forbidden parameter is stored by the API but refused by the operator, naming the field', async () => {
  // The test server does not validate against the CRD schema; the operator's parse is the last line.
  const body = { apiVersion: PARAMETERS_API_VERSION, kind: PARAMETERS_KIND, metadata: { name: 'hostile' }, spec: { varnish: { parameters: { vcc_allow_inline_c: 'on' } } } };
  await custom.createClusterCustomObject({ group: PARAMETERS_GROUP, version: PARAMETERS_VERSION, plural: PARAMETERS_PLURAL, body });
  const read = await custom.getClusterCustomObject({ group: PARAMETERS_GROUP, version: PARAMETERS_VERSION, plural: PARAMETERS_PLURAL, name: 'hostile' });
  const parsed = parseParameters(read);
  assert.ok(!parsed.ok);
  assert.match(parsed.error, /^GatewayClassParameters hostile: spec\.varnish\.parameters\.vcc_allow_inline_c: parameter vcc_allow_inline_c is not allowed/);
});
