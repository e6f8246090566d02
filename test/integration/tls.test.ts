// HTTPS listeners end to end with real hitch and varnishd: manifests with kubernetes.io/tls
// Secrets (certificates made by openssl here, signed by a test CA) -> translator -> VCL ->
// varnishd with its PROXY socket, hitch with one frontend per HTTPS listener.
// Addresses: 127.0.100.1 (listeners), the backend and varnishd's PROXY socket on 127.0.0.1:0.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { Agent, request } from 'node:https';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { connect as connectTcp, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { loadManifestDir } from '../../src/providers/file/load.ts';
import { translate, type TranslateResult } from '../../src/gatewayapi/translator.ts';
import { resolveEndpoints } from '../../src/gatewayapi/endpoints.ts';
import { compileVcl, TLS_PROXY_SOCKET } from '../../src/vcl/compile.ts';
import { Varnishd } from '../../src/varnish/varnishd.ts';
import { VclReloader } from '../../src/varnish/reloader.ts';
import { Hitch } from '../../src/varnish/hitch.ts';
import { tlsFrontends } from '../../src/pipeline/tls-frontends.ts';
import { silentLogger } from '../../src/util/log.ts';
import { StandaloneServer } from '../../src/standalone/server.ts';
import { eventually } from './support/poll.ts';

const ADDRESS = '127.0.100.1';
const HTTPS_PORT = 20443;
const BAD_PORT = 20444;

function openssl(dir: string, ...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
}

