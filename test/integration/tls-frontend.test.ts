// Client certificate validation, listener tls.options, opt-in HTTP/2 and a busy HTTPS port,
// end to end through `vgw serve` (StandaloneServer) with real hitch and varnishd.
// Addresses: 127.0.110.1 and 127.0.110.2 (listeners); backend on 127.0.0.1:0.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { connect as http2Connect } from 'node:http2';
import { request } from 'node:https';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { silentLogger } from '../../src/util/log.ts';
import { StandaloneServer } from '../../src/standalone/server.ts';

const ADDRESS = '127.0.110.1';
const H2_ADDRESS = '127.0.110.2';
const PORTS = { required: 21443, optional: 21444, invalidCa: 21445, tls13: 21446, ciphers: 21447, busy: 21448 } as const;

function openssl(dir: string, ...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
}

/** A CA and leaves signed by it; no extendedKeyUsage, so a leaf serves as server or client. */
class Pki {
  readonly dir: string;
  private serial = 1;
  constructor(dir: string, name: string) {
    this.dir = dir;
    openssl(dir, 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', `/CN=${name}`);
  }
  ca(): Promise<string> {
    return readFile(join(this.dir, 'ca.crt'), 'utf8');
  }
  async leaf(file: string, name: string): Promise<{ crt: string; key: string }> {
    await writeFile(join(this.dir, `${file}.ext`), `subjectAltName=DNS:${name}\n`);
    openssl(this.dir, 'req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${file}.key`, '-out', `${file}.csr`, '-subj', `/CN=${name}`);
    openssl(this.dir, 'x509', '-req', '-in', `${file}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-set_serial', String(this.serial++), '-days', '2', '-extfile', `${file}.ext`, '-out', `${file}.crt`);
    return { crt: await readFile(join(this.dir, `${file}.crt`), 'utf8'), key: await readFile(join(this.dir, `${file}.key`), 'utf8') };
  }
}

const indent = (s: string, n: number) => s.trim().split('\n').map((l) => `${' '.repeat(n)}${l}`).join('\n');

function manifests(address: string, backendPort: number, server: { crt: string; key: string }, ca: string): string {
  const listener = (name: string, port: number, options = '') => `    - name: ${name}
      port: ${port}
      protocol: HTTPS
      tls:
        certificateRefs: [{name: www}]${options ? `\n        options: ${options}` : ''}`;
  return `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: vgw}
spec: {controllerName: vgw.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  gatewayClassName: vgw
  addresses: [{type: IPAddress, value: "${address}"}]
  tls:
    frontend:
      default:
        validation: {caCertificateRefs: [{group: "", kind: ConfigMap, name: client-ca}]}
      perPort:
        - port: ${PORTS.optional}
          tls: {validation: {mode: AllowInsecureFallback, caCertificateRefs: [{group: "", kind: ConfigMap, name: client-ca}]}}
        - port: ${PORTS.invalidCa}
          tls: {validation: {caCertificateRefs: [{group: "", kind: ConfigMap, name: does-not-exist}]}}
        - port: ${PORTS.tls13}
          tls: {}
        - port: ${PORTS.ciphers}
          tls: {}
        - port: ${PORTS.busy}
          tls: {}
  listeners:
${listener('required', PORTS.required)}
${listener('optional', PORTS.optional)}
${listener('invalid-ca', PORTS.invalidCa)}
${listener('tls13', PORTS.tls13, '{gateway.vgw.dev/min-tls-version: TLSv1.3, gateway.vgw.dev/cipher-suites: TLS_AES_256_GCM_SHA384}')}
${listener('ciphers', PORTS.ciphers, '{gateway.vgw.dev/ciphers: ECDHE-ECDSA-AES256-GCM-SHA384}')}
${listener('busy', PORTS.busy)}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules: [{backendRefs: [{name: echo, port: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: default}
spec:
  ports: [{name: http, port: 80, targetPort: ${backendPort}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: echo-1, namespace: default, labels: {kubernetes.io/service-name: echo}}
addressType: IPv4
ports: [{name: http, port: ${backendPort}}]
endpoints: [{addresses: ["127.0.0.1"], conditions: {ready: true}}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: client-ca, namespace: default}
data:
  ca.crt: |
${indent(ca, 4)}
---
apiVersion: v1
kind: Secret
metadata: {name: www, namespace: default}
type: kubernetes.io/tls
stringData:
  tls.crt: |
${indent(server.crt, 4)}
  tls.key: |
${indent(server.key, 4)}
`;
}

interface Options {
  port: number;
  cert?: { crt: string; key: string };
  maxVersion?: 'TLSv1.2' | 'TLSv1.3';
  ciphers?: string;
  host?: string;
}

/** One HTTPS GET; resolves with the status and the negotiated protocol/cipher, rejects on a TLS or socket error. */
function get(ca: string, o: Options): Promise<{ status: number; protocol: string; cipher: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: o.host ?? ADDRESS,
        port: o.port,
        path: '/',
        servername: 'www.example.com',
        headers: { host: 'www.example.com' },
        ca,
        agent: false,
        ...(o.cert ? { cert: o.cert.crt, key: o.cert.key } : {}),
        ...(o.maxVersion ? { maxVersion: o.maxVersion } : {}),
        ...(o.ciphers ? { ciphers: o.ciphers } : {}),
      },
      (res) => {
        const socket = res.socket as TLSSocket;
        const protocol = socket.getProtocol() ?? '';
        const cipher = socket.getCipher().standardName;
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, protocol, cipher }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** The protocol ALPN selected when the client offers h2 and http/1.1. */
function alpn(ca: string, host: string, port: number): Promise<string | false> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host, port, servername: 'www.example.com', ca, ALPNProtocols: ['h2', 'http/1.1'] }, () => {
      resolve(s.alpnProtocol ?? false);
      s.destroy();
    });
    s.on('error', reject);
  });
}

type ListenerStatus = { name: string; conditions: { type: string; status: string; reason: string; message: string }[] };

function listener(server: StandaloneServer, name: string): Record<string, string> {
  const gw = server.statuses.find((s) => s.kind === 'Gateway');
  const l = (gw?.status as { listeners: ListenerStatus[] }).listeners.find((x) => x.name === name);
  return Object.fromEntries((l?.conditions ?? []).map((c) => [c.type, `${c.status}/${c.reason}`]));
}

describe('HTTPS frontends: client certificates, TLS options, HTTP/2, busy ports', () => {
  let dir = '';
  let ca = '';
  let client: { crt: string; key: string };
  let stranger: { crt: string; key: string };
  let backend: Server;
  let squatter: TcpServer;
  let server: StandaloneServer | undefined;
  let h2server: StandaloneServer | undefined;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vgw-tls-frontend-'));
    await chmod(dir, 0o755);
    for (const d of ['pki', 'other-pki', 'manifests', 'h2-manifests']) await mkdir(join(dir, d));
    const pki = new Pki(join(dir, 'pki'), 'vgw test CA');
    const other = new Pki(join(dir, 'other-pki'), 'other CA');
    ca = await pki.ca();
    const www = await pki.leaf('www', 'www.example.com');
    client = await pki.leaf('client', 'client.example.com');
    stranger = await other.leaf('stranger', 'client.example.com');
    backend = createServer((_req, res) => res.end('ok'));
    await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
    const backendPort = (backend.address() as AddressInfo).port;
    // Another process holds one HTTPS port before the gateway starts.
    squatter = createTcpServer();
    await new Promise<void>((r) => squatter.listen(PORTS.busy, ADDRESS, r));
    await writeFile(join(dir, 'manifests', 'all.yaml'), manifests(ADDRESS, backendPort, www, ca));
    server = new StandaloneServer({ dir: join(dir, 'manifests'), defaultAddress: ADDRESS, logger: silentLogger() });
    await server.start();
    await writeFile(join(dir, 'h2-manifests', 'all.yaml'), manifests(H2_ADDRESS, backendPort, www, ca));
    h2server = new StandaloneServer({ dir: join(dir, 'h2-manifests'), defaultAddress: H2_ADDRESS, logger: silentLogger(), http2: true });
    await h2server.start();
  });

  after(async () => {
    await server?.stop();
    await h2server?.stop();
    backend?.close();
    squatter?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('AllowValidOnly: a client certificate of the CA is served; none, or one of another CA, fails the handshake', async () => {
    assert.equal((await get(ca, { port: PORTS.required, cert: client })).status, 200);
    await assert.rejects(get(ca, { port: PORTS.required }), /certificate|alert|ECONNRESET|socket hang up/i);
    await assert.rejects(get(ca, { port: PORTS.required, cert: stranger }), /unknown ca|alert|ECONNRESET|socket hang up/i);
  });

  test('AllowInsecureFallback: with a valid certificate or none the client is served; an invalid one still fails; the Gateway says so', async () => {
    assert.equal((await get(ca, { port: PORTS.optional, cert: client })).status, 200);
    assert.equal((await get(ca, { port: PORTS.optional })).status, 200);
    // hitch (client-verify = optional) refuses a certificate that does not verify.
    await assert.rejects(get(ca, { port: PORTS.optional, cert: stranger }), /unknown ca|alert|ECONNRESET|socket hang up/i);
    const gw = (server as StandaloneServer).statuses.find((s) => s.kind === 'Gateway');
    const c = (gw?.status as { conditions: { type: string; status: string; reason: string }[] }).conditions.find((x) => x.type === 'InsecureFrontendValidationMode');
    assert.equal(`${c?.status}/${c?.reason}`, 'True/ConfigurationChanged');
  });

  test('a missing CA ConfigMap: that listener is not accepted and gets no socket; the others serve', async () => {
    assert.deepEqual(listener(server as StandaloneServer, 'invalid-ca'), {
      Accepted: 'False/NoValidCACertificate',
      Conflicted: 'False/NoConflicts',
      ResolvedRefs: 'False/InvalidCACertificateRef',
      Programmed: 'False/Invalid',
    });
    await assert.rejects(get(ca, { port: PORTS.invalidCa, cert: client }), /ECONNREFUSED/);
    assert.equal((await get(ca, { port: PORTS.required, cert: client })).status, 200);
  });

  test('tls.options: a TLS 1.3 minimum refuses a TLS 1.2 client; cipher lists limit what is negotiated', async () => {
    const r13 = await get(ca, { port: PORTS.tls13, cert: client });
    assert.equal(r13.status, 200);
    assert.equal(r13.protocol, 'TLSv1.3');
    assert.equal(r13.cipher, 'TLS_AES_256_GCM_SHA384');
    await assert.rejects(get(ca, { port: PORTS.tls13, cert: client, maxVersion: 'TLSv1.2' }), /version|alert|ECONNRESET|socket hang up/i);
    const r12 = await get(ca, { port: PORTS.ciphers, cert: client, maxVersion: 'TLSv1.2' });
    assert.equal(r12.cipher, 'TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384');
    await assert.rejects(get(ca, { port: PORTS.ciphers, cert: client, maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' }), /handshake|alert|cipher|ECONNRESET|socket hang up/i);
  });

  test('a busy HTTPS port: that listener is PortUnavailable / Pending, the gateway is up and the others serve', async () => {
    const s = server as StandaloneServer;
    assert.equal(s.state.ready, true, s.state.lastError?.message);
    assert.deepEqual(
      [listener(s, 'busy').Accepted, listener(s, 'busy').Programmed],
      ['False/PortUnavailable', 'False/Pending'],
    );
    assert.equal((await get(ca, { port: PORTS.required, cert: client })).status, 200);
  });

  test('HTTP/2 is off by default: ALPN selects http/1.1 for a client offering h2', async () => {
    assert.equal(await alpn(ca, ADDRESS, PORTS.optional), 'http/1.1');
  });

  test('with --http2, ALPN selects h2 and varnishd answers over HTTP/2', async () => {
    assert.equal((h2server as StandaloneServer).state.ready, true, (h2server as StandaloneServer).state.lastError?.message);
    assert.equal(await alpn(ca, H2_ADDRESS, PORTS.optional), 'h2');
    const session = http2Connect(`https://${H2_ADDRESS}:${PORTS.optional}`, { ca, servername: 'www.example.com' });
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const req = session.request({ ':path': '/', ':authority': 'www.example.com' });
        req.on('response', (h) => resolve(Number(h[':status'])));
        req.on('error', reject);
        req.end();
      });
      assert.equal(status, 200);
    } finally {
      session.close();
    }
  });
});
