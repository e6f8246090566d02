// A Gateway's certificate Secret: what the operator writes (exactly the certificates the IR
// names, bounded), what a gateway pod reads back (checked again), the listener condition for
// certificates left out, and the per-Gateway RBAC that lets pods read this one Secret only.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1Secret } from '@kubernetes/client-node';
import { podTls } from '../../src/chaperone/pod-tls.ts';
import { translate } from '../../src/gatewayapi/translator.ts';
import type { GatewayStatus } from '../../src/gatewayapi/status.ts';
import {
  CERTIFICATE_SECRET_BYTES,
  certificateId,
  certificateSecretHash,
  decodeCertificateSecret,
  encodeCertificateSecret,
  OMITTED_ANNOTATION,
} from '../../src/ir/certificate-secret.ts';
import { certificatePems, markOmittedCertificates } from '../../src/operator/publish-certificates.ts';
import { referencedSecrets } from '../../src/operator/certificate-secrets.ts';
import { certificateSecretName, renderInfrastructure } from '../../src/operator/infrastructure.ts';
import { defaultParameters } from '../../src/operator/parameters.ts';
import { tlsFrontends } from '../../src/pipeline/tls-frontends.ts';
import { loadManifestDir } from '../../src/providers/file/load.ts';

const INPUT = join(import.meta.dirname, '..', 'testdata', 'translate', 'tls-https-listener.in.yaml');

async function fixture() {
  const dir = await mkdtemp(join(tmpdir(), 'vgw-cert-secret-'));
  try {
    await copyFile(INPUT, join(dir, 'in.yaml'));
    const { snapshot } = await loadManifestDir(dir);
    const result = translate(snapshot, { defaultAddress: '127.0.0.1', now: '2026-01-01T00:00:00Z', sharedDataPlane: false });
    const gw = result.gateways.find((g) => g.gateway.name === 'gw');
    assert.ok(gw, 'the fixture Gateway is accepted');
    return { snapshot, gw, ir: gw.routing };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The Secret as the API returns it to a pod. */
function asPublished(pems: ReadonlyMap<string, Buffer>): V1Secret {
  const { secret } = encodeCertificateSecret(pems, 'default', 'gw', certificateSecretName('default', 'gw'));
  return secret as unknown as V1Secret;
}

test('the operator publishes exactly the certificates the IR names; the pod gets the same frontends and PEMs as from the Secrets themselves', async () => {
  const { snapshot, ir } = await fixture();
  // A Secret no listener names is in the snapshot too: it must not be published.
  const unrelated = { ...snapshot.secrets[0], metadata: { ...snapshot.secrets[0].metadata, name: 'unrelated' } };
  const pems = certificatePems(ir, [...snapshot.secrets, unrelated]);
  assert.deepEqual([...pems.keys()], [certificateId('default', 'www'), certificateId('certs', 'api')]);
  const published = asPublished(pems);
  assert.equal(published.type, 'Opaque');
  assert.deepEqual(Object.keys(published.data ?? {}).sort(), ['certs_api', 'default_www']);

  const direct = tlsFrontends(ir, new Map(snapshot.secrets.map((s) => [`${s.metadata.namespace}/${s.metadata.name}`, s])));
  const pod = podTls(ir, published);
  assert.ok(pod);
  assert.deepEqual(pod.frontends, direct.frontends);
  assert.deepEqual([...pod.pems.entries()], [...direct.pems.entries()]);
  assert.deepEqual(pod.problems, []);
  assert.equal(pod.pending, false);
});

test('a rotated certificate changes the pod key (a hitch reload); the same content keeps it', async () => {
  const { snapshot, ir } = await fixture();
  const pems = certificatePems(ir, snapshot.secrets);
  const before = podTls(ir, asPublished(pems))?.key;
  assert.equal(podTls(ir, asPublished(new Map(pems)))?.key, before);
  // Swap the two certificates' material: same ids, different PEMs.
  const [a, b] = [...pems.keys()];
  const rotated = new Map([[a, pems.get(b) as Buffer], [b, pems.get(a) as Buffer]]);
  assert.notEqual(podTls(ir, asPublished(rotated))?.key, before);
});

test('over the size bound: later certificates are left out and named in the annotation; the pod does not wait for them', async () => {
  const { snapshot, ir } = await fixture();
  const pems = certificatePems(ir, snapshot.secrets);
  const [first, second] = [...pems.keys()];
  const big = Buffer.concat([pems.get(second) as Buffer, Buffer.alloc(CERTIFICATE_SECRET_BYTES, 0x20)]);
  const encoded = encodeCertificateSecret(new Map([[first, pems.get(first) as Buffer], [second, big]]), 'default', 'gw', 'x');
  assert.deepEqual(Object.keys(encoded.secret.data), [first]);
  assert.deepEqual(encoded.omitted.map((o) => o.id), [second]);
  assert.match(encoded.omitted[0].reason, new RegExp(`exceed ${CERTIFICATE_SECRET_BYTES} bytes`));
  assert.deepEqual(JSON.parse(encoded.secret.metadata.annotations[OMITTED_ANNOTATION]), [second]);
  assert.notEqual(encoded.sha256, encodeCertificateSecret(pems, 'default', 'gw', 'x').sha256);

  const pod = podTls(ir, encoded.secret as unknown as V1Secret);
  assert.ok(pod);
  assert.equal(pod.pending, false, 'the socket still has the first certificate');
  assert.deepEqual(pod.frontends.map((f) => f.certificates), [[first]]);
  assert.match(pod.problems.join('\n'), /certs\/api: not in the certificate Secret/);
});

test('a pod starting before the Secret caught up waits (pending); unless the operator said it left the certificates out', async () => {
  const { ir } = await fixture();
  const none = podTls(ir, undefined);
  assert.ok(none);
  assert.equal(none.pending, true);
  assert.deepEqual(none.frontends, []);
  const empty = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'x', annotations: { [OMITTED_ANNOTATION]: JSON.stringify(['default_www', 'certs_api']) } }, data: {} } as V1Secret;
  assert.equal(podTls(ir, empty)?.pending, false);
  assert.equal(podTls({ ...ir, sockets: ir.sockets.filter((s) => !s.tls) }, undefined), null, 'no TLS socket: no terminator');
});

