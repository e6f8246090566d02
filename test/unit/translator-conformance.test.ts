// The whole pipeline (render: file snapshot -> translator -> IR -> VCL) on the upstream Gateway
// API conformance manifests (shared/conformance, beside the checkout), asserting the statuses the
// conformance suite checks. As the suite's setup does, every Gateway gets gatewayClassName
// replaced and its own address (a cluster gives each Gateway one; here 127.0.1.N, as the
// conformance harness assigns them), and our GatewayClass is added.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CONTROLLER_NAME } from '../../src/gatewayapi/features.ts';
import { ofKind, type GatewayStatus, type ObjectStatus, type RouteParentStatus, type StatusOfKind } from '../../src/gatewayapi/status.ts';
import type { Condition, ResourceSnapshot } from '../../src/gatewayapi/types.ts';
import { render, type RenderedConfig } from '../../src/pipeline/render.ts';
import { loadManifestDir } from '../../src/providers/file/load.ts';

const SHARED = new URL('../../../shared/conformance/', import.meta.url);
const MANIFESTS = new URL('manifests/', SHARED);
const available = existsSync(fileURLToPath(new URL('base/manifests.yaml', MANIFESTS)));
const skip = available ? false : `conformance manifests not found at ${fileURLToPath(SHARED)}`;

const CLASS = 'vgw';
const NOW = '2030-01-02T03:04:05Z';
const INFRA = 'gateway-conformance-infra';

const work = mkdtempSync(join(tmpdir(), 'vgw-conformance-unit-'));
after(() => rmSync(work, { recursive: true, force: true }));

let dirs = 0;
function writeDir(files: string[], withClass: boolean): string {
  const dir = join(work, `run-${++dirs}`);
  mkdirSync(dir);
  files.forEach((rel, i) => {
    const text = readFileSync(new URL(rel, MANIFESTS), 'utf8').replaceAll('{GATEWAY_CLASS_NAME}', CLASS);
    writeFileSync(join(dir, `${String(i).padStart(2, '0')}-${rel.replaceAll('/', '_')}`), text);
  });
  if (withClass) {
    writeFileSync(
      join(dir, '99-gatewayclass.yaml'),
      `apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata:\n  name: ${CLASS}\nspec:\n  controllerName: ${CONTROLLER_NAME}\n`,
    );
  }
  return dir;
}

// The base manifests are read once; each test adds its own files on top of a copy.
let base: ResourceSnapshot | undefined;
async function baseSnapshot(): Promise<ResourceSnapshot> {
  base ??= (await loadManifestDir(writeDir(['base/manifests.yaml'], true))).snapshot;
  return structuredClone(base);
}

/** base + the given test manifests, loaded through the file provider and rendered. */
async function renderConformance(tests: string[]): Promise<RenderedConfig> {
  const snapshot = await baseSnapshot();
  const extra = (await loadManifestDir(writeDir(tests, false))).snapshot;
  for (const k of Object.keys(extra) as (keyof ResourceSnapshot)[]) (snapshot[k] as unknown[]).push(...(extra[k] as unknown[]));
  assignAddresses(snapshot);
  return render(snapshot, { defaultAddress: '127.0.0.1', now: NOW });
}

function assignAddresses(snapshot: ResourceSnapshot): void {
  let n = 0;
  for (const gw of snapshot.gateways) {
    n++;
    if (!gw.spec.addresses?.some((a) => a.value)) gw.spec.addresses = [{ type: 'IPAddress', value: `127.0.1.${n}` }];
  }
}

// ------------------------------------------------------------------ status lookups

