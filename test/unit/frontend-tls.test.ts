// Listener tls.options parsing, client validation in the IR and the TLS terminator's frontends:
// nothing unknown is ignored, and a socket whose CA bundles are gone is not served at all.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseTlsOptions, sameTlsOptions } from '../../src/gatewayapi/tls-options.ts';
import { caBundleProblem } from '../../src/gatewayapi/frontend-tls.ts';
import { tlsFrontends } from '../../src/pipeline/tls-frontends.ts';
import { parseRoutingIR } from '../../src/ir/schema.ts';
import { IR_VERSION, type RoutingIR } from '../../src/ir/types.ts';
import type { ConfigMap, Secret } from '../../src/gatewayapi/types.ts';

const TESTDATA = join(import.meta.dirname, '..', 'testdata', 'translate', 'tls-frontend-validation.in.yaml');
const CA = /ca\.crt: \|\n((?: {6}.*\n)+)/.exec(readFileSync(TESTDATA, 'utf8'))![1].replace(/^ {6}/gm, '');

test('tls.options: the three keys are parsed, names normalised to upper case', () => {
  const r = parseTlsOptions({
    'gateway.vgw.dev/min-tls-version': 'TLSv1.3',
    'gateway.vgw.dev/ciphers': 'ecdhe-rsa-aes128-gcm-sha256:ECDHE-ECDSA-AES256-GCM-SHA384',
    'gateway.vgw.dev/cipher-suites': 'tls_aes_256_gcm_sha384',
  });
  assert.deepEqual(r, {
    ok: true,
    options: { minVersion: 'TLSv1.3', ciphers: ['ECDHE-RSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-AES256-GCM-SHA384'], cipherSuites: ['TLS_AES_256_GCM_SHA384'] },
  });
  assert.deepEqual(parseTlsOptions(undefined), { ok: true, options: {} });
});

test('tls.options: an unknown key or a bad value is refused with a message naming the key', () => {
  const bad: [Record<string, string>, RegExp][] = [
    [{ 'example.com/x': 'y' }, /^tls\.options "example\.com\/x": not supported/],
    [{ 'gateway.vgw.dev/min-tls-version': 'TLSv1.1' }, /"gateway\.vgw\.dev\/min-tls-version": must be TLSv1\.2 or TLSv1\.3/],
    [{ 'gateway.vgw.dev/ciphers': 'HIGH:!aNULL' }, /"gateway\.vgw\.dev\/ciphers": must be cipher names/],
    [{ 'gateway.vgw.dev/ciphers': 'NOT-A-CIPHER' }, /"NOT-A-CIPHER" is not a known TLS 1\.2 cipher/],
    [{ 'gateway.vgw.dev/ciphers': 'TLS_AES_128_GCM_SHA256' }, /not a known TLS 1\.2 cipher/],
    [{ 'gateway.vgw.dev/cipher-suites': 'ECDHE-RSA-AES128-GCM-SHA256' }, /not a known TLS 1\.3 cipher suite/],
    [{ 'gateway.vgw.dev/cipher-suites': 'TLS_AES_128_GCM_SHA256:tls_aes_128_gcm_sha256' }, /lists a name twice/],
    [{ 'gateway.vgw.dev/ciphers': 'a"b' }, /must be cipher names/],
  ];
  for (const [options, message] of bad) {
    const r = parseTlsOptions(options);
    assert.ok(!r.ok && message.test(r.message), `${JSON.stringify(options)}: ${JSON.stringify(r)}`);
  }
});

test('tls.options: an explicit TLSv1.2 minimum is the same as none', () => {
  assert.ok(sameTlsOptions({ minVersion: 'TLSv1.2' }, undefined));
  assert.ok(!sameTlsOptions({ minVersion: 'TLSv1.3' }, undefined));
  assert.ok(!sameTlsOptions({ ciphers: ['A'] }, { ciphers: ['B'] }));
});

