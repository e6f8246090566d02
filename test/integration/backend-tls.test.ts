// Backend TLS end to end: `vgw serve` with BackendTLSPolicies -> VCL naming the TLS proxy's
// loopback ports -> stunnel (client mode) -> the echo's HTTPS port. Certificates are made by
// openssl here. Addresses: 127.0.108.1 (listener), the echo on 127.0.109.1.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { request, Agent } from 'node:http';
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEchoServer, type EchoServer } from '../../src/echo/server.ts';
import { silentLogger } from '../../src/util/log.ts';
import { StandaloneServer } from '../../src/standalone/server.ts';
import { ofKind } from '../../src/gatewayapi/status.ts';
import { eventually } from './support/poll.ts';

const ADDRESS = '127.0.108.1';
const ECHO_ADDRESS = '127.0.109.1';
const PORT = 20880;

function openssl(dir: string, ...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
}

async function makeCa(dir: string, name: string): Promise<string> {
  openssl(dir, 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=${name}`);
  return readFile(join(dir, `${name}.crt`), 'utf8');
}

async function leaf(dir: string, ca: string, file: string, names: string[], serial: number, usage = 'serverAuth'): Promise<{ crt: string; key: string }> {
  const san = names.length ? `subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}\n` : '';
  await writeFile(join(dir, `${file}.ext`), `${san}extendedKeyUsage=${usage}\n`);
  openssl(dir, 'req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${file}.key`, '-out', `${file}.csr`, '-subj', `/CN=${file}`);
  openssl(dir, 'x509', '-req', '-in', `${file}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-set_serial', String(serial), '-days', '2', '-extfile', `${file}.ext`, '-out', `${file}.crt`);
  return { crt: await readFile(join(dir, `${file}.crt`), 'utf8'), key: await readFile(join(dir, `${file}.key`), 'utf8') };
}

const block = (s: string, indent: string) => s.trim().split('\n').map((l) => `${indent}${l}`).join('\n');

function configMap(name: string, ca: string): string {
  return `---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: ${name}, namespace: default}\ndata:\n  ca.crt: |\n${block(ca, '    ')}\n`;
}

function secret(name: string, pem: { crt: string; key: string }): string {
  return `---\napiVersion: v1\nkind: Secret\nmetadata: {name: ${name}, namespace: default}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n${block(pem.crt, '    ')}\n  tls.key: |\n${block(pem.key, '    ')}\n`;
}

/** One Service per case, all on the echo's HTTPS port; /<name> routes to Service <name>. */
function manifests(echoPort: number, policies: { name: string; hostname: string; ca: string; sans?: string[] }[]): string {
  let out = `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: vgw}
