// The operator and HTTPS listeners, against the Kubernetes API test server: each Gateway's
// certificate Secret holds exactly the certificates its listeners reference, follows a
// rotation, leaves out what exceeds its bound (that listener alone gets ResolvedRefs=False),
// and is deleted when the Gateway has no HTTPS listener any more.
// Address: the API server on 127.0.107.250 (ephemeral port).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { CoreV1Api, CustomObjectsApi, V1Secret } from '@kubernetes/client-node';
import type { KubeApiServer } from '../support/kube-api-server.ts';
import { TestPki, tlsSecret, type LeafPem } from '../support/test-pki.ts';
import { CONTROLLER_NAME } from '../../src/gatewayapi/features.ts';
import type { GatewayStatus } from '../../src/gatewayapi/status.ts';
import { CERTIFICATE_SECRET_BYTES, OMITTED_ANNOTATION } from '../../src/ir/certificate-secret.ts';
import { certificateSecretName } from '../../src/operator/infrastructure.ts';
import type { Operator } from '../../src/operator/operator.ts';
import { startOperatorApi, testOperator } from './support/operator-api.ts';
import { eventually } from './support/poll.ts';

const GROUP = 'gateway.networking.k8s.io';
const GW_API = `${GROUP}/v1`;
const NS = 'web';
const NAME = certificateSecretName(NS, 'gw');

let server: KubeApiServer;
let custom: CustomObjectsApi;
let core: CoreV1Api;
let operator: Operator;
let pki: TestPki;
let www: LeafPem;
let api: LeafPem;

const httpsListener = (name: string, port: number, secret: string) => ({ name, protocol: 'HTTPS', port, tls: { certificateRefs: [{ name: secret }] } });
const published = () => server.get({ apiVersion: 'v1', kind: 'Secret', namespace: NS, name: NAME }) as (V1Secret & { data?: Record<string, string> }) | undefined;
const pemOf = (s: V1Secret | undefined, id: string) => Buffer.from(s?.data?.[id] ?? '', 'base64').toString('utf8');
const listenerStatus = (name: string) => (server.get({ apiVersion: GW_API, kind: 'Gateway', namespace: NS, name: 'gw' })?.status as GatewayStatus | undefined)?.listeners.find((l) => l.name === name);
const resolvedRefs = (name: string) => listenerStatus(name)?.conditions.find((c) => c.type === 'ResolvedRefs');

async function setListeners(listeners: object[]): Promise<void> {
  const live = (await custom.getNamespacedCustomObject({ group: GROUP, version: 'v1', plural: 'gateways', namespace: NS, name: 'gw' })) as { metadata: { resourceVersion: string } };
  await custom.replaceNamespacedCustomObject({
    group: GROUP, version: 'v1', plural: 'gateways', namespace: NS, name: 'gw',
    body: { apiVersion: GW_API, kind: 'Gateway', metadata: { name: 'gw', namespace: NS, resourceVersion: live.metadata.resourceVersion }, spec: { gatewayClassName: 'vgw', listeners } },
  });
}

before(async () => {
  pki = new TestPki();
  www = pki.leaf('www', 'www.example.com');
  api = pki.leaf('api', 'api.example.com');
  ({ server, custom, core } = await startOperatorApi({ address: '127.0.107.250' }));
  await core.createNamespace({ body: { metadata: { name: NS } } });
  for (const [name, pem] of [['www', www], ['api', api], ['unreferenced', pki.leaf('other', 'other.example.com')]] as const) {
    await core.createNamespacedSecret({ namespace: NS, body: tlsSecret(NS, name, pem) });
  }
  await custom.createClusterCustomObject({ group: GROUP, version: 'v1', plural: 'gatewayclasses', body: { apiVersion: GW_API, kind: 'GatewayClass', metadata: { name: 'vgw' }, spec: { controllerName: CONTROLLER_NAME } } });
  await custom.createNamespacedCustomObject({
    group: GROUP, version: 'v1', plural: 'gateways', namespace: NS,
    body: { apiVersion: GW_API, kind: 'Gateway', metadata: { name: 'gw', namespace: NS }, spec: { gatewayClassName: 'vgw', listeners: [httpsListener('www', 443, 'www'), httpsListener('api', 8443, 'api')] } },
  });
  operator = testOperator(server);
  await operator.start();
});

