// The in-pod agent with an HTTPS listener, in-process against the Kubernetes API test server,
// with real varnishd and hitch: a pod whose routing config names a certificate the
// certificate Secret does not hold yet is not ready; once the Secret holds it, hitch listens
// and the pod is ready; a rotation is a hitch reload (no hitch or varnishd restart).
// Addresses: the agent's sockets on 127.0.105.1 (HTTPS 18443), the backend 127.0.105.2:18444.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { request } from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
import type { TLSSocket } from 'node:tls';
import { Chaperone } from '../../src/chaperone/agent.ts';
import type { EchoServer } from '../../src/echo/server.ts';
import { translate } from '../../src/gatewayapi/translator.ts';
import { emptySnapshot, type Secret } from '../../src/gatewayapi/types.ts';
import { encodeCertificateSecret } from '../../src/ir/certificate-secret.ts';
import type { RoutingIR } from '../../src/ir/types.ts';
import { certificatePems } from '../../src/operator/publish-certificates.ts';
import { publishRoutingConfig } from '../../src/operator/publish.ts';
import { startKubeApiServer, type KubeApiServer } from '../support/kube-api-server.ts';
import { TestPki, tlsSecret, type LeafPem } from '../support/test-pki.ts';
import {
  endpointSlice,
  eventually,
  gatewayClass,
  httpRoute,
  kube,
  makeWorkDir,
  memoryLogger,
  namespace,
  removeWorkDir,
  service,
  startBackend,
  GATEWAY_API,
} from './support/chaperone-world.ts';

const GW = { namespace: 'infra', name: 'gw' };
const LISTEN = { address: '127.0.105.1', port: 18443 };
const BACKEND = { address: '127.0.105.2', port: 18444 };
const HOST = 'secure.example.com';
const CERTIFICATE_SECRET = 'gw-certificates';

let server: KubeApiServer;
let kc: KubeConfig;
let workDir = '';
let pki: TestPki;
let first: LeafPem;
let second: LeafPem;
let backend: EchoServer;
let chaperone: Chaperone;
let started: Promise<void>;
let ir: RoutingIR;
const log = memoryLogger();