function statusOf<K extends ObjectStatus['kind']>(out: RenderedConfig, kind: K, key: string): StatusOfKind<K> | undefined {
  return out.statuses.filter(ofKind(kind)).find((s) => `${s.metadata.namespace ?? ''}/${s.metadata.name}`.replace(/^\//, '') === key);
}

function parentsOf(out: RenderedConfig, route: string): RouteParentStatus[] {
  const s = statusOf(out, 'HTTPRoute', route);
  assert.ok(s, `HTTPRoute ${route} has a status`);
  return s.status.parents;
}

function parentOf(out: RenderedConfig, route: string, gateway: string): RouteParentStatus {
  const p = parentsOf(out, route).find((x) => `${x.parentRef.namespace}/${x.parentRef.name}` === gateway);
  assert.ok(p, `HTTPRoute ${route} has a parent status for ${gateway}`);
  return p;
}

function gatewayOf(out: RenderedConfig, gateway: string): GatewayStatus {
  const s = statusOf(out, 'Gateway', gateway);
  assert.ok(s, `Gateway ${gateway} has a status`);
  return s.status;
}

function expectCondition(conditions: Condition[], want: { type: string; status: string; reason?: string }, where: string): void {
  const c = conditions.find((x) => x.type === want.type);
  assert.ok(c, `${where}: has condition ${want.type}`);
  assert.equal(c.status, want.status, `${where}: ${want.type} status (${c.reason}: ${c.message})`);
  if (want.reason) assert.equal(c.reason, want.reason, `${where}: ${want.type} reason`);
}

// ------------------------------------------------------------------ HTTPRouteMatching by hand

describe('render: base manifests + tests/httproute-matching.yaml', { skip }, () => {
  let out: RenderedConfig;
  test('renders', async () => {
    out = await renderConformance(['tests/httproute-matching.yaml']);
    assert.ok(out.vcl.length > 0);
  });

  test('route matching is Accepted and ResolvedRefs on same-namespace', () => {
    const p = parentOf(out, `${INFRA}/matching`, `${INFRA}/same-namespace`);
    expectCondition(p.conditions, { type: 'Accepted', status: 'True', reason: 'Accepted' }, 'matching');
    expectCondition(p.conditions, { type: 'ResolvedRefs', status: 'True', reason: 'ResolvedRefs' }, 'matching');
    assert.equal(p.controllerName, CONTROLLER_NAME);
    assert.equal(parentsOf(out, `${INFRA}/matching`).length, 1);
  });

  test('the base HTTP Gateways are Accepted and Programmed; same-namespace has 1 attached route', () => {
    for (const name of ['same-namespace', 'all-namespaces', 'backend-namespaces']) {
      const gw = gatewayOf(out, `${INFRA}/${name}`);
      expectCondition(gw.conditions, { type: 'Accepted', status: 'True' }, name);
      expectCondition(gw.conditions, { type: 'Programmed', status: 'True' }, name);
      for (const l of gw.listeners) {
        for (const type of ['Accepted', 'Programmed', 'ResolvedRefs']) expectCondition(l.conditions, { type, status: 'True' }, `${name}/${l.name}`);
        expectCondition(l.conditions, { type: 'Conflicted', status: 'False' }, `${name}/${l.name}`);
        assert.equal(l.attachedRoutes, name === 'same-namespace' ? 1 : 0, `${name}/${l.name} attachedRoutes`);
      }
    }
  });

  // The conformance harness generates the certificate Secret; this render reads the manifests alone.
  // Upstream's GatewayWithAttachedRoutes: such listeners stay valid (routes attach and are counted) but are not served.
  test('the HTTPS-only base Gateway without its certificate Secret is accepted, its listeners have InvalidCertificateRef and are not programmed', () => {
    const gw = gatewayOf(out, `${INFRA}/same-namespace-with-https-listener`);
    expectCondition(gw.conditions, { type: 'Accepted', status: 'True', reason: 'Accepted' }, 'https gateway');
    for (const l of gw.listeners) {
      expectCondition(l.conditions, { type: 'Accepted', status: 'True', reason: 'Accepted' }, l.name);
      expectCondition(l.conditions, { type: 'ResolvedRefs', status: 'False', reason: 'InvalidCertificateRef' }, l.name);
      expectCondition(l.conditions, { type: 'Programmed', status: 'False' }, l.name);
    }
  });

  test('IR: one vhost for same-namespace, matches in spec precedence order, both backends', () => {
    const socket = out.ir.sockets.find((s) => s.vhosts.some((v) => v.listener === `${INFRA}/same-namespace/http`));
    assert.ok(socket);
    assert.equal(socket.port, 80);
    const v = socket.vhosts.find((x) => x.hostname === '*');
    assert.ok(v);
    assert.deepEqual(
      v.routes.map((r) => r.id),
      [`${INFRA}/matching/1/0`, `${INFRA}/matching/0/1`, `${INFRA}/matching/1/1`, `${INFRA}/matching/0/0`],
    );
    const services = v.routes.map((r) => r.action.backends.map((b) => (b.service === null ? null : out.ir.services[b.service].name)));
    assert.deepEqual(services, [['infra-backend-v2'], ['infra-backend-v1'], ['infra-backend-v2'], ['infra-backend-v1']]);
    assert.deepEqual(
      [...out.endpoints.keys()].sort(),
      [`${INFRA}/infra-backend-v1:8080`, `${INFRA}/infra-backend-v2:8080`],
      'every referenced Service port has an endpoint entry (empty: the manifests carry no EndpointSlices)',
    );
  });

  test('sockets: one per Gateway address and port, named uniquely', () => {
    const names = out.sockets.map((s) => s.name);
    assert.equal(new Set(names).size, names.length);
    for (const s of out.sockets) assert.ok(s.address.startsWith('127.0.1.'), s.address);
  });
});

// The cases.json status checks of every supported test run in the conformance harness
// (test/conformance/), through the real `vgw check`; they are not repeated here.
