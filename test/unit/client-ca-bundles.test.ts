// Client certificate validation in cluster mode: the operator reads the CA bundle ConfigMaps
// Gateways name (and only those), publishes their ca.crt in the Gateway's certificate Secret,
// and a gateway pod builds the same TLS terminator frontends from that Secret as from the
// ConfigMaps themselves: every socket that validates client certificates gets its frontend.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1Secret } from '@kubernetes/client-node';
import { podTls } from '../../src/chaperone/pod-tls.ts';
import type { GatewayStatus } from '../../src/gatewayapi/status.ts';
import { translate } from '../../src/gatewayapi/translator.ts';
import { caBundleId, certificateId, decodeCertificateSecret, encodeCertificateSecret, OMITTED_ANNOTATION } from '../../src/ir/certificate-secret.ts';
import { referencedCaConfigMaps } from '../../src/operator/ca-bundles.ts';
import { certificatePems, markOmittedCertificates } from '../../src/operator/publish-certificates.ts';
import { tlsFrontends } from '../../src/pipeline/tls-frontends.ts';
import { loadManifestDir } from '../../src/providers/file/load.ts';

const INPUT = join(import.meta.dirname, '..', 'testdata', 'translate', 'tls-frontend-validation.in.yaml');

async function fixture() {
  const dir = await mkdtemp(join(tmpdir(), 'vgw-client-ca-'));
  try {
    await copyFile(INPUT, join(dir, 'in.yaml'));
    const { snapshot } = await loadManifestDir(dir);
    const result = translate(snapshot, { defaultAddress: '127.0.0.1', now: '2026-01-01T00:00:00Z', sharedDataPlane: false });
    const gw = result.gateways.find((g) => g.gateway.name === 'gw');
    assert.ok(gw, 'the fixture Gateway is accepted');
    const validating = gw.routing.sockets.filter((s) => s.tls?.clientValidation);
    assert.ok(validating.length >= 2, 'the fixture has sockets with client validation');
    return { snapshot, ir: gw.routing };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function published(pems: ReadonlyMap<string, Buffer>): V1Secret {
  return encodeCertificateSecret(pems, 'default', 'gw', 'gw-certificates').secret as unknown as V1Secret;
}

test('the pod serves client validation from the published Secret exactly as from the ConfigMaps themselves', async () => {
  const { snapshot, ir } = await fixture();
  const pems = certificatePems(ir, snapshot.secrets, snapshot.configMaps);
  assert.deepEqual([...pems.keys()].filter((id) => id.startsWith('ca.')).sort(), [caBundleId('default', 'client-ca'), caBundleId('granted', 'ca')]);

  const direct = tlsFrontends(
    ir,
    new Map(snapshot.secrets.map((s) => [`${s.metadata.namespace}/${s.metadata.name}`, s])),
    new Map(snapshot.configMaps.map((c) => [`${c.metadata.namespace}/${c.metadata.name}`, c])),
  );
  assert.ok(direct.frontends.some((f) => f.clientVerify?.mode === 'required'));
  assert.ok(direct.frontends.some((f) => f.clientVerify?.mode === 'optional'));
  const pod = podTls(ir, published(pems));
  assert.ok(pod);
  assert.deepEqual(pod.frontends, direct.frontends);
  assert.deepEqual([...pod.caBundles.entries()], [...direct.caBundles.entries()]);
  assert.deepEqual(pod.problems, []);
  assert.equal(pod.pending, false);
});

test('a rotated CA bundle changes the pod key (a terminator reload)', async () => {
  const { snapshot, ir } = await fixture();
  const pems = certificatePems(ir, snapshot.secrets, snapshot.configMaps);
  const before = podTls(ir, published(pems))?.key;
  assert.equal(podTls(ir, published(new Map(pems)))?.key, before, 'the same content keeps the key');
  // Another CA: the certificate part of the serving certificate's PEM.
  const www = (pems.get(certificateId('default', 'www')) as Buffer).toString('utf8');
  const other = www.slice(0, www.indexOf('-----END CERTIFICATE-----') + '-----END CERTIFICATE-----'.length) + '\n';
  const rotated = new Map(pems);
  rotated.set(caBundleId('default', 'client-ca'), Buffer.from(other));
  assert.notEqual(podTls(ir, published(rotated))?.key, before);
});

test('without its CA bundles a validating socket is not served; a starting pod waits unless the operator left them out', async () => {
  const { snapshot, ir } = await fixture();
  const certificatesOnly = new Map([...certificatePems(ir, snapshot.secrets, snapshot.configMaps)].filter(([id]) => !id.startsWith('ca.')));
  const pod = podTls(ir, published(certificatesOnly));
  assert.ok(pod);
  assert.ok(pod.frontends.every((f) => f.clientVerify === undefined), 'never served without the validation asked for');
  assert.equal(pod.pending, true);
  assert.match(pod.problems.join('\n'), /CA bundle default\/client-ca: not in the certificate Secret/);

  const secret = published(certificatesOnly);
  secret.metadata!.annotations = { [OMITTED_ANNOTATION]: JSON.stringify([caBundleId('default', 'client-ca'), caBundleId('granted', 'ca')]) };
  assert.equal(podTls(ir, secret)?.pending, false);
});

test('CA bundle entries are told apart from certificates and checked again in the pod', async () => {
  const { snapshot, ir } = await fixture();
  const pems = certificatePems(ir, snapshot.secrets, snapshot.configMaps);
  const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');
  const decoded = decodeCertificateSecret({
    data: {
      [certificateId('default', 'www')]: b64(pems.get(certificateId('default', 'www')) as Buffer),
      [caBundleId('default', 'client-ca')]: b64(pems.get(caBundleId('default', 'client-ca')) as Buffer),
      'ca.Bad_name': b64('x'),
    },
  });
  assert.deepEqual([...decoded.secrets.keys()], ['default/www']);
  assert.deepEqual([...decoded.configMaps.keys()], ['default/client-ca']);
  assert.equal(decoded.problems.length, 1);

  // A CA entry that is no PEM: that socket gets no frontend, named as a CA bundle problem.
  const broken = new Map(pems);
  broken.set(caBundleId('default', 'client-ca'), Buffer.from('not a certificate\n'));
  const pod = podTls(ir, published(broken));
  assert.ok(pod);
  assert.match(pod.problems.join('\n'), /CA bundle default\/client-ca: ca\.crt holds no PEM certificate/);
  assert.ok(!pod.problems.join('\n').includes('not a certificate'), 'messages never quote content');
});

test('listeners whose CA bundles were left out get ResolvedRefs=False (InvalidCACertificateRef)', async () => {
  const { snapshot } = await fixture();
  const gateway = snapshot.gateways.find((g) => g.metadata.name === 'gw');
  assert.ok(gateway);
  const ok = { type: 'ResolvedRefs', status: 'True' as const, reason: 'ResolvedRefs', message: '', observedGeneration: 1, lastTransitionTime: '2026-01-01T00:00:00Z' };
  const status: GatewayStatus = { conditions: [], listeners: ['http', 'https'].map((name) => ({ name, supportedKinds: [], attachedRoutes: 0, conditions: [{ ...ok }] })) };
  markOmittedCertificates(status, gateway, [{ id: caBundleId('default', 'client-ca'), reason: 'too big' }], 1, '2026-01-02T00:00:00Z', undefined);
  assert.deepEqual(status.listeners[0].conditions, [ok], 'the HTTP listener validates nothing');
  const c = status.listeners[1].conditions.find((x) => x.type === 'ResolvedRefs');
  assert.equal(c?.reason, 'InvalidCACertificateRef');
  assert.match(c?.message ?? '', /ConfigMap default\/client-ca: too big/);
});

test('the operator reads only the ConfigMaps client validation names, default and per port', async () => {
  const { snapshot } = await fixture();
  assert.deepEqual([...referencedCaConfigMaps(snapshot.gateways)].sort(), ['default/client-ca', 'default/nope', 'default/not-pem', 'granted/ca', 'other/ca'].concat(['default/no-key']).sort());
});
