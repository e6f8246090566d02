// translate() returns one routing IR per Gateway (what the operator publishes per Gateway) and
// the merged IR one varnishd serves in standalone mode. Property: merging the per-Gateway IRs
// gives exactly the combined IR the translator builds from all listeners at once, on every
// translator golden case and every conformance manifest set (each Gateway on its own address,
// and all Gateways sharing one address, where listener isolation crosses Gateways).
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CONTROLLER_NAME } from '../../src/gatewayapi/features.ts';
import { gatewaySchema } from '../../src/gatewayapi/schema/gateway.ts';
import { translate, type TranslateResult } from '../../src/gatewayapi/translator.ts';
import type { ResourceSnapshot } from '../../src/gatewayapi/types.ts';
import { mergeGatewayIRs } from '../../src/ir/merge.ts';
import { parseRoutingIR } from '../../src/ir/schema.ts';
import { IR_VERSION, type RoutingIR } from '../../src/ir/types.ts';
import { loadManifestDir } from '../../src/providers/file/load.ts';
import { backend, gateway, listener, NOW, parentRef, route, rule, service, world } from './fixtures/builders.ts';

const work = mkdtempSync(join(tmpdir(), 'vgw-gateway-irs-'));
after(() => rmSync(work, { recursive: true, force: true }));
let dirs = 0;
function freshDir(): string {
  const dir = join(work, `d${++dirs}`);
  mkdirSync(dir);
  return dir;
}

