// What client TLS costs. One `vgw serve` runs a Gateway with an HTTP listener and three HTTPS
// listeners (ECDSA P-256 certificate, RSA-2048 certificate, and one whose Secret is rotated),
// all routed to the same cacheable route, so that after the first request varnishd answers
// from cache and the echo backend is out of the picture. Measured side by side in one run:
//  1. new connections per second: wrk with `Connection: close` (one request per connection,
//     HTTP against HTTPS), and bare TLS handshakes with `openssl s_time -new` per certificate
//     type and TLS version;
//  2. keep-alive throughput over HTTP and HTTPS, with hitch's and varnishd's CPU per request;
//  3. certificate rotation: the time from rewriting a Secret file to the new certificate on a
//     new connection.
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type PeerCertificate } from 'node:tls';
import { request } from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { defaultHitchWorkers } from '../src/varnish/hitch.ts';
import { VARNISHD_DIR } from '../src/runtime/data-plane.ts';
import { CONTROLLER_NAME, NAMESPACE, SERVICE_NAME, serviceManifests } from './lib/manifests.ts';
import { httpGet, spawnServe, startEcho, waitFor, waitFor200, waitForQuietMachine, machineCpuSeconds, type EchoBackend, type Gateway } from './lib/procs.ts';
import { reapedChildrenCpuSeconds, treeCpuSeconds } from './lib/proctree.ts';
import { fmt, machineInfo, saveSection, stats, table, type Section } from './lib/report.ts';
import { runWrk, wrkErrors, type WrkOptions, type WrkResult } from './lib/wrk.ts';

const execFileP = promisify(execFile);

const ADDRESS = '127.0.112.1';
const BACKEND = { address: '127.0.112.2', port: 18481 };
const ADMIN_PORT = 18490;
const PORTS = { http: 18480, ecdsa: 18443, rsa: 18444, rotate: 18445 } as const;
const HOST = 'tls.bench.test';
const PATH = '/tls/bench';
const CACHE_HEADER = { 'X-Echo-Set-Header': 'Cache-Control:max-age=3600' };

/** `--quick`: a short run that checks the benchmark works; prints, records nothing. */
const QUICK = process.argv.includes('--quick');
/** `--render`: writes the section's text again from the figures in results.json (no measuring). */
const RENDER = process.argv.includes('--render');
const THREADS = 2;
const CONNECTIONS = 50;
const WARMUP_S = QUICK ? 1 : 2;
const DURATION_S = QUICK ? 2 : 10;
/** Every measurement runs once per round; rounds interleave all of them. */
const ROUNDS = QUICK ? 1 : 2;
/** `openssl s_time` processes run at once (each makes one connection at a time). */
const STIME_PROCESSES = 4;
const ROTATIONS = QUICK ? 3 : 10;
const ROTATION_POLL_MS = 5;
/** Pause after each rotation, so that the next one starts from an idle control plane. */
const ROTATION_SETTLE_MS = 300;
const ROTATION_TIMEOUT_MS = 30_000;

type CertKind = 'ecdsa' | 'rsa';
const CERT_LABEL: Record<CertKind, string> = { ecdsa: 'ECDSA P-256', rsa: 'RSA-2048' };

interface Target {
  label: string;
  url: string;
}

const TARGETS: Target[] = [
  { label: 'HTTP', url: `http://${ADDRESS}:${PORTS.http}${PATH}` },
  { label: `HTTPS, ${CERT_LABEL.ecdsa}`, url: `https://${ADDRESS}:${PORTS.ecdsa}${PATH}` },
  { label: `HTTPS, ${CERT_LABEL.rsa}`, url: `https://${ADDRESS}:${PORTS.rsa}${PATH}` },
];

// ---------------------------------------------------------------- certificates and manifests

interface Pem {
  crt: string;
  key: string;
}

