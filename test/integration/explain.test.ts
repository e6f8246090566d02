// `vgw explain` on the Gateway API conformance cases: for every case of every traffic test the
// suite runs, the request is explained from the test's manifests (base + test, as standalone
// mode serves them) and replayed through the generated VCL in a throwaway varnishd. The IR's
// view and varnishd must agree, and both must give the outcome upstream expects: the status,
// the backend Service, and the path and host the backend receives.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { chooseSocket, onlyGateway, predict } from '../../src/explain/predict.ts';
import { Replayer } from '../../src/explain/replay.ts';
import { disagreements } from '../../src/explain/report.ts';
import type { ExplainRequest } from '../../src/explain/request.ts';
import { renderChecked } from '../../src/pipeline/render.ts';
import { loadManifestDir } from '../../src/providers/file/load.ts';
import { RegexChecker } from '../../src/varnish/regex-check.ts';
import { loadCases, type TrafficCase, type TrafficTest } from '../conformance/data.ts';
import { planTrafficTest } from '../conformance/plan.ts';
import { patchedEndpointSlices } from '../conformance/procedures.ts';
import { AddressBook, composeWorld, loadManifests, ServeDir, type Pod } from '../conformance/world.ts';
import type { EndpointMap } from '../../src/ir/types.ts';

const cases = loadCases();
const work = mkdtempSync(path.join(tmpdir(), 'vgw-explain-test-'));
after(() => rmSync(work, { recursive: true, force: true }));
const book = new AddressBook();
const regexes = new RegexChecker();

/**
 * Cases whose expected answer the gateway decides on its own. Left out: answers that come from
 * the echo backend's behaviour (`/status/N`, `/retry/`, `?delay=` for timeouts: the stubs here
 * always answer 200 at once), requests expected to fail at the transport, and h2c.
 */