spec: {controllerName: vgw.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  gatewayClassName: vgw
  addresses: [{type: IPAddress, value: "${ADDRESS}"}]
  listeners: [{name: http, port: ${PORT}, protocol: HTTP}]
  tls: {backend: {clientCertificateRef: {name: client}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
${policies.map((p) => `    - matches: [{path: {type: PathPrefix, value: /${p.name}}}]\n      backendRefs: [{name: ${p.name}, port: 443}]`).join('\n')}
`;
  for (const p of policies) {
    out += `---
apiVersion: v1
kind: Service
metadata: {name: ${p.name}, namespace: default}
spec: {ports: [{name: https, port: 443, targetPort: ${echoPort}}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: ${p.name}, namespace: default, labels: {kubernetes.io/service-name: ${p.name}}}
addressType: IPv4
ports: [{name: https, port: ${echoPort}}]
endpoints: [{addresses: ["${ECHO_ADDRESS}"], conditions: {ready: true}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata: {name: ${p.name}, namespace: default}
spec:
  targetRefs: [{group: "", kind: Service, name: ${p.name}}]
  validation:
    caCertificateRefs: [{group: "", kind: ConfigMap, name: ${p.ca}}]
    hostname: ${p.hostname}
${p.sans ? `    subjectAltNames: [${p.sans.map((h) => `{type: Hostname, hostname: ${h}}`).join(', ')}]` : ''}
`;
  }
  return out;
}

function get(path: string, agent?: Agent): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: ADDRESS, port: PORT, path, headers: { host: 'www.example.com' }, ...(agent ? { agent } : {}) }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('backend TLS through stunnel', () => {
  let dir = '';
  let echo: EchoServer | null = null;
  let server: StandaloneServer | null = null;
  let clientPem = '';
  let clientSecret = '';
  let caA = '';
  let caB = '';
  let echoPort = 0;
  const CASES = [
    { name: 'good', hostname: 'abc.example.com', ca: 'ca-a' },
    { name: 'wrongca', hostname: 'abc.example.com', ca: 'ca-b' },
    { name: 'wronghost', hostname: 'other.example.com', ca: 'ca-a' },
    { name: 'sans', hostname: 'abc.example.com', ca: 'ca-a', sans: ['nope.example.com', 'alt.example.com'] },
    { name: 'sansmismatch', hostname: 'abc.example.com', ca: 'ca-a', sans: ['nope.example.com'] },
  ];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vgw-backend-tls-'));
    // varnishd's own user reads the work directory below.
    await chmod(dir, 0o755);
    const pki = join(dir, 'pki');
    await mkdir(pki);
    caA = await makeCa(pki, 'ca-a');
    caB = await makeCa(pki, 'ca-b');
    const serverCert = await leaf(pki, 'ca-a', 'backend', ['abc.example.com', 'alt.example.com'], 1);
    const client = await leaf(pki, 'ca-a', 'client', [], 2, 'clientAuth');
    clientPem = client.crt;
    clientSecret = secret('client', client);
    echo = await startEchoServer({
      port: 0,
      address: ECHO_ADDRESS,
      pod: 'tls-backend-abc-def',
      https: { port: 0, cert: Buffer.from(serverCert.crt), key: Buffer.from(serverCert.key), clientCa: Buffer.from(caA) },
    });
    echoPort = Number(new URL(echo.httpsUrl as string).port);
    await mkdir(join(dir, 'manifests'));
    await writeFile(join(dir, 'manifests', 'all.yaml'), manifests(echoPort, CASES) + configMap('ca-a', caA) + configMap('ca-b', caB) + secret('client', client));
    server = new StandaloneServer({ dir: join(dir, 'manifests'), defaultAddress: ADDRESS, workDir: join(dir, 'work'), logger: silentLogger() });
    await server.start();
  });

  after(async () => {
    await server?.stop();
    await echo?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('a request reaches the TLS backend with the policy hostname as SNI and the Gateway client certificate', async () => {
    const s = server as StandaloneServer;
    assert.equal(s.state.ready, true, s.state.lastError?.message);
    const r = await get('/good/x');
    assert.equal(r.status, 200, r.body);
    const body = JSON.parse(r.body) as { host: string; path: string; tls?: { serverName: string; peerCertificates?: string[] } };
    assert.equal(body.host, 'www.example.com');
    assert.equal(body.path, '/good/x');
    assert.equal(body.tls?.serverName, 'abc.example.com');
    assert.deepEqual(body.tls?.peerCertificates, [clientPem]);
    // A matching subjectAltName other than the hostname is enough.
    assert.equal((await get('/sans')).status, 200);
  });

  test('a backend certificate that does not verify (CA, hostname, subjectAltNames) gets no request through', async () => {
    const before = echo!.requests.length;
    for (const path of ['/wrongca', '/wronghost', '/sansmismatch']) {
      const r = await get(path);
      assert.equal(r.status, 503, `${path}: ${r.status} ${r.body}`);
    }
    assert.equal(echo!.requests.length, before, 'the echo saw a request over an unverified connection');
  });

  test('policies report Accepted/ResolvedRefs for the Gateway using them', () => {
    const policies = (server as StandaloneServer).statuses.filter(ofKind('BackendTLSPolicy'));
    assert.equal(policies.length, CASES.length);
    for (const p of policies) {
      assert.deepEqual(p.status.ancestors.map((a) => `${a.ancestorRef.namespace}/${a.ancestorRef.name}`), ['default/gw']);
      assert.deepEqual(p.status.ancestors[0].conditions.map((c) => `${c.type}=${c.status}`), ['Accepted=True', 'ResolvedRefs=True']);
    }
  });

  test('key material is in 0600 files of a 0700 directory', async () => {
    const pemDir = join(dir, 'work', 'backend-tls', 'pem');
    assert.equal((await stat(join(dir, 'work', 'backend-tls'))).mode & 0o777, 0o700);
    const files = await readdir(pemDir);
    assert.ok(files.some((f) => f.startsWith('client_')), files.join(' '));
    for (const f of files) assert.equal((await stat(join(pemDir, f))).mode & 0o777, 0o600, f);
  });

  test('rotating the CA ConfigMap applies at once, also to requests on an open client connection', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      // Open a client connection and, through it, a proxied TLS connection to the backend that
      // varnishd keeps in its pool.
      assert.equal((await get('/good/open', agent)).status, 200);
      // The two bundles swap: the wrongca policy now trusts the backend's CA, the good one no
      // longer does.
      await writeFile(join(dir, 'manifests', 'all.yaml'), manifests(echoPort, CASES) + configMap('ca-a', caB) + configMap('ca-b', caA) + clientSecret);
      await eventually('the rotated CA applies to new backend connections', async () => (await get('/wrongca/new')).status === 200);
      // The pooled backend connection was verified with the old bundle: the good policy's
      // endpoint moved to a new proxy port, so that connection is not reused and the backend,
      // which the new bundle does not trust, is refused.
      const r = await get('/good/kept', agent);
      assert.equal(r.status, 503, r.body);
    } finally {
      agent.destroy();
    }
  });
});
