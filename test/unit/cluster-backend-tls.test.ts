// Backend TLS material through the Gateway's certificate Secret: what the operator publishes for
// the IR's TLS services, and the backend TLS proxy configuration a pod builds from it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { podBackendTlsMaterial } from '../../src/chaperone/pod-backend-tls.ts';
import { backendTlsMaterial, backendTlsProxy, tlsProxyTargets } from '../../src/pipeline/backend-tls-proxy.ts';
import { TlsProxyPorts } from '../../src/runtime/tls-proxy-ports.ts';
import { secretValue, TLS_CERT_KEY } from '../../src/gatewayapi/certificates.ts';
import type { ConfigMap } from '../../src/gatewayapi/types.ts';
import { backendCaBundleId, backendClientId, caBundleId, decodeCertificateSecret } from '../../src/ir/certificate-secret.ts';
import { tlsProxyKey } from '../../src/ir/backend-tls.ts';
import { serviceKey, type EndpointMap, type IRService, type RoutingIR } from '../../src/ir/types.ts';
import { certificatePems, wantsCertificateSecret } from '../../src/operator/publish-certificates.ts';
import { loadManifestDir } from '../../src/providers/file/load.ts';

const INPUT = join(import.meta.dirname, '..', 'testdata', 'translate', 'tls-https-listener.in.yaml');