after(async () => {
  await operator?.stop();
  await server?.close();
  pki?.remove();
});

test('the certificate Secret holds exactly the referenced certificates, chain then key, owned by the Gateway', async () => {
  await eventually('certificate Secret with both listeners\' certificates', () => Object.keys(published()?.data ?? {}).length === 2);
  const s = published();
  assert.equal(s?.type, 'Opaque');
  assert.deepEqual(Object.keys(s?.data ?? {}).sort(), [`${NS}_api`, `${NS}_www`]);
  assert.equal(pemOf(s, `${NS}_www`), `${www.crt}${www.key}`);
  assert.equal(s?.metadata?.ownerReferences?.[0]?.name, 'gw');
  await eventually('both HTTPS listeners ResolvedRefs=True', () => resolvedRefs('www')?.status === 'True' && resolvedRefs('api')?.status === 'True');
});

test('a rotated Secret is published again; an unchanged one is not rewritten', async () => {
  const before = published()?.metadata?.resourceVersion;
  await operator.settle();
  assert.equal(published()?.metadata?.resourceVersion, before, 'a reconcile with nothing changed writes nothing');
  const rotated = pki.leaf('www2', 'www.example.com');
  await core.replaceNamespacedSecret({ namespace: NS, name: 'www', body: tlsSecret(NS, 'www', rotated) });
  await eventually('the rotated certificate is published', () => pemOf(published(), `${NS}_www`) === `${rotated.crt}${rotated.key}`);
  // Changes of a Secret no listener names do not matter.
  const settledVersion = published()?.metadata?.resourceVersion;
  await core.replaceNamespacedSecret({ namespace: NS, name: 'unreferenced', body: tlsSecret(NS, 'unreferenced', pki.leaf('other2', 'other.example.com')) });
  await operator.settle();
  assert.equal(published()?.metadata?.resourceVersion, settledVersion);
  assert.ok(!Object.keys(published()?.data ?? {}).some((k) => k.includes('unreferenced')));
});

test('a certificate past the size bound is left out: its listener alone gets ResolvedRefs=False, the other keeps serving', async () => {
  // A valid certificate and key, padded with text outside the PEM blocks past the bound.
  const padded = { crt: `${api.crt}${'# padding\n'.repeat(CERTIFICATE_SECRET_BYTES / 10)}`, key: api.key };
  await core.replaceNamespacedSecret({ namespace: NS, name: 'api', body: tlsSecret(NS, 'api', padded) });
  await eventually('listener api ResolvedRefs=False naming the bound', () => resolvedRefs('api')?.status === 'False');
  assert.equal(resolvedRefs('api')?.reason, 'InvalidCertificateRef');
  assert.match(resolvedRefs('api')?.message ?? '', new RegExp(`Secret ${NS}/api: the Gateway's certificates exceed ${CERTIFICATE_SECRET_BYTES} bytes`));
  assert.equal(resolvedRefs('www')?.status, 'True', 'the other listener is untouched');
  assert.deepEqual(Object.keys(published()?.data ?? {}), [`${NS}_www`]);
  assert.deepEqual(JSON.parse(published()?.metadata?.annotations?.[OMITTED_ANNOTATION] ?? '[]'), [`${NS}_api`]);

  await core.replaceNamespacedSecret({ namespace: NS, name: 'api', body: tlsSecret(NS, 'api', api) });
  await eventually('back under the bound: published, ResolvedRefs=True', () => resolvedRefs('api')?.status === 'True' && Object.keys(published()?.data ?? {}).length === 2);
  assert.equal(published()?.metadata?.annotations?.[OMITTED_ANNOTATION], undefined);
});

test('without HTTPS listeners the certificate Secret is deleted', async () => {
  await setListeners([{ name: 'http', protocol: 'HTTP', port: 80 }]);
  await eventually('certificate Secret deleted', () => published() === undefined);
  assert.ok(server.get({ apiVersion: 'v1', kind: 'Secret', namespace: NS, name: 'www' }), 'the user\'s Secrets stay');
});