/** A CA, and leaf certificates signed by it for the given DNS names. */
class TestPki {
  readonly dir: string;
  private serial = 1;
  constructor(dir: string) {
    this.dir = dir;
    openssl(dir, 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=vgw test CA');
  }
  async ca(): Promise<Buffer> {
    return readFile(join(this.dir, 'ca.crt'));
  }
  /** { crt, key } PEM text of a new leaf for `names` (the first is the CN). */
  async leaf(file: string, names: string[]): Promise<{ crt: string; key: string }> {
    const serial = String(this.serial++);
    await writeFile(join(this.dir, `${file}.ext`), `subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}\n`);
    openssl(this.dir, 'req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${file}.key`, '-out', `${file}.csr`, '-subj', `/CN=${names[0]}`);
    openssl(this.dir, 'x509', '-req', '-in', `${file}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-set_serial', serial, '-days', '2', '-extfile', `${file}.ext`, '-out', `${file}.crt`);
    return { crt: await readFile(join(this.dir, `${file}.crt`), 'utf8'), key: await readFile(join(this.dir, `${file}.key`), 'utf8') };
  }
}

function secretYaml(name: string, pem: { crt: string; key: string }): string {
  const block = (s: string) => s.trim().split('\n').map((l) => `    ${l}`).join('\n');
  return `---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: ${name}\n  namespace: default\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n${block(pem.crt)}\n  tls.key: |\n${block(pem.key)}\n`;
}

function manifests(backendPort: number, address = ADDRESS): string {
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
  listeners:
    - name: https
      port: ${HTTPS_PORT}
      protocol: HTTPS
      tls:
        certificateRefs: [{name: www}, {name: api}, {name: wildcard}]
    - name: bad
      port: ${BAD_PORT}
      protocol: HTTPS
      tls:
        certificateRefs: [{name: mismatched}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
    - matches: [{path: {type: PathPrefix, value: /redirect}}]
      filters: [{type: RequestRedirect, requestRedirect: {hostname: elsewhere.example.com, statusCode: 302}}]
    - backendRefs: [{name: echo, port: 80}]
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
`;
}

interface Reply {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
  /** The served certificate's CN and serial, and the local port of the connection used. */
  cn: string;
  serial: string;
  localPort: number;
}

function get(ca: Buffer, servername: string, path = '/', agent?: Agent, port = HTTPS_PORT, anyName = false, host = ADDRESS): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const check = anyName ? { checkServerIdentity: () => undefined } : {};
    const req = request({ host, port, path, servername, ca, ...check, agent: agent ?? false, headers: { host: servername, 'x-forwarded-proto': 'spoofed' } }, (res) => {
      const socket = res.socket as TLSSocket;
      const cert = socket.getPeerCertificate();
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers, cn: String(cert.subject?.CN ?? ''), serial: cert.serialNumber, localPort: socket.localPort ?? 0 }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('HTTPS listeners through hitch and varnishd', () => {
  let dir = '';
  let pki: TestPki;
  let ca: Buffer;
  let backend: Server;
  let varnishd: Varnishd | undefined;
  let reloader: VclReloader;
  let hitch: Hitch | undefined;
  let proxyPort = 0;
  let result: TranslateResult;

  /** Loads the manifest directory, translates and makes it live in varnishd and hitch. */
  async function apply(): Promise<string> {
    const { snapshot } = await loadManifestDir(join(dir, 'manifests'));
    result = translate(snapshot, { defaultAddress: ADDRESS, now: '2026-01-01T00:00:00Z' });
    const endpoints = resolveEndpoints(result.ir.services, snapshot.endpointSlices, () => {});
    const { vcl } = compileVcl(result.ir, endpoints);
    if (!varnishd) {
      varnishd = new Varnishd({ listeners: [{ name: TLS_PROXY_SOCKET, address: '127.0.0.1', port: 0, proxy: true }], workDir: join(dir, 'varnishd'), vcl, logger: silentLogger() });
      await varnishd.start();
      reloader = new VclReloader(varnishd, { logger: silentLogger() });
      proxyPort = (await varnishd.listenAddresses())[0].port;
    } else {
      const r = await reloader.submit(vcl);
      assert.equal(r.status, 'active', JSON.stringify(r));
    }
    hitch ??= new Hitch({ workDir: join(dir, 'hitch'), logger: silentLogger() });
    const secrets = new Map(snapshot.secrets.map((s) => [`${s.metadata.namespace}/${s.metadata.name}`, s]));
    const t = tlsFrontends(result.ir, secrets);
    return hitch.apply({ frontends: t.frontends, pems: t.pems, backend: { address: '127.0.0.1', port: proxyPort } });
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vgw-tls-'));
    // varnishd's jail user reads its work directory below this one.
    const { chmod, mkdir } = await import('node:fs/promises');
    await chmod(dir, 0o755);
    await mkdir(join(dir, 'pki'));
    await mkdir(join(dir, 'manifests'));
    pki = new TestPki(join(dir, 'pki'));
    ca = await pki.ca();
    backend = createServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ host: req.headers.host, proto: req.headers['x-forwarded-proto'] }));
    });
    await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
    const backendPort = (backend.address() as AddressInfo).port;
    const www = await pki.leaf('www', ['www.example.com']);
    const api = await pki.leaf('api', ['api.example.com']);
    const wildcard = await pki.leaf('wildcard', ['*.example.com']);
    const other = await pki.leaf('other', ['other.example.org']);
    await writeFile(
      join(dir, 'manifests', 'all.yaml'),
      manifests(backendPort) + secretYaml('www', www) + secretYaml('api', api) + secretYaml('wildcard', wildcard) + secretYaml('mismatched', { crt: other.crt, key: www.key }),
    );
    assert.equal(await apply(), 'started');
  });