test('the pod checks the published Secret again: bad keys, PEM without or with two keys, a key of another certificate', async () => {
  const { snapshot, ir } = await fixture();
  const pems = certificatePems(ir, snapshot.secrets);
  const www = (pems.get('default_www') as Buffer).toString('utf8');
  const api = (pems.get('certs_api') as Buffer).toString('utf8');
  const certOf = (pem: string) => pem.slice(0, pem.indexOf('-----BEGIN', pem.indexOf('-----END')));
  const keyOf = (pem: string) => pem.slice(pem.lastIndexOf('-----BEGIN'));
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const decoded = decodeCertificateSecret({
    data: {
      '../etc_passwd': b64(www),
      default_nokey: b64(certOf(www)),
      default_twokeys: b64(www + keyOf(api)),
      default_www: b64(www),
    },
  });
  assert.deepEqual([...decoded.secrets.keys()], ['default/www']);
  assert.equal(decoded.problems.length, 3, decoded.problems.join('\n'));
  assert.ok(decoded.problems.every((p) => !p.includes('PRIVATE KEY')), 'messages never quote content');

  // Certificate of one, key of the other: split fine, refused by the pair check in tlsFrontends.
  const swapped = podTls(ir, { data: { default_www: b64(certOf(www) + keyOf(api)), certs_api: b64(api) } } as V1Secret);
  assert.ok(swapped);
  assert.match(swapped.problems.join('\n'), /default\/www: tls\.key does not belong to the certificate/);
  assert.deepEqual(swapped.frontends.map((f) => f.certificates), [['certs_api']]);
});

test('hash of the live Secret: what the operator compares before writing', async () => {
  const { snapshot, ir } = await fixture();
  const encoded = encodeCertificateSecret(certificatePems(ir, snapshot.secrets), 'default', 'gw', 'x');
  const live = { metadata: { labels: { ...encoded.secret.metadata.labels, other: 'label' }, annotations: { 'kubectl.kubernetes.io/x': 'y' } }, data: { ...encoded.secret.data } };
  assert.equal(certificateSecretHash(live), encoded.sha256, 'labels and annotations of others do not count');
  live.data = { ...live.data, stale_entry: 'eA==' };
  assert.notEqual(certificateSecretHash(live), encoded.sha256, 'an entry the IR does not name is removed');
});

test('listeners whose certificates were left out get ResolvedRefs=False; the others keep theirs', async () => {
  const { snapshot } = await fixture();
  const gateway = snapshot.gateways.find((g) => g.metadata.name === 'gw');
  assert.ok(gateway);
  const ok = { type: 'ResolvedRefs', status: 'True' as const, reason: 'ResolvedRefs', message: '', observedGeneration: 1, lastTransitionTime: '2026-01-01T00:00:00Z' };
  const status: GatewayStatus = {
    conditions: [],
    listeners: ['http', 'https'].map((name) => ({ name, supportedKinds: [], attachedRoutes: 0, conditions: [{ ...ok }] })),
  };
  markOmittedCertificates(status, gateway, [{ id: 'certs_api', reason: 'too big' }], 1, '2026-01-02T00:00:00Z', undefined);
  assert.deepEqual(status.listeners[0].conditions, [ok]);
  const c = status.listeners[1].conditions.find((x) => x.type === 'ResolvedRefs');
  assert.equal(c?.status, 'False');
  assert.equal(c?.reason, 'InvalidCertificateRef');
  assert.match(c?.message ?? '', /Secret certs\/api: too big/);
});

test('the operator reads only the Secrets HTTPS listeners reference', async () => {
  const { snapshot } = await fixture();
  assert.deepEqual([...referencedSecrets(snapshot.gateways)].sort(), ['certs/api', 'default/www']);
});

test('gateway pods may read their own certificate Secret and no other: a Role by resourceNames, the same name as their flag', () => {
  const r = renderInfrastructure({ namespace: 'shop', name: 'public', uid: 'u' }, { listeners: [{ name: 'https', protocol: 'HTTPS', port: 443, hostname: '*', certificateRefs: [] }], addresses: [], labels: {}, annotations: {} }, defaultParameters(), { defaultImage: 'vgw:test' });
  const name = certificateSecretName('shop', 'public');
  assert.deepEqual(r.certificateRole.rules, [{ apiGroups: [''], resources: ['secrets'], resourceNames: [name], verbs: ['get', 'list', 'watch'] }]);
  assert.deepEqual(r.certificateRoleBinding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: r.certificateRole.metadata?.name });
  assert.deepEqual(r.certificateRoleBinding.subjects, [{ kind: 'ServiceAccount', name: r.serviceAccount.metadata?.name, namespace: 'shop' }]);
  assert.notEqual(r.certificateRoleBinding.metadata?.name, r.roleBinding.metadata?.name);
  const args = r.deployment.spec?.template.spec?.containers[0].args ?? [];
  assert.ok(args.includes(`--certificate-secret=${name}`), args.join(' '));
  assert.deepEqual(r.service.spec?.ports?.map((p) => p.port), [443], 'HTTPS listener ports are Service ports');
});