async function selfSigned(dir: string, name: string, kind: CertKind): Promise<Pem> {
  const keyArgs = kind === 'rsa' ? ['-newkey', 'rsa:2048'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'];
  const key = join(dir, `${name}.key`);
  const crt = join(dir, `${name}.crt`);
  await execFileP('openssl', ['req', '-x509', ...keyArgs, '-nodes', '-keyout', key, '-out', crt, '-days', '2', '-subj', `/CN=${HOST}`, '-addext', `subjectAltName=DNS:${HOST}`]);
  return { crt: await readFile(crt, 'utf8'), key: await readFile(key, 'utf8') };
}

function fingerprint(pem: Pem): string {
  return new X509Certificate(pem.crt).fingerprint256;
}

function secretYaml(name: string, pem: Pem): string {
  const block = (s: string) => s.trim().split('\n').map((l) => `    ${l}`).join('\n');
  return `apiVersion: v1
kind: Secret
metadata:
  name: ${name}
  namespace: ${NAMESPACE}
type: kubernetes.io/tls
stringData:
  tls.crt: |
${block(pem.crt)}
  tls.key: |
${block(pem.key)}
`;
}

function gatewayYaml(): string {
  const https = (name: string, port: number, secret: string) => `  - name: ${name}
    protocol: HTTPS
    port: ${port}
    tls:
      certificateRefs:
      - name: ${secret}
`;
  return `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: vgw-bench
spec:
  controllerName: ${CONTROLLER_NAME}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: tls-gw
  namespace: ${NAMESPACE}
spec:
  gatewayClassName: vgw-bench
  addresses:
  - type: IPAddress
    value: ${ADDRESS}
  listeners:
  - name: http
    protocol: HTTP
    port: ${PORTS.http}
${https('https-ecdsa', PORTS.ecdsa, 'cert-ecdsa')}${https('https-rsa', PORTS.rsa, 'cert-rsa')}${https('https-rotate', PORTS.rotate, 'cert-rotate')}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: tls
  namespace: ${NAMESPACE}
spec:
  parentRefs:
  - name: tls-gw
  hostnames:
  - ${HOST}
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: ${PATH}
    backendRefs:
    - name: ${SERVICE_NAME}
      port: 8080
---
${serviceManifests(SERVICE_NAME, BACKEND.address, BACKEND.port)}`;
}

/** Replaces a file the way a careful writer does: a hidden temporary name, then rename. */
async function replaceFile(path: string, text: string): Promise<void> {
  const dir = path.slice(0, path.lastIndexOf('/'));
  const tmp = join(dir, `.${path.slice(dir.length + 1)}.tmp`);
  await writeFile(tmp, text);
  await rename(tmp, path);
}

// ---------------------------------------------------------------- CPU accounting

/** Processes below `vgw serve`, by command name. */
function classify(comm: string): string {
  if (comm === 'hitch') return 'hitch';
  if (comm.startsWith('varnishd') || comm === 'cache-main') return 'varnishd';
  return 'control';
}

interface CpuSample {
  at: number;
  tree: Record<string, number>;
  client: number;
  machine: number;
}

async function sampleCpu(gw: Gateway): Promise<CpuSample> {
  return {
    at: performance.now(),
    tree: await treeCpuSeconds(gw.proc.proc.pid!, classify),
    client: await reapedChildrenCpuSeconds(),
    machine: (await machineCpuSeconds()).busy,
  };
}

/** Cores busy over the interval (1.0 = one core). */
interface Cores {
  hitch: number;
  varnishd: number;
  control: number;
  /** The load generator (wrk or openssl), measured once it has exited. */
  client: number;
  machine: number;
}

function coresBetween(a: CpuSample, b: CpuSample): Cores {
  const s = (b.at - a.at) / 1000;
  const d = (k: string) => ((b.tree[k] ?? 0) - (a.tree[k] ?? 0)) / s;
  return { hitch: d('hitch'), varnishd: d('varnishd'), control: d('control'), client: (b.client - a.client) / s, machine: (b.machine - a.machine) / s };
}

// ---------------------------------------------------------------- varnish counters

const COUNTERS = ['MAIN.client_req', 'MAIN.cache_hit', 'MAIN.cache_miss', 'MAIN.sess_conn', 'MAIN.backend_req'];

async function varnishCounters(instanceDir: string): Promise<Record<string, number>> {
  // Worker threads publish their counters in batches and when a session ends; the pause lets
  // the sessions just closed report, so that deltas cover exactly one run.
  await sleep(500);
  const { stdout } = await execFileP('varnishstat', ['-n', instanceDir, '-j', '-1'], { maxBuffer: 64 << 20 });
  const parsed = JSON.parse(stdout) as { counters?: Record<string, { value: number }> };
  const c = parsed.counters ?? (parsed as Record<string, { value: number }>);
  return Object.fromEntries(COUNTERS.map((k) => [k, c[k]?.value ?? NaN]));
}

function diff(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.keys(b).map((k) => [k, b[k] - (a[k] ?? 0)]));
}

// ---------------------------------------------------------------- measurements