function explainable(c: TrafficCase): boolean {
  if (c.mode === 'expectRequestError' || c.request.protocol) return false;
  if (/^\/(status|retry)\//.test(c.request.path) || /[?&]delay=/.test(c.request.path)) return false;
  if (c.request.headers && Object.keys(c.request.headers).some((h) => h.toLowerCase() === 'x-echo-set-header')) return false;
  return true;
}

function requestOf(c: TrafficCase, test: TrafficTest): ExplainRequest {
  const gw = c.gateway ?? test.gateway;
  const headers = Object.entries(c.request.headers ?? {}).filter(([n]) => n.toLowerCase() !== 'host');
  return { method: c.request.method || 'GET', host: c.request.host || 'gateway', path: c.request.path, headers, port: gw.port };
}

/**
 * What upstream expects against what varnishd did; undefined when they agree. Upstream names
 * the Deployment whose pod must answer: the Service reached must have that Deployment's pods,
 * and only those, as endpoints.
 */
function expectationFailure(c: TrafficCase, status: number, backend: { service: string; url: string; headers: [string, string][] } | undefined, endpoints: EndpointMap, pods: Pod[]): string | undefined {
  if (!c.response.statusCodes.includes(status)) return `status ${status}, expected one of ${c.response.statusCodes.join(', ')}`;
  if (status !== 200 || !c.backend) return undefined;
  if (!backend) return 'no backend reached';
  const expected = new Set(pods.filter((p) => p.namespace === c.namespace && p.deployment === c.backend).map((p) => p.ip));
  const reached = (endpoints.get(backend.service) ?? []).map((e) => e.address);
  if (reached.length === 0 || !reached.every((ip) => expected.has(ip))) return `reached Service ${backend.service} (endpoints ${reached.join(', ')}), expected pods of ${c.namespace}/${c.backend}`;
  const want = c.expectedRequest;
  if (want?.path !== undefined && backend.url !== want.path) return `backend got ${backend.url}, expected ${want.path}`;
  const host = backend.headers.find(([n]) => n.toLowerCase() === 'host')?.[1];
  if (want?.host !== undefined && host !== want.host) return `backend got Host ${host}, expected ${want.host}`;
  return undefined;
}

// Backend TLS is outside what explain replays: its throwaway varnishd talks to stub backends in
// clear text, without the TLS-originating proxy, so those tests are left to the conformance run.
const BACKEND_TLS_FEATURES = ['BackendTLSPolicy', 'GatewayBackendClientCertificate'];
const runnable = cases.trafficTests.filter((t) => planTrafficTest(t).run && t.cases.some(explainable) && !t.features.some((f) => BACKEND_TLS_FEATURES.includes(f)));

describe('vgw explain agrees with varnishd and upstream on the conformance cases', { concurrency: 2 }, () => {
  for (const t of runnable) {
    test(t.name, async () => {
      const world = composeWorld(loadManifests(t.manifests), book);
      const dir = new ServeDir(path.join(work, t.name));
      await dir.writeAll(world.objects);
      // HTTPRouteServiceTypes fills its hand-made EndpointSlices before sending traffic.
      if (t.procedural?.type === 'patchEndpointSlices') for (const slice of patchedEndpointSlices(t, world.objects, world.pods)) await dir.put(slice);
      const { snapshot } = await loadManifestDir(dir.dir);
      const config = await renderChecked(snapshot, { defaultAddress: '127.0.0.1' }, regexes);
      const gw = `${t.gateway.namespace}/${t.gateway.name}`;
      const ir = onlyGateway(config.ir, gw);
      const replayer = new Replayer(ir, config.endpoints);
      const failures: string[] = [];
      let explained = 0;
      try {
        await replayer.start();
        // Phases delete objects between cases; only the first phase is explained.
        for (const c of t.cases.filter((k) => explainable(k) && (k.phase ?? 1) === 1 && (k.gateway === undefined || `${k.gateway.namespace}/${k.gateway.name}` === gw))) {
          const req = requestOf(c, t);
          const socket = chooseSocket(ir, req);
          if (!socket.ok) {
            failures.push(`${c.name}: ${socket.why}`);
            continue;
          }
          const prediction = predict(ir, config.endpoints, req, socket.socket);
          const observation = await replayer.send(req, socket.socket.name);
          for (const d of disagreements(prediction, observation)) failures.push(`${c.name}: IR and varnishd disagree: ${d}`);
          const unmet = expectationFailure(c, observation.status, observation.backend, config.endpoints, world.pods);
          if (unmet) failures.push(`${c.name}: ${unmet}`);
          explained++;
        }
      } finally {
        await replayer.stop();
      }
      assert.deepEqual(failures, []);
      assert.ok(explained > 0, 'at least one case explained');
    });
  }
});

test('the CLI explains a redirect, says why a route wins, and exits 0 when varnishd agrees', () => {
  const dir = path.join(work, 'cli');
  const world = composeWorld(loadManifests(['base/manifests.yaml', 'tests/httproute-redirect-host-and-status.yaml']), book);
  const serveDir = new ServeDir(dir);
  return serveDir.writeAll(world.objects).then(() => {
    const main = new URL('../../src/cli/main.ts', import.meta.url).pathname;
    const run = spawnSync(process.execPath, [main, 'explain', dir, '--gateway', 'gateway-conformance-infra/same-namespace', '--host', 'gateway', '--path', '/hostname-redirect', '--port', '80'], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /WINS\s+gateway-conformance-infra\/redirect-host-and-status\//);
    assert.match(run.stdout, /outcome:\s+redirect 302/);
    assert.match(run.stdout, /Location: http:\/\/example\.org\/hostname-redirect/);
    assert.match(run.stdout, /varnishd agrees with the routing IR/);
    const bad = spawnSync(process.execPath, [main, 'explain', dir, '--host', 'gateway'], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /--path is required/);
  });
});

test('against a cluster: the Gateway\'s published routing config and the EndpointSlices of the API', async () => {
  const { startKubeApiServer } = await import('../support/kube-api-server.ts');
  const { KubernetesObjectApi } = await import('@kubernetes/client-node');
  const { encodeRoutingConfig } = await import('../../src/ir/configmap.ts');
  const { writeFileSync } = await import('node:fs');
  const { snapshot } = await loadManifestDir(new URL('../../examples/quickstart/manifests', import.meta.url).pathname);
  const config = await renderChecked(snapshot, { defaultAddress: '127.0.0.1' }, regexes);
  const server = await startKubeApiServer();
  try {
    const objects = KubernetesObjectApi.makeApiClient(server.kubeConfig());
    await objects.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } });
    for (const cm of encodeRoutingConfig(config.ir, 'shop', 'quickstart')) await objects.create(cm);
    for (const slice of snapshot.endpointSlices) await objects.create(structuredClone(slice) as never);
    const kubeconfig = path.join(work, 'kubeconfig');
    writeFileSync(kubeconfig, server.kubeConfig().exportConfig());
    const main = new URL('../../src/cli/main.ts', import.meta.url).pathname;
    const args = ['explain', '--kubeconfig', kubeconfig, '--gateway', 'shop/quickstart', '--host', 'api.example.com', '--path', '/api/items', '--header', 'X-Canary: true'];
    // Not spawnSync: the API server runs in this process and must keep answering.
    const run = await runCli(main, args);
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /WINS\s+shop\/api\/0\/0/);
    assert.match(run.stdout, /varnishd:\s+200 from shop\/api-v2:80/);
    const missing = await runCli(main, ['explain', '--kubeconfig', kubeconfig, '--gateway', 'shop/nothing', '--host', 'a', '--path', '/']);
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /routing config of shop\/nothing is (incomplete|invalid)/);
  } finally {
    await server.close();
  }
});

function runCli(main: string, args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [main, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c));
    child.stderr.on('data', (c: Buffer) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}