/** A kubernetes.io/tls Secret of the testdata as client certificate, its certificate as CA bundle. */
async function fixture() {
  const dir = await mkdtemp(join(tmpdir(), 'vgw-cluster-backend-tls-'));
  try {
    await copyFile(INPUT, join(dir, 'in.yaml'));
    const { snapshot } = await loadManifestDir(dir);
    const secret = snapshot.secrets.find((s) => s.metadata.name === 'www');
    assert.ok(secret, 'the fixture has Secret default/www');
    const ca: ConfigMap = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { namespace: 'default', name: 'backend-ca' }, data: { 'ca.crt': (secretValue(secret, TLS_CERT_KEY) as Buffer).toString('utf8') } };
    const svc: IRService = {
      namespace: 'default',
      name: 'api',
      port: 443,
      portName: '',
      tls: { sni: 'api.example.com', verify: { caCertificates: [{ namespace: 'default', name: 'backend-ca' }] }, hostnames: ['api.example.com'], clientCertificate: { namespace: 'default', name: 'www' } },
    } as IRService;
    const ir = { version: 0, sockets: [], services: [svc] } as unknown as RoutingIR;
    const endpoints: EndpointMap = new Map([[serviceKey(svc), [{ address: '10.0.0.7', port: 8443 } as never]]]);
    const ports = new Map([[tlsProxyKey(svc, (endpoints.get(serviceKey(svc)) ?? [])[0]), 40001]]);
    return { secrets: snapshot.secrets, configMaps: [ca], ir, endpoints, ports };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const published = (pems: ReadonlyMap<string, Buffer>) => ({ data: Object.fromEntries([...pems].map(([k, v]) => [k, v.toString('base64')])) });
/** The proxy a pod builds from the published Secret, as the chaperone does. */
const podBackendTls = (ir: RoutingIR, endpoints: EndpointMap, ports: ReadonlyMap<string, number>, secret: ReturnType<typeof published>) =>
  backendTlsProxy(ir, endpoints, ports, podBackendTlsMaterial(secret));

test('an IR with backend TLS only still wants a certificate Secret, holding the backend material under its own prefixes', async () => {
  const { secrets, configMaps, ir } = await fixture();
  assert.equal(wantsCertificateSecret(ir), true);
  const pems = certificatePems(ir, secrets, configMaps);
  assert.deepEqual([...pems.keys()], [backendCaBundleId('default', 'backend-ca'), backendClientId('default', 'www')]);
  const decoded = decodeCertificateSecret(published(pems));
  assert.deepEqual(decoded.problems, []);
  assert.deepEqual([...decoded.backendConfigMaps.keys()], ['default/backend-ca']);
  assert.deepEqual([...decoded.backendSecrets.keys()], ['default/www']);
  assert.equal(decoded.configMaps.size + decoded.secrets.size, 0, 'backend trust is never client-validation trust');
});

test('the pod builds the backend TLS proxy from the published material', async () => {
  const { secrets, configMaps, ir, endpoints, ports } = await fixture();
  const proxy = podBackendTls(ir, endpoints, ports, published(certificatePems(ir, secrets, configMaps)));
  assert.ok(proxy);
  assert.deepEqual(proxy.missing, []);
  assert.equal(proxy.services.length, 1);
  assert.deepEqual({ ...proxy.services[0], caBundle: typeof proxy.services[0].caBundle }, { acceptPort: 40001, address: '10.0.0.7', port: 8443, sni: 'api.example.com', caBundle: 'string', hostnames: ['api.example.com'], clientCertificate: proxy.services[0].clientCertificate });
  assert.ok(proxy.services[0].clientCertificate);
  assert.equal(proxy.pems.size, 2);
});

test('material missing from the Secret, or published as a client CA bundle, leaves the service out', async () => {
  const { secrets, configMaps, ir, endpoints, ports } = await fixture();
  const pems = certificatePems(ir, secrets, configMaps);
  const misfiled = new Map([...pems].map(([k, v]) => [k === backendCaBundleId('default', 'backend-ca') ? caBundleId('default', 'backend-ca') : k, v]));
  const proxy = podBackendTls(ir, endpoints, ports, published(misfiled));
  assert.ok(proxy);
  assert.equal(proxy.services.length, 0);
  assert.match(proxy.missing.join('\n'), /ConfigMap default\/backend-ca/);
});

test('the operator keeps the CA ConfigMaps BackendTLSPolicies trust and the Gateways\' backend client certificates', async () => {
  const { referencedCaConfigMaps } = await import('../../src/operator/ca-bundles.ts');
  const { referencedSecrets } = await import('../../src/operator/certificate-secrets.ts');
  const policy = {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'BackendTLSPolicy' as const,
    metadata: { namespace: 'apps', name: 'p' },
    spec: { targetRefs: [], validation: { hostname: 'api', caCertificateRefs: [{ group: '', kind: 'ConfigMap', name: 'ca' }, { group: 'x', kind: 'Other', name: 'no' }] } },
  };
  assert.deepEqual([...referencedCaConfigMaps([], [policy])], ['apps/ca']);
  const gateway = { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { namespace: 'gw', name: 'g' }, spec: { gatewayClassName: 'c', listeners: [], tls: { backend: { clientCertificateRef: { name: 'client' } } } } };
  assert.deepEqual([...referencedSecrets([gateway as never])], ['gw/client']);
});

test('a policy\'s ancestor status keeps other controllers\' entries and replaces ours', async () => {
  const { mergePolicyAncestors } = await import('../../src/operator/status-writer.ts');
  const { CONTROLLER_NAME: ours } = await import('../../src/gatewayapi/features.ts');
  const cond = (status: 'True' | 'False') => [{ type: 'Accepted', status, reason: status === 'True' ? 'Accepted' : 'Invalid', message: '', observedGeneration: 1, lastTransitionTime: '2026-01-01T00:00:00Z' }];
  const ref = (name: string) => ({ group: 'gateway.networking.k8s.io', kind: 'Gateway', namespace: 'gw', name });
  const live = [
    { ancestorRef: ref('theirs'), controllerName: 'example.com/other', conditions: cond('True') },
    { ancestorRef: ref('g'), controllerName: ours, conditions: cond('True') },
    { ancestorRef: ref('gone'), controllerName: ours, conditions: cond('True') },
  ];
  const merged = mergePolicyAncestors(live, [{ ancestorRef: ref('g'), controllerName: ours, conditions: cond('False') }], 'apps', '2026-01-02T00:00:00Z');
  assert.deepEqual(merged.map((a) => [a.ancestorRef.name, a.controllerName === ours, a.conditions[0].status]), [['theirs', false, 'True'], ['g', true, 'False']]);
});

test('a proxy port moves when what its connections trust changes, and stays otherwise', async () => {
  const { secrets, configMaps, ir, endpoints } = await fixture();
  const ports = new TlsProxyPorts();
  const first = await ports.assign(tlsProxyTargets(ir, endpoints, backendTlsMaterial(configMaps, secrets))).then((m) => new Map(m));
  assert.equal(first.size, 1);
  const same = tlsProxyTargets(ir, endpoints, backendTlsMaterial(configMaps, secrets));
  assert.equal(ports.needsAssign(same), false);
  assert.deepEqual(new Map(await ports.assign(same)), first, 'nothing changed: same port, open connections keep serving');

  // The trusted CA bundle's bytes change (a rotation): same key, new fingerprint, new port.
  const rotated: ConfigMap[] = [{ ...configMaps[0], data: { 'ca.crt': `${configMaps[0].data?.['ca.crt'] ?? ''}\n` } }];
  const afterRotation = tlsProxyTargets(ir, endpoints, backendTlsMaterial(rotated, secrets));
  assert.deepEqual([...afterRotation.keys()], [...first.keys()]);
  assert.equal(ports.needsAssign(afterRotation), true);
  const moved = new Map(await ports.assign(afterRotation));
  assert.notEqual(moved.get([...first.keys()][0]), first.get([...first.keys()][0]), 'no request reuses a connection verified by the old CA');

  // A changed hostname to verify moves it too.
  const svc = ir.services[0];
  const renamed = { ...ir, services: [{ ...svc, tls: { ...svc.tls!, hostnames: ['other.example.com'] } }] } as RoutingIR;
  assert.equal(ports.needsAssign(tlsProxyTargets(renamed, endpoints, backendTlsMaterial(rotated, secrets))), true);
});