interface WrkMeasured {
  label: string;
  mode: 'close' | 'keep-alive';
  wrk: Omit<WrkResult, 'raw'>;
  errors: number;
  cpu: Cores;
  counters: Record<string, number>;
}

async function measureWrk(gw: Gateway, instanceDir: string, t: Target, mode: WrkMeasured['mode']): Promise<WrkMeasured> {
  const headers: Record<string, string> = { Host: HOST, ...CACHE_HEADER, ...(mode === 'close' ? { Connection: 'close' } : {}) };
  const o: WrkOptions = { url: t.url, threads: THREADS, connections: CONNECTIONS, durationS: DURATION_S, headers };
  await runWrk({ ...o, durationS: WARMUP_S });
  const before = await varnishCounters(instanceDir);
  const s0 = await sampleCpu(gw);
  const r = await runWrk(o);
  const s1 = await sampleCpu(gw);
  const counters = diff(before, await varnishCounters(instanceDir));
  const { raw: _raw, ...wrk } = r;
  const m: WrkMeasured = { label: t.label, mode, wrk, errors: wrkErrors(r), cpu: coresBetween(s0, s1), counters };
  console.log(
    `  ${mode} ${t.label}: ${fmt(wrk.rps, 0)} req/s, p50 ${fmt(wrk.latency.p50, 2)} ms, p99 ${fmt(wrk.latency.p99, 2)} ms, errors ${m.errors}, ` +
      `hitch ${fmt(m.cpu.hitch, 2)} varnishd ${fmt(m.cpu.varnishd, 2)} wrk ${fmt(m.cpu.client, 2)} cores, ` +
      `hits ${counters['MAIN.cache_hit']} of ${counters['MAIN.client_req']}, sessions ${counters['MAIN.sess_conn']}`,
  );
  return m;
}

interface HandshakeMeasured {
  cert: CertKind;
  version: 'TLSv1.3' | 'TLSv1.2';
  connections: number;
  wallS: number;
  rate: number;
  cpu: Cores;
}

/** `openssl s_time -new` (full handshakes, no request), several processes at once. */
async function measureHandshakes(gw: Gateway, cert: CertKind, version: HandshakeMeasured['version']): Promise<HandshakeMeasured> {
  const args = ['s_time', '-connect', `${ADDRESS}:${PORTS[cert]}`, '-new', '-time', String(DURATION_S), version === 'TLSv1.3' ? '-tls1_3' : '-tls1_2'];
  const s0 = await sampleCpu(gw);
  const outs = await Promise.all(Array.from({ length: STIME_PROCESSES }, () => execFileP('openssl', args, { timeout: (DURATION_S + 30) * 1000, maxBuffer: 1 << 20 })));
  const s1 = await sampleCpu(gw);
  let connections = 0;
  for (const { stdout } of outs) {
    const m = /^(\d+) connections in [\d.]+s;/m.exec(stdout);
    if (!m) throw new Error(`openssl s_time printed no connection count:\n${stdout}`);
    connections += Number(m[1]);
  }
  const wallS = (s1.at - s0.at) / 1000;
  const h: HandshakeMeasured = { cert, version, connections, wallS, rate: connections / wallS, cpu: coresBetween(s0, s1) };
  console.log(`  handshakes ${CERT_LABEL[cert]} ${version}: ${fmt(h.rate, 0)}/s (${connections} in ${fmt(wallS, 1)} s), hitch ${fmt(h.cpu.hitch, 2)} openssl ${fmt(h.cpu.client, 2)} cores`);
  return h;
}

interface ServedCert {
  fingerprint: string;
  protocol: string;
}

/** One new TLS connection: the certificate served, then close. */
function servedCertificate(port: number): Promise<ServedCert> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: ADDRESS, port, servername: HOST, rejectUnauthorized: false, timeout: 5_000 });
    s.once('secureConnect', () => {
      const c: PeerCertificate = s.getPeerCertificate();
      const protocol = s.getProtocol() ?? '';
      s.destroy();
      resolve({ fingerprint: c.fingerprint256, protocol });
    });
    s.once('timeout', () => s.destroy(new Error('TLS connect timed out')));
    s.once('error', reject);
  });
}

interface Rotation {
  ms: number;
  /** From the write to vgw serve's `hitch-reload` log event (wall clock, ms resolution). */
  toReloadMs?: number;
  connections: number;
  oldCert: number;
  errors: number;
  /** Failed connections by error code (or message). */
  errorKinds: Record<string, number>;
}

