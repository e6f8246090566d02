import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { echoHttpsOptions } from '../../src/echo/tls-flags.ts';

test('vgw echo HTTPS mode: flags, upstream environment variables, and errors naming the flag', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'vgw-echo-flags-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const pem = path.join(dir, 'a.pem');
  const junk = path.join(dir, 'junk');
  await writeFile(pem, '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
  await writeFile(junk, 'not a certificate');

  assert.equal(await echoHttpsOptions({}, {}), undefined);
  const fromFlags = await echoHttpsOptions({ 'tls-cert': pem, 'tls-key': pem, 'https-port': '9443' }, {});
  assert.equal(fromFlags?.port, 9443);
  assert.equal(fromFlags?.clientCa, undefined);
  const fromEnv = await echoHttpsOptions({}, { TLS_SERVER_CERT: pem, TLS_SERVER_PRIVKEY: pem, TLS_CLIENT_CACERTS: pem });
  assert.equal(fromEnv?.port, 8443);
  assert.ok(fromEnv?.clientCa?.includes('BEGIN CERTIFICATE'));

  await assert.rejects(echoHttpsOptions({ 'tls-cert': pem }, {}), /--tls-cert and --tls-key/);
  await assert.rejects(echoHttpsOptions({ 'https-port': '8443' }, {}), /--https-port and --tls-client-ca need --tls-cert/);
  await assert.rejects(echoHttpsOptions({ 'tls-cert': pem, 'tls-key': pem, 'https-port': '70000' }, {}), /--https-port must be a port number/);
  await assert.rejects(echoHttpsOptions({ 'tls-cert': junk, 'tls-key': pem }, {}), /--tls-cert .*junk: not PEM/);
  await assert.rejects(echoHttpsOptions({ 'tls-cert': path.join(dir, 'missing'), 'tls-key': pem }, {}), /--tls-cert .*missing: ENOENT/);
});