/** The property every translation must hold. */
function assertMergesBack(result: TranslateResult, what: string): void {
  for (const g of result.gateways) {
    const parsed = parseRoutingIR(JSON.parse(JSON.stringify(g.routing)));
    assert.ok(parsed.ok, `${what}: routing of ${g.gateway.namespace}/${g.gateway.name} fails the IR schema: ${parsed.ok ? '' : parsed.reason}`);
  }
  const { routeGenerations, ...merged } = mergeGatewayIRs(result.gateways.map((g) => g.routing));
  assert.deepStrictEqual(merged, result.ir, `${what}: merged per-Gateway IRs differ from the combined IR`);
  // The combined IR carries no generations (no data plane reports on it); the merged ones name
  // every route it serves (and attached routes a listener cannot serve yet).
  const served = new Set(result.ir.sockets.flatMap((s) => s.vhosts.flatMap((v) => v.routes.map((r) => r.id.split('/').slice(0, 2).join('/')))));
  for (const route of served) assert.ok(routeGenerations?.[route] !== undefined, `${what}: no merged generation for ${route}`);
  const keys = result.gateways.map((g) => [g.gateway.namespace, g.gateway.name]);
  const sorted = [...keys].sort((a, b) => (a[0] !== b[0] ? (a[0] < b[0] ? -1 : 1) : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  assert.deepStrictEqual(keys, sorted, `${what}: gateways are sorted by namespace/name`);
}

describe('per-Gateway IRs merge back into the combined IR', () => {
  const GOLDEN = join(import.meta.dirname, '..', 'testdata', 'translate');
  const goldenCases = readdirSync(GOLDEN).filter((f) => f.endsWith('.in.yaml'));
  test('there are golden cases', () => assert.ok(goldenCases.length >= 30));
  for (const file of goldenCases) {
    test(`golden ${file}`, async () => {
      const text = readFileSync(join(GOLDEN, file), 'utf8');
      const m = /^# options: (.*)$/.exec(text.split('\n', 1)[0]);
      const options = m ? (JSON.parse(m[1]) as { defaultAddress?: string; unavailableSockets?: Record<string, string> }) : {};
      const dir = freshDir();
      copyFileSync(join(GOLDEN, file), join(dir, file));
      let snapshot: ResourceSnapshot;
      try {
        snapshot = (await loadManifestDir(dir)).snapshot;
      } catch {
        return; // A case whose point is a load error has nothing to translate.
      }
      const result = translate(snapshot, {
        defaultAddress: options.defaultAddress ?? '127.0.0.1',
        now: NOW,
        ...(options.unavailableSockets ? { unavailableSockets: new Map(Object.entries(options.unavailableSockets)) } : {}),
      });
      assertMergesBack(result, file);
    });
  }

  const MANIFESTS = new URL('../../../shared/conformance/manifests/', import.meta.url);
  const available = existsSync(fileURLToPath(new URL('base/manifests.yaml', MANIFESTS)));
  const sets = available ? readdirSync(fileURLToPath(new URL('tests/', MANIFESTS))).filter((f) => f.endsWith('.yaml')) : [];
  let base: ResourceSnapshot | undefined;
  const load = async (files: string[], withClass: boolean): Promise<ResourceSnapshot> => {
    const dir = freshDir();
    files.forEach((rel, i) => {
      const text = readFileSync(new URL(rel, MANIFESTS), 'utf8').replaceAll('{GATEWAY_CLASS_NAME}', 'vgw');
      writeFileSync(join(dir, `${i}-${rel.replaceAll('/', '_')}`), text);
    });
    if (withClass) {
      writeFileSync(
        join(dir, 'class.yaml'),
        `apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata:\n  name: vgw\nspec:\n  controllerName: ${CONTROLLER_NAME}\n`,
      );
    }
    return (await loadManifestDir(dir)).snapshot;
  };
  test('conformance manifest sets', { skip: available ? false : 'conformance manifests not found' }, async () => {
    base ??= await load(['base/manifests.yaml'], true);
    assert.ok(sets.length > 50, `only ${sets.length} conformance manifest sets`);
    let shared = 0;
    for (const set of sets) {
      const snapshot = structuredClone(base);
      const extra = await load([`tests/${set}`], false);
      for (const k of Object.keys(extra) as (keyof ResourceSnapshot)[]) (snapshot[k] as unknown[]).push(...(extra[k] as unknown[]));
      // All Gateways on the default address: sockets shared across Gateways.
      const together = translate(snapshot, { defaultAddress: '127.0.0.1', now: NOW });
      assertMergesBack(together, `${set} (one address)`);
      if (together.ir.sockets.some((s) => new Set(s.vhosts.map((v) => v.listener.split('/').slice(0, 2).join('/'))).size > 1)) shared++;
      // Each Gateway on its own address, as the conformance harness assigns them.
      let n = 0;
      for (const gw of snapshot.gateways) {
        n++;
        if (!gw.spec.addresses?.some((a) => a.value)) gw.spec.addresses = [{ type: 'IPAddress', value: `127.0.1.${n}` }];
      }
      assertMergesBack(translate(snapshot, { defaultAddress: '127.0.0.1', now: NOW }), `${set} (own addresses)`);
    }
    assert.ok(shared > 0, 'no manifest set puts two Gateways on one socket: the cross-Gateway merge went untested');
  });
});

describe('listener isolation across Gateways sharing a socket', () => {
  // "older" listens on any host and routes foo.example.com; "newer" listens on *.example.com.
  // One varnishd serving both sends foo.example.com to newer's listener (more specific); older
  // alone on its own data plane serves foo.example.com itself.
  const snapshot = () =>
    world({
      gateways: [
        gateway('older', [listener('any')], { creationTimestamp: '2020-01-01T00:00:00Z' }),
        gateway('newer', [listener('wild', { hostname: '*.example.com' })], { creationTimestamp: '2021-01-01T00:00:00Z' }),
      ],
      httpRoutes: [
        route('to-older', { parentRefs: [parentRef('older')], hostnames: ['foo.example.com'], rules: [rule({ backendRefs: [backend('svc')] })] }),
        route('to-newer', { parentRefs: [parentRef('newer')], rules: [rule({ backendRefs: [backend('svc2')] })] }),
      ],
      services: [service('svc'), service('svc2')],
    });
  const hosts = (ir: RoutingIR) => ir.sockets.flatMap((s) => s.vhosts.map((v) => `${v.hostname} ${v.listener} ${v.routes.map((r) => r.id).join(',')}`));

  test('each Gateway routes its own hostnames; the merge gives the host to the most specific listener', () => {
    const result = translate(snapshot(), { defaultAddress: '127.0.0.1', now: NOW });
    const [newer, older] = result.gateways;
    assert.deepEqual([newer.gateway.name, older.gateway.name], ['newer', 'older']);
    assert.deepEqual(hosts(older.routing), ['* default/older/any ', 'foo.example.com default/older/any default/to-older/0/0']);
    assert.deepEqual(hosts(newer.routing), ['*.example.com default/newer/wild default/to-newer/0/0']);
    assert.deepEqual(hosts(result.ir), ['* default/older/any ', '*.example.com default/newer/wild default/to-newer/0/0']);
    // Each Gateway lists only the services its routes use, numbered from 0.
    assert.deepEqual(older.routing.services.map((s) => s.name), ['svc']);
    assert.deepEqual(newer.routing.services.map((s) => s.name), ['svc2']);
    assert.deepEqual(result.ir.services.map((s) => s.name), ['svc2']);
    assert.deepEqual(older.routing.routeGenerations, { 'default/to-older': 1 });
    assertMergesBack(result, 'isolation');
  });

  test('merging in any order gives the same IR', () => {
    const result = translate(snapshot(), { defaultAddress: '127.0.0.1', now: NOW });
    const irs = result.gateways.map((g) => g.routing);
    assert.deepStrictEqual(mergeGatewayIRs([...irs].reverse()), mergeGatewayIRs(irs));
  });
});

describe('mergeGatewayIRs', () => {
  const socketIR = (address: string, listenerId: string, service: string): RoutingIR => ({
    version: IR_VERSION,
    routeGenerations: { [`default/${service}`]: 2 },
    sockets: [
      {
        name: 'ignored',
        address,
        port: 80,
        vhosts: [{ hostname: '*', listener: listenerId, routes: [{ id: `default/${service}/0/0`, match: { path: { type: 'PathPrefix', value: '/' }, headers: [], queryParams: [] }, action: { backends: [{ weight: 1, service: 0 }] } }] }],
      },
    ],
    services: [{ namespace: 'default', name: service, port: 80, portName: '' }],
  });

  test('addresses that read alike get distinct socket names', () => {
    const merged = mergeGatewayIRs([socketIR('::ffff:1:2:3:4', 'default/a/http', 'a'), socketIR('::ffff:1.2.3.4', 'default/b/http', 'b')]);
    assert.deepEqual(
      merged.sockets.map((s) => [s.address, s.name]),
      [
        ['::ffff:1.2.3.4', 'a__ffff_1_2_3_4_80'],
        ['::ffff:1:2:3:4', 'a__ffff_1_2_3_4_80_'],
      ],
    );
    assert.ok(parseRoutingIR(merged).ok);
  });

  test('services are de-duplicated and numbered by first use; generations united', () => {
    const merged = mergeGatewayIRs([socketIR('10.0.0.2', 'default/a/http', 'same'), socketIR('10.0.0.1', 'default/b/http', 'same')]);
    assert.deepEqual(merged.services.map((s) => s.name), ['same']);
    assert.deepEqual(merged.sockets.flatMap((s) => s.vhosts.flatMap((v) => v.routes.map((r) => r.action.backends[0].service))), [0, 0]);
    assert.deepEqual(merged.routeGenerations, { 'default/same': 2 });
  });

  test("pathNormalization is 'Off' only when every Gateway's IR says so", () => {
    const off = { ...socketIR('10.0.0.1', 'default/a/http', 'a'), pathNormalization: 'Off' as const };
    const on = socketIR('10.0.0.2', 'default/b/http', 'b');
    assert.equal(mergeGatewayIRs([off, { ...off, sockets: [] }]).pathNormalization, 'Off');
    assert.equal(mergeGatewayIRs([off, on]).pathNormalization, undefined);
    assert.deepEqual(mergeGatewayIRs([]), { version: IR_VERSION, routeGenerations: {}, sockets: [], services: [] });
  });
});

describe('Gateway infrastructure', () => {
  test('listeners that carry traffic, addresses, and spec.infrastructure labels and annotations', () => {
    const gw = gateway('gw', [listener('http'), listener('tls', { port: 443, protocol: 'HTTPS' }), listener('alt', { port: 8080, hostname: 'a.example.com' })], {
      addresses: [{ value: '10.1.2.3' }],
      infrastructure: { labels: { team: 'web' }, annotations: { 'example.com/note': 'free text: any' } },
    });
    const result = translate(world({ gateways: [gw] }), { defaultAddress: '127.0.0.1', now: NOW });
    assert.deepEqual(result.gateways[0].infra, {
      listeners: [
        { name: 'http', protocol: 'HTTP', port: 80, hostname: '*', certificateRefs: [] },
        { name: 'alt', protocol: 'HTTP', port: 8080, hostname: 'a.example.com', certificateRefs: [] },
      ],
      addresses: ['10.1.2.3'],
      labels: { team: 'web' },
      annotations: { 'example.com/note': 'free text: any' },
    });
  });

  test('a Gateway that is not accepted gets no per-Gateway IR', () => {
    const gw = gateway('gw', [listener('tcp', { port: 9000, protocol: 'TCP' })]);
    assert.deepEqual(translate(world({ gateways: [gw] }), { defaultAddress: '127.0.0.1', now: NOW }).gateways, []);
  });

  test('the Gateway schema refuses labels and annotations Kubernetes would refuse on the generated objects', () => {
    const gw = (infrastructure: unknown) => ({ ...gateway('gw', [listener('http')]), spec: { gatewayClassName: 'vgw', listeners: [listener('http')], infrastructure } });
    assert.ok(gatewaySchema.safeParse(gw({ labels: { a: 'b' }, annotations: { 'x.io/y': 'z' } })).success);
    const nine = Object.fromEntries(Array.from({ length: 9 }, (_, i) => [`k${i}`, 'v']));
    for (const bad of [{ labels: nine }, { annotations: nine }, { labels: { 'bad key!': 'v' } }, { labels: { k: 'spaces are not allowed' } }, { labels: { k: 1 } }, { annotations: { k: 'x'.repeat(4097) } }]) {
      assert.equal(gatewaySchema.safeParse(gw(bad)).success, false, JSON.stringify(bad).slice(0, 80));
    }
  });
});