async function rotate(dir: string, certs: Pem[], logFile: string): Promise<Rotation[]> {
  const file = join(dir, 'secret-rotate.yaml');
  const out: Rotation[] = [];
  const writes: number[] = [];
  for (let i = 1; i <= ROTATIONS; i++) {
    const want = fingerprint(certs[i]);
    const old = fingerprint(certs[i - 1]);
    const first = await servedCertificate(PORTS.rotate);
    if (first.fingerprint !== old) throw new Error(`rotation ${i}: the rotated listener serves an unexpected certificate before the write`);
    let connections = 0;
    let oldCert = 0;
    let errors = 0;
    const errorKinds: Record<string, number> = {};
    writes.push(Date.now());
    const t0 = performance.now();
    await replaceFile(file, secretYaml('cert-rotate', certs[i]));
    for (let next = t0; ; ) {
      let got: string | undefined;
      try {
        got = (await servedCertificate(PORTS.rotate)).fingerprint;
      } catch (err) {
        errors++;
        const kind = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
        errorKinds[kind] = (errorKinds[kind] ?? 0) + 1;
      }
      connections++;
      const now = performance.now();
      if (got === want) {
        out.push({ ms: now - t0, connections, oldCert, errors, errorKinds });
        break;
      }
      if (got === old) oldCert++;
      else if (got !== undefined) throw new Error(`rotation ${i}: served a certificate that is neither the old nor the new one`);
      if (now - t0 > ROTATION_TIMEOUT_MS) throw new Error(`rotation ${i}: new certificate not served within ${ROTATION_TIMEOUT_MS} ms`);
      next += ROTATION_POLL_MS;
      if (next > now) await sleep(next - now);
      else next = now;
    }
    const r = out[out.length - 1];
    console.log(`  rotation ${i}: ${fmt(r.ms)} ms, ${r.connections} connections (${r.oldCert} old certificate, ${r.errors} failed${r.errors ? `: ${JSON.stringify(r.errorKinds)}` : ''})`);
    await sleep(ROTATION_SETTLE_MS);
  }
  // The control plane's share: the first hitch-reload event logged after each write.
  const reloads = (await readFile(logFile, 'utf8'))
    .split('\n')
    .flatMap((l) => {
      try {
        const e = JSON.parse(l) as { event?: string; time?: string };
        return e.event === 'hitch-reload' && e.time ? [Date.parse(e.time)] : [];
      } catch {
        return [];
      }
    });
  writes.forEach((w, i) => {
    const at = reloads.find((t) => t >= w);
    if (at !== undefined) out[i].toReloadMs = at - w;
  });
  return out;
}

// ---------------------------------------------------------------- run

interface Series<T> {
  runs: T[];
  best: T;
}

function best<T>(runs: T[], key: (t: T) => number): Series<T> {
  return { runs, best: runs.reduce((a, b) => (key(b) > key(a) ? b : a)) };
}

async function waitForHttps(port: number, gw: Gateway): Promise<void> {
  await waitFor(`HTTPS 200 on port ${port}`, 60_000, 50, () =>
    new Promise<true | undefined>((resolve, reject) => {
      const req = request({ host: ADDRESS, port, path: PATH, servername: HOST, rejectUnauthorized: false, agent: false, headers: { host: HOST, ...CACHE_HEADER }, timeout: 2_000 }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode === 200 ? true : undefined));
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', reject);
      req.end();
    }), gw.proc);
}

/** Renders the recorded figures again, for a change of the report's wording. */
async function renderAgain(): Promise<void> {
  const all = JSON.parse(await readFile(fileURLToPath(new URL('./results.json', import.meta.url)), 'utf8')) as Record<string, Section>;
  const section = all.tls;
  if (!section) throw new Error('bench/results.json has no TLS section: run the benchmark first');
  saveSection('tls', { ...section, markdown: tlsMarkdown(section.data as TlsResult) });
  console.log('bench/README.md rendered again from bench/results.json');
}