  after(async () => {
    await hitch?.stop();
    await varnishd?.stop();
    backend?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('an HTTPS request reaches the backend with X-Forwarded-Proto https (a client value is replaced)', async () => {
    const r = await get(ca, 'www.example.com');
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(JSON.parse(r.body), { host: 'www.example.com', proto: 'https' });
  });

  test('SNI picks the most specific certificate; an unknown name gets the first ref (the default)', async () => {
    assert.equal((await get(ca, 'www.example.com')).cn, 'www.example.com');
    assert.equal((await get(ca, 'api.example.com')).cn, 'api.example.com');
    assert.equal((await get(ca, 'shop.example.com')).cn, '*.example.com');
    // The default (www) does not cover this name: a client checking names refuses it.
    await assert.rejects(get(ca, 'unknown.example.net'), /does not match|altnames/i);
    assert.equal((await get(ca, 'unknown.example.net', '/', undefined, HTTPS_PORT, true)).cn, 'www.example.com');
  });

  test('a redirect without a scheme keeps https', async () => {
    const r = await get(ca, 'www.example.com', '/redirect?a=1');
    assert.equal(r.status, 302);
    assert.equal(r.headers.location, 'https://elsewhere.example.com:20443/redirect?a=1');
  });

  test('a listener whose Secret has a mismatched key is ResolvedRefs=False and gets no socket; the other serves', async () => {
    const gw = result.statuses.find((s) => s.kind === 'Gateway');
    const listeners = (gw?.status as { listeners: { name: string; conditions: { type: string; status: string; reason: string }[] }[] }).listeners;
    const bad = listeners.find((l) => l.name === 'bad')?.conditions.find((c) => c.type === 'ResolvedRefs');
    assert.equal(`${bad?.status}/${bad?.reason}`, 'False/InvalidCertificateRef');
    assert.deepEqual(result.ir.sockets.map((s) => s.port), [HTTPS_PORT]);
    await assert.rejects(get(ca, 'www.example.com', '/', undefined, BAD_PORT), /ECONNREFUSED/);
    assert.equal((await get(ca, 'www.example.com')).status, 200);
  });

  test('key files and the configuration are readable by their owner only', async () => {
    const h = hitch as Hitch;
    assert.equal((await stat(h.certDir)).mode & 0o777, 0o700);
    assert.equal((await stat(h.confPath)).mode & 0o777, 0o600);
    for (const id of ['default_www', 'default_api', 'default_wildcard']) assert.equal((await stat(h.pemPath(id))).mode & 0o777, 0o600, id);
    await assert.rejects(stat(h.pemPath('default_mismatched')), /ENOENT/, 'an unusable Secret is not written');
    assert.ok(!(await readFile(h.confPath, 'utf8')).includes('PRIVATE KEY'));
  });

  /** Replaces the Secret www with a new leaf for www.example.com and applies it (a hitch reload). */
  async function rotateWww(file: string): Promise<void> {
    const rotated = await pki.leaf(file, ['www.example.com']);
    const path = join(dir, 'manifests', 'all.yaml');
    const text = await readFile(path, 'utf8');
    const start = text.indexOf('---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: www\n');
    const end = text.indexOf('\n---\n', start + 3) + 1;
    await writeFile(path, text.slice(0, start) + secretYaml('www', rotated) + text.slice(end));
    assert.equal(await apply(), 'reloaded');
  }

  test('certificate rotation: new connections get the new certificate, an open connection keeps working, varnishd is not restarted', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const first = await get(ca, 'www.example.com', '/', agent);
      assert.equal(first.status, 200);
      const varnishdPid = varnishd?.pid;
      await rotateWww('www2');
      await eventually('new connections get the rotated certificate', async () => (await get(ca, 'www.example.com')).serial !== first.serial);
      // The kept-alive connection still answers, on the same socket, with the old certificate.
      const again = await get(ca, 'www.example.com', '/', agent);
      assert.equal(again.status, 200);
      assert.equal(again.localPort, first.localPort);
      assert.equal(again.serial, first.serial);
      assert.equal(varnishd?.pid, varnishdPid);
      assert.ok(hitch && hitch.drainingInstances > 0, 'the old instance drains the open connection');
    } finally {
      agent.destroy();
    }
    await eventually('the old instance stops once its last connection closed', async () => hitch?.drainingInstances === 0);
  });

  test('clients that connect and close without a handshake are counted, not logged one line each', async () => {
    const before = hitch?.clientConnectionErrors ?? 0;
    for (let i = 0; i < 5; i++) {
      await new Promise<void>((resolve) => {
        const s = connectTcp({ host: ADDRESS, port: HTTPS_PORT }, () => s.destroy());
        s.on('close', () => resolve());
        s.on('error', () => resolve());
      });
    }
    await eventually('hitch reported the failed handshakes', async () => (hitch?.clientConnectionErrors ?? 0) >= before + 5);
  });

