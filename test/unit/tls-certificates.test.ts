// HTTPS listener certificates in the translator and the IR: key material never leaves the
// Secret, the IR names certificates only, and merged IRs keep every Gateway's certificates.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadManifestDir } from '../../src/providers/file/load.ts';
import { translate } from '../../src/gatewayapi/translator.ts';
import { secretValue, tlsSecretProblem } from '../../src/gatewayapi/certificates.ts';
import { mergeGatewayIRs } from '../../src/ir/merge.ts';
import { parseRoutingIR } from '../../src/ir/schema.ts';
import type { Secret } from '../../src/gatewayapi/types.ts';

const DIR = join(import.meta.dirname, '..', 'testdata', 'translate');

async function translated(name: string) {
  const { mkdtemp, copyFile, rm } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const dir = await mkdtemp(join(tmpdir(), 'vgw-tls-unit-'));
  try {
    await copyFile(join(DIR, `${name}.in.yaml`), join(dir, 'in.yaml'));
    const { snapshot } = await loadManifestDir(dir);
    return { snapshot, result: translate(snapshot, { defaultAddress: '127.0.0.1', now: '2026-01-01T00:00:00Z' }) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('no key material reaches the IR, statuses or problems, whatever the Secrets hold', async () => {
  for (const name of ['tls-https-listener', 'tls-invalid-certificate-refs']) {
    const { snapshot, result } = await translated(name);
    const text = JSON.stringify(result);
    assert.ok(!text.includes('PRIVATE KEY'), name);
    for (const s of snapshot.secrets) {
      const key = secretValue(s, 'tls.key')?.toString('utf8');
      // Any line of the key body (base64) would be a leak, not only the whole key.
      for (const line of (key ?? '').split('\n').filter((l) => l.length > 20 && !l.startsWith('-----'))) assert.ok(!text.includes(line), `${name}: ${s.metadata.name}`);
    }
  }
});

test('the IR of an HTTPS socket names its certificates, default first, and passes the IR schema', async () => {
  const { result } = await translated('tls-https-listener');
  const https = result.ir.sockets.find((s) => s.port === 443);
  assert.deepEqual(
    https?.tls?.certificates.map((c) => `${c.namespace}/${c.name} ${c.hostnames.join(',')}`),
    ['default/www www.example.com,*.example.com', 'certs/api api.example.org'],
  );
  assert.equal(result.ir.sockets.find((s) => s.port === 80)?.tls, undefined, 'a plain socket has no tls');
  const parsed = parseRoutingIR(JSON.parse(JSON.stringify(result.ir)));
  assert.ok(parsed.ok, parsed.ok ? '' : parsed.reason);
  const { routeGenerations: _, ...merged } = mergeGatewayIRs(result.gateways.map((g) => g.routing));
  assert.deepEqual(merged, result.ir, 'merging the per-Gateway IRs keeps the certificates');
});

test('the IR schema refuses a TLS socket without certificates and certificate names that are not hostnames', async () => {
  const { result } = await translated('tls-https-listener');
  const ir = JSON.parse(JSON.stringify(result.ir));
  const https = ir.sockets.find((s: { port: number }) => s.port === 443);
  https.tls.certificates[0].hostnames.push('bad host');
  const bad = parseRoutingIR(ir);
  assert.ok(!bad.ok && /sockets\[1\]\.tls\.certificates\[0\]\.hostnames\[2\]/.test(bad.reason), bad.ok ? '' : bad.reason);
  https.tls.certificates = [];
  assert.ok(!parseRoutingIR(ir).ok);
  https.tls.certificates = [{ namespace: 'default', name: 'x', hostnames: [], key: 'secret' }];
  assert.ok(!parseRoutingIR(ir).ok, 'no field beyond the reference is accepted');
});

test('a Secret whose key does not match its certificate, or that is not PEM, is refused with a message that quotes nothing of it', async () => {
  const { snapshot } = await translated('tls-https-listener');
  const www = snapshot.secrets.find((s) => s.metadata.name === 'www') as Secret;
  const api = snapshot.secrets.find((s) => s.metadata.name === 'api') as Secret;
  assert.equal(tlsSecretProblem(www), null);
  const mixed: Secret = { ...www, stringData: { 'tls.crt': String(secretValue(www, 'tls.crt')), 'tls.key': String(secretValue(api, 'tls.key')) } };
  assert.equal(tlsSecretProblem(mixed), 'tls.key does not belong to the certificate in tls.crt');
  const garbage: Secret = { ...www, stringData: { 'tls.crt': String(secretValue(www, 'tls.crt')), 'tls.key': 'hunter2-not-a-key' } };
  assert.equal(tlsSecretProblem(garbage), 'tls.key is not an unencrypted PEM private key');
  const base64: Secret = { ...www, stringData: undefined, data: { 'tls.crt': secretValue(www, 'tls.crt')!.toString('base64'), 'tls.key': secretValue(www, 'tls.key')!.toString('base64') } };
  assert.equal(tlsSecretProblem(base64), null, 'data (base64) is read like stringData');
});

test('binding an IR to the pod address keeps each TLS socket and its certificates', async () => {
  const { bindSocketsTo } = await import('../../src/ir/bind-address.ts');
  const { result } = await translated('tls-https-listener');
  const bound = bindSocketsTo(result.ir, '10.1.2.3');
  assert.ok(bound.ok);
  const https = bound.ir.sockets.find((s) => s.port === 443);
  assert.deepEqual(https?.tls, result.ir.sockets.find((s) => s.port === 443)?.tls);
  assert.equal(bound.ir.sockets.find((s) => s.port === 80)?.tls, undefined);
});

test('where HTTPS cannot be served (httpsListeners: false, the operator) an HTTPS listener is UnsupportedProtocol and gets no socket', async () => {
  const { snapshot } = await translated('tls-https-listener');
  const off = translate(snapshot, { defaultAddress: '127.0.0.1', now: '2026-01-01T00:00:00Z', httpsListeners: false });
  const gateways = off.statuses.filter((s) => s.kind === 'Gateway');
  const listeners = gateways.flatMap((g) => ((g.status as { listeners?: { name: string; conditions: { type: string; status: string; reason: string }[] }[] }).listeners ?? []));
  const https = snapshot.gateways.flatMap((g) => g.spec.listeners.filter((l) => l.protocol === 'HTTPS').map((l) => l.name));
  assert.ok(https.length > 0);
  for (const name of https) {
    const accepted = listeners.find((l) => l.name === name)?.conditions.find((c) => c.type === 'Accepted');
    assert.deepEqual([accepted?.status, accepted?.reason], ['False', 'UnsupportedProtocol'], name);
  }
  assert.ok(off.ir.sockets.every((s) => s.tls === undefined), 'no TLS socket in the IR');
  const on = translate(snapshot, { defaultAddress: '127.0.0.1', now: '2026-01-01T00:00:00Z' });
  assert.ok(on.ir.sockets.some((s) => s.tls !== undefined), 'served by default');
});