async function main(): Promise<void> {
  if (RENDER) return renderAgain();
  const loadBefore = loadavg();
  const quiet = await waitForQuietMachine(60);
  const t0 = performance.now();
  const machine = machineInfo();
  const tmp = await mkdtemp(join(tmpdir(), 'vgw-bench-tls-'));
  // varnishd's jail user must reach the work directories below it.
  await chmod(tmp, 0o755);
  const dir = join(tmp, 'manifests');
  const pki = join(tmp, 'pki');
  const workDir = join(tmp, 'work');
  await mkdir(dir);
  await mkdir(pki);
  await mkdir(workDir);
  const logFile = join(tmp, 'serve.log');

  console.log('certificates');
  const ecdsa = await selfSigned(pki, 'ecdsa', 'ecdsa');
  const rsa = await selfSigned(pki, 'rsa', 'rsa');
  const rotation: Pem[] = [];
  for (let i = 0; i <= ROTATIONS; i++) rotation.push(await selfSigned(pki, `rotate-${i}`, 'ecdsa'));
  await writeFile(join(dir, 'gateway.yaml'), gatewayYaml());
  await writeFile(join(dir, 'secret-ecdsa.yaml'), secretYaml('cert-ecdsa', ecdsa));
  await writeFile(join(dir, 'secret-rsa.yaml'), secretYaml('cert-rsa', rsa));
  await writeFile(join(dir, 'secret-rotate.yaml'), secretYaml('cert-rotate', rotation[0]));

  let backend: EchoBackend | null = null;
  let gw: Gateway | null = null;
  const close = new Map<string, WrkMeasured[]>(TARGETS.map((t) => [t.label, []]));
  const keep = new Map<string, WrkMeasured[]>(TARGETS.map((t) => [t.label, []]));
  const combos = (['ecdsa', 'rsa'] as const).flatMap((cert) => (['TLSv1.3', 'TLSv1.2'] as const).map((version) => ({ cert, version })));
  const handshakes = new Map<string, HandshakeMeasured[]>(combos.map((c) => [`${c.cert} ${c.version}`, []]));
  let rotations: Rotation[] = [];
  let negotiated: ServedCert | undefined;
  try {
    backend = await startEcho(BACKEND.address, BACKEND.port);
    gw = spawnServe(dir, ADMIN_PORT, workDir, logFile, { adminAddress: ADDRESS });
    await waitFor200(`http://${ADDRESS}:${PORTS.http}`, HOST, PATH, 60_000, gw);
    for (const port of [PORTS.ecdsa, PORTS.rsa, PORTS.rotate]) await waitForHttps(port, gw);
    negotiated = await servedCertificate(PORTS.ecdsa);
    const status = await gw.status();
    if (status.problems.length > 0) throw new Error(`vgw serve reports problems: ${JSON.stringify(status.problems).slice(0, 500)}`);
    const instanceDir = join(workDir, VARNISHD_DIR, 'varnish');
    for (let round = 1; round <= ROUNDS; round++) {
      console.log(`round ${round}`);
      for (const t of TARGETS) close.get(t.label)!.push(await measureWrk(gw, instanceDir, t, 'close'));
      for (const c of combos) handshakes.get(`${c.cert} ${c.version}`)!.push(await measureHandshakes(gw, c.cert, c.version));
      for (const t of TARGETS) keep.get(t.label)!.push(await measureWrk(gw, instanceDir, t, 'keep-alive'));
    }
    console.log('certificate rotation');
    rotations = await rotate(dir, rotation, logFile);
  } catch (err) {
    console.error(`failed; logs kept in ${tmp}`);
    await gw?.stop();
    await backend?.stop();
    throw err;
  }
  await gw.stop();
  await backend.stop();
  await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
  const loadAfter = loadavg();
  const durationS = (performance.now() - t0) / 1000;
  const result: TlsResult = {
    params: {
      threads: THREADS,
      connections: CONNECTIONS,
      warmupS: WARMUP_S,
      durationS: DURATION_S,
      rounds: ROUNDS,
      stimeProcesses: STIME_PROCESSES,
      rotationPollMs: ROTATION_POLL_MS,
      rotationSettleMs: ROTATION_SETTLE_MS,
      cpuModel: machine.cpuModel,
      hitchWorkers: defaultHitchWorkers(),
    },
    closeRuns: TARGETS.map((t) => best(close.get(t.label)!, (m) => m.wrk.rps)),
    keepRuns: TARGETS.map((t) => best(keep.get(t.label)!, (m) => m.wrk.rps)),
    handshakes: combos.map((c) => best(handshakes.get(`${c.cert} ${c.version}`)!, (h) => h.rate)),
    rotations,
    negotiatedProtocol: negotiated?.protocol ?? 'unknown',
    tcpMigrateReq: (await readFile('/proc/sys/net/ipv4/tcp_migrate_req', 'utf8').catch(() => 'unknown')).trim(),
    load: { before: loadBefore, after: loadAfter, backgroundCores: quiet.backgroundCores, nproc: machine.nproc },
  };
  if (QUICK) {
    console.log(`\n${tlsMarkdown(result)}\nquick run done in ${fmt(durationS)} s; nothing recorded`);
    return;
  }
  saveSection('tls', {
    title: 'TLS',
    command: 'bench:tls',
    machine,
    durationS,
    backgroundCores: quiet.backgroundCores,
    markdown: tlsMarkdown(result),
    data: result,
  });
  console.log(`\n${tlsMarkdown(result)}\ndone in ${fmt(durationS)} s; bench/README.md updated`);
}