  test('certificate rotation under load: no request fails while the certificate changes three times', async (t) => {
    // Clients open a new connection per request (each handshake meets whatever hitch serves at
    // that moment), plus one keep-alive client whose connection spans every rotation.
    const failures: string[] = [];
    let served = 0;
    let stop = false;
    const keepAlive = new Agent({ keepAlive: true, maxSockets: 1 });
    const client = async (agent?: Agent) => {
      while (!stop) {
        try {
          const r = await get(ca, 'www.example.com', '/', agent);
          if (r.status === 200) served++;
          else failures.push(`${agent ? 'keep-alive' : 'new'}: status ${r.status}`);
        } catch (e) {
          failures.push(`${agent ? 'keep-alive' : 'new'}: ${(e as Error).message}`);
        }
      }
    };
    const clients = [client(), client(), client(), client(keepAlive)];
    try {
      for (const file of ['load1', 'load2', 'load3']) {
        const before = (await get(ca, 'www.example.com')).serial;
        const floor = served;
        await rotateWww(file);
        await eventually(`the certificate of ${file} is served`, async () => (await get(ca, 'www.example.com')).serial !== before);
        // Requests kept flowing across the change, not only before it.
        await eventually('requests are served after the rotation', async () => served > floor + 10);
      }
    } finally {
      stop = true;
      await Promise.all(clients);
      keepAlive.destroy();
    }
    // The kept-alive connection spans every rotation, and the listen socket is never gone.
    assert.deepEqual(failures.filter((f) => f.startsWith('keep-alive') || !f.endsWith('ECONNRESET')), []);
    // A connection still queued on the old instance's socket when it closes is reset by the
    // kernel, unless net.ipv4.tcp_migrate_req moves it to the new socket (docs/tls.md).
    if ((await readFile('/proc/sys/net/ipv4/tcp_migrate_req', 'utf8').catch(() => '0')).trim() === '1') assert.deepEqual(failures, []);
    else if (failures.length) t.diagnostic(`${failures.length} new connections reset (net.ipv4.tcp_migrate_req is 0)`);
  });
});

describe('vgw serve: HTTPS listeners from a directory with Secrets', () => {
  const SERVE_ADDRESS = '127.0.100.2';
  let dir = '';
  let pki: TestPki;
  let ca: Buffer;
  let backend: Server;
  let server: StandaloneServer | undefined;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vgw-tls-serve-'));
    const { chmod, mkdir } = await import('node:fs/promises');
    await chmod(dir, 0o755);
    await mkdir(join(dir, 'pki'));
    await mkdir(join(dir, 'manifests'));
    await mkdir(join(dir, 'work'));
    pki = new TestPki(join(dir, 'pki'));
    ca = await pki.ca();
    backend = createServer((req, res) => res.end(JSON.stringify({ proto: req.headers['x-forwarded-proto'] })));
    await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
    const backendPort = (backend.address() as AddressInfo).port;
    const www = await pki.leaf('www', ['www.example.com']);
    const api = await pki.leaf('api', ['api.example.com']);
    const wildcard = await pki.leaf('wildcard', ['*.example.com']);
    const other = await pki.leaf('other', ['other.example.org']);
    await writeFile(join(dir, 'manifests', 'gateway.yaml'), manifests(backendPort, SERVE_ADDRESS));
    await writeFile(join(dir, 'manifests', 'www.yaml'), secretYaml('www', www));
    await writeFile(join(dir, 'manifests', 'others.yaml'), secretYaml('api', api) + secretYaml('wildcard', wildcard) + secretYaml('mismatched', { crt: other.crt, key: www.key }));
    server = new StandaloneServer({ dir: join(dir, 'manifests'), defaultAddress: SERVE_ADDRESS, logger: silentLogger() });
    await server.start();
  });

  after(async () => {
    await server?.stop();
    backend?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('serves HTTPS with the Secrets of its directory, and a changed Secret reaches new connections without a varnishd restart', async () => {
    const s = server as StandaloneServer;
    assert.equal(s.state.ready, true, s.state.lastError?.message);
    const first = await get(ca, 'www.example.com', '/', undefined, HTTPS_PORT, false, SERVE_ADDRESS);
    assert.equal(first.status, 200, first.body);
    assert.deepEqual(JSON.parse(first.body), { proto: 'https' });
    assert.equal(first.cn, 'www.example.com');
    const starts = s.state.varnishdStarts;
    await writeFile(join(dir, 'manifests', 'www.yaml'), secretYaml('www', await pki.leaf('www2', ['www.example.com'])));
    await eventually('the rotated certificate is served', async () => (await get(ca, 'www.example.com', '/', undefined, HTTPS_PORT, false, SERVE_ADDRESS)).serial !== first.serial);
    assert.equal(s.state.varnishdStarts, starts);
  });

  test('the mismatched Secret is a problem naming the listener; no key material in the state /status shows', () => {
    const s = server as StandaloneServer;
    assert.ok(s.state.problems.some((p) => p.message.startsWith('listener bad: InvalidCertificateRef:')), JSON.stringify(s.state.problems));
    assert.ok(!JSON.stringify(s.state).includes('PRIVATE KEY'));
    assert.ok(!JSON.stringify(s.statuses).includes('PRIVATE KEY'));
  });
});