function httpsGet(ca: string): Promise<{ status: number; serial: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: LISTEN.address, port: LISTEN.port, path: '/', servername: HOST, headers: { host: HOST }, ca, agent: false, timeout: 5000 }, (res) => {
      const serial = (res.socket as TLSSocket).getPeerCertificate().serialNumber ?? '';
      res.resume().on('end', () => resolve({ status: res.statusCode ?? 0, serial }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** What the operator would publish for `pem`, written to the API server. */
function publishCertificates(pem: LeafPem): void {
  const secret = tlsSecret(GW.namespace, 'site', pem) as unknown as Secret;
  const { secret: published } = encodeCertificateSecret(certificatePems(ir, [secret]), GW.namespace, GW.name, CERTIFICATE_SECRET);
  server.set(kube(published));
}

before(async () => {
  pki = new TestPki();
  first = pki.leaf('first', HOST);
  second = pki.leaf('second', HOST);
  server = await startKubeApiServer();
  kc = server.kubeConfig();
  workDir = await makeWorkDir('vgw-chaperone-tls-');
  backend = await startBackend(BACKEND.address, BACKEND.port, 'web-0');

  const snapshot = emptySnapshot();
  snapshot.namespaces = ['infra', 'app'].map(namespace);
  snapshot.gatewayClasses = [gatewayClass()];
  snapshot.gateways = [{
    apiVersion: GATEWAY_API,
    kind: 'Gateway',
    metadata: { name: GW.name, namespace: GW.namespace, generation: 1 },
    spec: {
      gatewayClassName: 'vgw',
      addresses: [{ type: 'IPAddress', value: LISTEN.address }],
      listeners: [{ name: 'https', protocol: 'HTTPS', port: LISTEN.port, tls: { certificateRefs: [{ name: 'site' }] }, allowedRoutes: { namespaces: { from: 'All' } } }],
    },
  }];
  snapshot.httpRoutes = [httpRoute('app', 'web', GW, HOST, 'web')];
  snapshot.services = [service('app', 'web', BACKEND.port)];
  snapshot.secrets = [tlsSecret(GW.namespace, 'site', first) as unknown as Secret];
  const result = translate(snapshot, { defaultAddress: '127.0.0.1', now: '2026-01-01T00:00:00Z' });
  assert.deepEqual(result.problems, []);
  ir = result.ir;
  assert.ok(ir.sockets.some((s) => s.tls), 'the config has an HTTPS socket');
  server.set(kube(endpointSlice('app', 'web', 'web-abc12', [BACKEND.address], BACKEND.port)));
  await publishRoutingConfig(kc, GW.namespace, GW.name, ir);

  chaperone = new Chaperone({
    kubeConfig: kc, namespace: GW.namespace, gateway: GW.name, podName: 'gw-0', workDir, logger: log.logger,
    reportRouteStatus: false, listenAddress: LISTEN.address, certificateSecret: CERTIFICATE_SECRET,
  });
  started = chaperone.start();
});

after(async () => {
  await chaperone?.stop();
  await backend?.close();
  await server?.close();
  await removeWorkDir(workDir);
  pki?.remove();
});

test('without its certificate in the certificate Secret, a starting pod is not ready; with it, hitch serves and the pod is ready', async () => {
  await started;
  await eventually('the routing config was decoded', () => chaperone.configDecodes > 0);
  await chaperone.settled();
  assert.equal(chaperone.ready, false, 'not ready while the HTTPS listener has no certificate');
  assert.equal(chaperone.state.varnishdStarts ?? 0, 0, 'nothing started yet');

  publishCertificates(first);
  // What the readiness probe reads (the data plane's own flag turns true before hitch listens).
  await eventually('ready', () => chaperone.ready);
  // Ready means hitch accepts on the HTTPS socket: the first request already succeeds.
  const reply = await httpsGet(pki.ca);
  assert.deepEqual(reply, { status: 200, serial: first.serial });
});

test('a rotated certificate is a hitch reload: new connections get it, neither hitch nor varnishd restarts', async () => {
  assert.equal(chaperone.ready, true, 'the first test made the pod ready');
  publishCertificates(second);
  await eventually('new connections get the rotated certificate', async () => (await httpsGet(pki.ca)).serial === second.serial);
  // The new hitch accepts before the hand-over is counted (docs/tls.md): wait for the count.
  await eventually('the reload is counted', async () => /^vgw_hitch_reloads_total 1$/m.test(await chaperone.metrics.registry.metrics()));
  const metrics = await chaperone.metrics.registry.metrics();
  assert.match(metrics, /^vgw_hitch_reloads_total 1$/m);
  assert.match(metrics, /^vgw_hitch_restarts_total 0$/m);
  assert.equal(chaperone.state.varnishdStarts, 1);
  assert.deepEqual(chaperone.state.certificateProblems, undefined);
});

test('a certificate Secret entry that fails the checks is reported, never quoted', async () => {
  // A certificate with the key of another, encoded past the operator's own check: the pod checks again.
  const pems = new Map([[`${GW.namespace}_site`, Buffer.from(`${second.crt}${first.key}`)]]);
  server.set(kube(encodeCertificateSecret(pems, GW.namespace, GW.name, CERTIFICATE_SECRET).secret));
  await eventually('the problem is shown', () => (chaperone.state.certificateProblems ?? []).some((p) => /infra\/site: tls\.key does not belong to the certificate/.test(p)));
  const warned = log.lines().filter((l) => l.event === 'certificates-unusable');
  assert.equal(warned.length, 1);
  assert.ok(!JSON.stringify(warned).includes('PRIVATE KEY'));
  // Back to a good one: served again.
  publishCertificates(second);
  // A served certificate alone does not show the good Secret was read (hitch may still be
  // handing over from a set that had it): the problem clearing does. Both are waited for.
  await eventually('the problem is cleared and the certificate served again', async () =>
    chaperone.state.certificateProblems === undefined && (await httpsGet(pki.ca).catch(() => ({ status: 0, serial: '' }))).serial === second.serial);
});