/** How the run was made; stored with the figures so that the text can be rendered again. */
interface RunParams {
  threads: number;
  connections: number;
  warmupS: number;
  durationS: number;
  rounds: number;
  stimeProcesses: number;
  rotationPollMs: number;
  rotationSettleMs: number;
  cpuModel: string;
  hitchWorkers?: number;
}

interface TlsResult {
  params: RunParams;
  closeRuns: Series<WrkMeasured>[];
  keepRuns: Series<WrkMeasured>[];
  handshakes: Series<HandshakeMeasured>[];
  rotations: Rotation[];
  negotiatedProtocol: string;
  tcpMigrateReq?: string;
  load: { before: number[]; after: number[]; backgroundCores: number; nproc: number };
}

// ---------------------------------------------------------------- report

/**
 * Whether hitch was the limit: each of its worker processes can use at most one core. When it
 * used less than its workers could, the rates measure the client and the machine, and CPU per
 * handshake is the figure to compare.
 */
function saturation(r: TlsResult): string {
  const hitch = [...r.handshakes.map((s) => s.best.cpu.hitch), ...r.closeRuns.filter((s) => s.best.label !== 'HTTP').map((s) => s.best.cpu.hitch)];
  const most = Math.max(...hitch);
  const client = Math.max(...r.handshakes.map((s) => s.best.cpu.client));
  const workers = r.params.hitchWorkers ?? 1;
  // Its workers can use `workers` cores, but never more than the machine leaves beside the clients.
  const limit = Math.min(workers, r.load.nproc);
  return most >= 0.9 * limit
    ? `hitch used up to ${cores(most)} cores during the new-connection runs: with ${workers} worker process${workers === 1 ? '' : 'es'}, it was the limit.`
    : `hitch used at most ${cores(most)} cores during the new-connection runs, so it was not the limit (its ${workers}
worker process${workers === 1 ? '' : 'es'} can use ${limit} core${limit === 1 ? '' : 's'}): the rates are bound by the load generators (\`openssl s_time\` used up to ${cores(client)}
cores, wrk's TLS client costs about as much CPU per connection as hitch) and the rest of the machine. hitch's
CPU per handshake is the figure that compares certificates and protocols.`;
}

const us = (cores: number, perS: number) => fmt((1e6 * cores) / perS, 1);
const cores = (v: number) => fmt(v, 2);

function range<T>(s: Series<T>, key: (t: T) => number): string {
  const v = s.runs.map(key);
  return `${fmt(Math.min(...v), 0)}–${fmt(Math.max(...v), 0)}`;
}

function wrkRows(series: Series<WrkMeasured>[]): (string | number)[][] {
  return series.map((s) => {
    const m = s.best;
    const c = m.counters;
    const errors = s.runs.reduce((n, r) => n + r.errors, 0);
    return [
      m.label,
      fmt(m.wrk.rps, 0),
      range(s, (r) => r.wrk.rps),
      `${fmt(m.wrk.latency.p50, 2)} / ${fmt(m.wrk.latency.p90, 2)} / ${fmt(m.wrk.latency.p99, 2)}`,
      errors,
      us(m.cpu.hitch, m.wrk.rps),
      us(m.cpu.varnishd, m.wrk.rps),
      us(m.cpu.client, m.wrk.rps),
      `${cores(m.cpu.hitch)} / ${cores(m.cpu.varnishd)} / ${cores(m.cpu.client)} / ${cores(m.cpu.machine)}`,
      `${fmt(c['MAIN.cache_hit'] / c['MAIN.client_req'], 3)} / ${fmt(c['MAIN.sess_conn'] / c['MAIN.client_req'], 3)}`,
    ];
  });
}

const WRK_HEADER = ['listener', 'req/s (best)', 'range', 'p50 / p90 / p99 ms', 'errors', 'hitch µs CPU / req', 'varnishd µs CPU / req', 'wrk µs CPU / req', 'cores: hitch / varnishd / wrk / machine', 'cache hits / sessions per req'];