test('a CA bundle must hold PEM certificates that parse, within bounds', () => {
  const cm = (data: Record<string, string> | undefined): ConfigMap => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'ca', namespace: 'default' }, data });
  assert.equal(caBundleProblem(cm({ 'ca.crt': CA })), null);
  assert.equal(caBundleProblem(cm({ 'ca.crt': CA + CA })), null);
  assert.equal(caBundleProblem(cm(undefined)), 'ConfigMap has no ca.crt');
  assert.equal(caBundleProblem(cm({ 'ca.crt': 'x' })), 'ca.crt holds no PEM certificate');
  const broken = CA.replace(/\n[A-Za-z0-9+/]{20}/, '\n!!!!');
  assert.equal(caBundleProblem(cm({ 'ca.crt': CA + broken })), 'ca.crt: certificate 2 does not parse');
});

function ir(mode: 'AllowValidOnly' | 'AllowInsecureFallback'): RoutingIR {
  return {
    version: IR_VERSION,
    services: [],
    sockets: [
      {
        name: 'a127_0_0_1_443',
        address: '127.0.0.1',
        port: 443,
        vhosts: [],
        tls: {
          certificates: [{ namespace: 'default', name: 'www', hostnames: [] }],
          clientValidation: { mode, caCertificates: [{ namespace: 'default', name: 'ca' }, { namespace: 'default', name: 'gone' }] },
          options: { minVersion: 'TLSv1.3', cipherSuites: ['TLS_AES_256_GCM_SHA384'] },
        },
      },
    ],
  };
}

test('the IR schema accepts client validation and options and refuses anything beyond them', () => {
  const good = ir('AllowValidOnly');
  assert.ok(parseRoutingIR(JSON.parse(JSON.stringify(good))).ok);
  const extra = JSON.parse(JSON.stringify(good));
  extra.sockets[0].tls.clientValidation.pem = CA;
  assert.ok(!parseRoutingIR(extra).ok, 'the IR names CA bundles, never carries them');
  const badCipher = JSON.parse(JSON.stringify(good));
  badCipher.sockets[0].tls.options.ciphers = ['A:B'];
  const r = parseRoutingIR(badCipher);
  assert.ok(!r.ok && /sockets\[0\]\.tls\.options\.ciphers\[0\]/.test(r.reason), JSON.stringify(r));
});

test('terminator frontends: validation modes map to required/optional with the usable CA bundles; none usable = no frontend', () => {
  const secret = readSecret();
  const secrets = new Map([['default/www', secret]]);
  const ca: ConfigMap = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'ca', namespace: 'default' }, data: { 'ca.crt': CA } };
  const strict = tlsFrontends(ir('AllowValidOnly'), secrets, new Map([['default/ca', ca]]));
  assert.equal(strict.frontends.length, 1);
  const f = strict.frontends[0];
  assert.equal(f.clientVerify?.mode, 'required');
  assert.equal(strict.caBundles.get(f.clientVerify!.ca)?.toString(), CA.trim() + '\n');
  assert.equal(f.minVersion, 'TLSv1.3');
  assert.deepEqual(f.cipherSuites, ['TLS_AES_256_GCM_SHA384']);
  assert.deepEqual(strict.missing, ['default/gone: ConfigMap not found']);
  assert.equal(tlsFrontends(ir('AllowInsecureFallback'), secrets, new Map([['default/ca', ca]])).frontends[0].clientVerify?.mode, 'optional');
  const none = tlsFrontends(ir('AllowInsecureFallback'), secrets, new Map());
  assert.equal(none.frontends.length, 0, 'never served without the validation asked for');
});

function readSecret(): Secret {
  const text = readFileSync(TESTDATA, 'utf8');
  const block = (key: string) => new RegExp(`${key.replace('.', '\\.')}: \\|\\n((?: {4}.*\\n?)+)`).exec(text.slice(text.indexOf('kind: Secret')))![1].replace(/^ {4}/gm, '');
  return { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'www', namespace: 'default' }, type: 'kubernetes.io/tls', stringData: { 'tls.crt': block('tls.crt'), 'tls.key': block('tls.key') } };
}