function tlsMarkdown(r: TlsResult): string {
  const p = r.params;
  const rate = (label: string, runs: Series<WrkMeasured>[]) => runs.find((s) => s.best.label === label)?.best.wrk.rps ?? NaN;
  const pct = (a: number, b: number) => `${fmt((100 * a) / b, 1)} %`;
  const http = 'HTTP';
  const ec = `HTTPS, ${CERT_LABEL.ecdsa}`;
  const rs = `HTTPS, ${CERT_LABEL.rsa}`;
  const hsRows = r.handshakes.map((s) => {
    const h = s.best;
    return [`${CERT_LABEL[h.cert]}, ${h.version}`, fmt(h.rate, 0), range(s, (x) => x.rate), us(h.cpu.hitch, h.rate), us(h.cpu.client, h.rate), `${cores(h.cpu.hitch)} / ${cores(h.cpu.varnishd)} / ${cores(h.cpu.client)} / ${cores(h.cpu.machine)}`];
  });
  const rot = stats(r.rotations.map((x) => x.ms));
  const toReload = stats(r.rotations.flatMap((x) => (x.toReloadMs === undefined ? [] : [x.toReloadMs])));
  const rotErrors = r.rotations.reduce((n, x) => n + x.errors, 0);
  const rotConns = r.rotations.reduce((n, x) => n + x.connections, 0);
  const rotOld = r.rotations.reduce((n, x) => n + x.oldCert, 0);
  const rotKinds: Record<string, number> = {};
  for (const x of r.rotations) for (const [k, v] of Object.entries(x.errorKinds)) rotKinds[k] = (rotKinds[k] ?? 0) + v;
  const rotFailed = rotErrors === 0 ? '0' : `${rotErrors} (${Object.entries(rotKinds).map(([k, v]) => `${k} ×${v}`).join(', ')})`;
  const rotHit = r.rotations.filter((x) => x.errors > 0).length;
  // Load after the run counts too: other work that started during it took CPU from the later rows.
  const busy = r.load.before[0] > r.load.nproc * 0.5 || r.load.after[0] > r.load.nproc * 1.5 || r.load.backgroundCores > 0.3;
  const la = (v: number[]) => v.map((x) => x.toFixed(2)).join(', ');
  const hitchKeepUs = (label: string) => {
    const m = r.keepRuns.find((s) => s.best.label === label)?.best;
    return m ? us(m.cpu.hitch, m.wrk.rps) : 'n/a';
  };
  const serverUs = (label: string) => {
    const m = r.keepRuns.find((s) => s.best.label === label)?.best;
    return m ? us(m.cpu.hitch + m.cpu.varnishd, m.wrk.rps) : 'n/a';
  };
  const hitchCloseUs = (label: string) => {
    const m = r.closeRuns.find((s) => s.best.label === label)?.best;
    return m ? us(m.cpu.hitch, m.wrk.rps) : 'n/a';
  };
  const startedDuring = r.load.before[0] <= r.load.nproc * 0.5 && r.load.backgroundCores <= 0.3;
  return `${busy ? `**Measured under load:** the load average was ${la(r.load.before)} (1, 5, 15 min) before the run and ${la(r.load.after)}
after it on ${r.load.nproc} CPUs, and other processes kept ${fmt(r.load.backgroundCores, 2)} cores busy just before it: ${startedDuring ? 'other work started during the run and took CPU from the later rows and rounds (the range column shows how much)' : 'other work took CPU from every figure below'}. Ratios between rows of one table hold better than absolute
numbers; re-run on a quiet machine for those.

` : ''}This workload differs from the other sections. One \`vgw serve\` on ${r.load.nproc} vCPUs (${p.cpuModel}); the
load generators (wrk, \`openssl s_time\`), hitch (${p.hitchWorkers} worker processes, as vgw configures it on this machine), varnishd
and the echo backend all share those CPUs over loopback. The Gateway has an HTTP listener and
three HTTPS listeners, one with an ECDSA P-256 and one with an RSA-2048 self-signed certificate,
and one whose Secret is rotated; one HTTPRoute
(\`Host: ${HOST}\`, prefix \`${PATH}\`) sends all of them to one echo backend that answers
\`Cache-Control: max-age=3600\`, so every measured request is a cache hit (the table's hit ratio).
Measurements run in ${p.rounds} interleaved rounds (every row once per round); tables show the best run and
the range. CPU is read from /proc over the measured run: hitch and varnishd are the processes below
\`vgw serve\` by command name, the load generator's CPU is its own user + system time once it has
exited. µs per request is CPU time divided by requests (or handshakes) served. hitch offers TLS 1.2
and 1.3 (a Node client got \`${r.negotiatedProtocol}\`); clients do not verify certificates and do not
resume sessions, so every HTTPS connection is a full handshake.

**1. A new connection per request.** wrk ${p.threads} threads, ${p.connections} connections, ${p.durationS} s after a ${p.warmupS} s warm-up, every
request with \`Connection: close\`: the server closes after each answer and wrk reconnects, so
req/s is new connections per second (sessions per request ≈ 1). wrk's OpenSSL negotiates TLS 1.3.

${table(WRK_HEADER, wrkRows(r.closeRuns))}

HTTPS with a new connection per request runs at ${pct(rate(ec, r.closeRuns), rate(http, r.closeRuns))} (ECDSA) and ${pct(rate(rs, r.closeRuns), rate(http, r.closeRuns))} (RSA)
of plain HTTP's rate; hitch spends ${hitchCloseUs(ec)} µs (ECDSA) and ${hitchCloseUs(rs)} µs (RSA) of CPU per connection.

Bare TLS handshakes: \`openssl s_time -new\` (connect, full handshake, close; no request), ${p.stimeProcesses}
processes at once, each one connection at a time, ${p.durationS} s.

${table(['certificate, protocol', 'handshakes/s (best)', 'range', 'hitch µs CPU / handshake', 'openssl µs CPU / handshake', 'cores: hitch / varnishd / openssl / machine'], hsRows)}

${saturation(r)}

**2. Keep-alive.** wrk ${p.threads} threads, ${p.connections} connections, ${p.durationS} s after a ${p.warmupS} s warm-up; the connections are opened once.

${table(WRK_HEADER, wrkRows(r.keepRuns))}

HTTPS keep-alive runs at ${pct(rate(ec, r.keepRuns), rate(http, r.keepRuns))} (ECDSA) and ${pct(rate(rs, r.keepRuns), rate(http, r.keepRuns))} (RSA) of plain HTTP's
rate. Server CPU per cache hit: ${serverUs(http)} µs over HTTP (varnishd), ${serverUs(ec)} µs over HTTPS (hitch ${hitchKeepUs(ec)}
µs for decrypting, encrypting and forwarding to varnishd's PROXY socket, plus varnishd).
The certificate type does not matter once the connection is open. hitch runs one worker process
per CPU (at most 4); on this 2-vCPU machine wrk and varnishd compete with it for both.

**3. Certificate rotation.** ${r.rotations.length} times, the Secret of the rotated listener is rewritten (written to a
hidden temporary name in the watched directory and renamed over the old file) with a new ECDSA
certificate; from just before the write, a new TLS connection is made every ${p.rotationPollMs} ms (one at a time)
until one is served the new certificate's SHA-256 fingerprint. Time is on the monotonic clock, so
it includes up to one poll interval and one handshake of measurement slack. "to hitch reload" is
from the write to \`vgw serve\`'s \`hitch-reload\` log event (wall clock, millisecond resolution):
the watcher's debounce, re-reading the directory, rendering, writing hitch's PEM files, and starting
a second hitch instance with the new certificates beside the serving one (the event is logged once it
serves and the old instance is retired; docs/tls.md). ${p.rotationSettleMs} ms between rotations.
net.ipv4.tcp_migrate_req was ${r.tcpMigrateReq} during the run.

${table(
    ['rotations', 'mean ms', 'p50 ms', 'max ms', 'to hitch reload: mean / max ms', 'connections during rotation', 'served the old certificate', 'failed'],
    [[rot.n, fmt(rot.mean), fmt(rot.p50), fmt(rot.max), toReload.n ? `${fmt(toReload.mean)} / ${fmt(toReload.max)}` : 'n/a', rotConns, rotOld, rotFailed]],
  )}
${
    rotErrors === 0
      ? `
No new connection failed during the rotations.
`
      : `
In ${rotHit} of ${r.rotations.length} rotations a new connection failed (refused: nothing listened;
reset: the TCP connection was set up, then reset before the TLS handshake ended). When the retired
hitch instance closes its listen socket, connections still queued on that socket are reset by the
kernel unless net.ipv4.tcp_migrate_req is 1, which moves them to the serving instance's socket.
`
  }`;
}

await main();
