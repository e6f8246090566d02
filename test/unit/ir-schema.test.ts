// The routing IR schema: every IR the translator produces is accepted, and anything a hostile
// ConfigMap writer could put in its place is refused with the JSON path of the bad field.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import { CONTROLLER_NAME } from '../../src/gatewayapi/features.ts';
import { parseRoutingIR } from '../../src/ir/schema.ts';
import { IR_VERSION, type RoutingIR } from '../../src/ir/types.ts';
import { render } from '../../src/pipeline/render.ts';
import { loadManifestDir } from '../../src/providers/file/load.ts';

const MANIFESTS = new URL('../../../shared/conformance/manifests/', import.meta.url);
const available = existsSync(fileURLToPath(new URL('base/manifests.yaml', MANIFESTS)));

/** An IR as the translator writes it, with every optional part present once. */
function fullIR(): RoutingIR {
  return {
    version: IR_VERSION,
    routeGenerations: { 'app/web': 3 },
    services: [
      { namespace: 'app', name: 'web', port: 80, portName: 'http', targetPort: 8080 },
      { namespace: 'app', name: 'mirror', port: 8080, portName: '', targetPort: 'metrics' },
    ],
    sockets: [
      {
        name: 'a127_0_0_1_80',
        address: '127.0.0.1',
        port: 80,
        vhosts: [
          {
            hostname: '*.example.com',
            listener: 'infra/gw/http',
            routes: [
              {
                id: 'app/web/0/0',
                match: {
                  path: { type: 'PathPrefix', value: '/api' },
                  method: 'GET',
                  headers: [{ name: 'x-env', type: 'RegularExpression', value: 'prod|stage' }],
                  queryParams: [{ name: 'v', type: 'Exact', value: '2' }],
                },
                action: {
                  filters: ['RequestHeaderModifier', 'CORS', 'RequestMirror'],
                  requestHeaders: { set: [{ name: 'x-a', value: 'b' }], add: [], remove: ['x-gone'] },
                  rewrite: { hostname: 'internal.example.com', path: { type: 'ReplacePrefixMatch', prefix: '/api', value: '/v2' } },
                  cors: { allowOrigins: ['https://*.example.com'], allowMethods: ['GET'], allowHeaders: ['*'], exposeHeaders: [], allowCredentials: true, maxAge: 600 },
                  mirrors: [{ service: 1, percent: 33.333333333333336 }],
                  timeouts: { request: 10_000, backendRequest: 0 },
                  retry: { attempts: 3, codes: [502, 503], backoffMs: 100 },
                  backends: [
                    { weight: 3, service: 0, responseHeaders: { set: [], add: [{ name: 'x-b', value: '1' }], remove: [] } },
                    { weight: 1, service: null },
                  ],
                },
              },
              {
                id: 'app/web/1/0',
                match: { path: { type: 'Exact', value: '/old' }, headers: [], queryParams: [] },
                action: { redirect: { statusCode: 301, scheme: 'https', hostname: 'new.example.com', port: 8443, listenerPort: 80, path: { type: 'ReplaceFullPath', value: '/new' } }, backends: [] },
              },
            ],
          },
        ],
      },
    ],
  };
}

type Mutable = Record<string, any>;
/** fullIR() with one change, made on a plain object (bypassing the types, as JSON would). */
function hostile(change: (ir: Mutable) => void): unknown {
  const ir = structuredClone(fullIR()) as unknown as Mutable;
  change(ir);
  return ir;
}
const route0 = (ir: Mutable) => ir.sockets[0].vhosts[0].routes[0];
const route1 = (ir: Mutable) => ir.sockets[0].vhosts[0].routes[1];

function rejected(value: unknown, path: string): string {
  const r = parseRoutingIR(value);
  assert.equal(r.ok, false, `expected a rejection at ${path}`);
  const reason = r.ok ? '' : r.reason;
  assert.ok(reason.startsWith(`${path}: `) || reason.includes(`; ${path}: `), `reason names ${path}: ${reason}`);
  return reason;
}

const INJECT = '"; } sub vcl_recv { return (synth(200)); } sub x {';

describe('routing IR schema', () => {
  test('an IR with every field the translator writes is accepted unchanged', () => {
    const r = parseRoutingIR(fullIR());
    assert.equal(r.ok, true, r.ok ? '' : r.reason);
    assert.deepEqual(r.ok && r.ir, fullIR());
  });

  test('numbers: strings, fractions, NaN, Infinity and out-of-range values are refused, naming the field', () => {
    const at = 'sockets[0].vhosts[0].routes';
    const cases: [string, (ir: Mutable) => void][] = [
      [`${at}[1].action.redirect.statusCode`, (ir) => (route1(ir).action.redirect.statusCode = INJECT)],
      [`${at}[1].action.redirect.statusCode`, (ir) => (route1(ir).action.redirect.statusCode = 200)],
      [`${at}[1].action.redirect.statusCode`, (ir) => (route1(ir).action.redirect.statusCode = 300)],
      [`${at}[1].action.redirect.statusCode`, (ir) => (route1(ir).action.redirect.statusCode = 301.5)],
      [`${at}[1].action.redirect.port`, (ir) => (route1(ir).action.redirect.port = 70000)],
      [`${at}[1].action.redirect.listenerPort`, (ir) => (route1(ir).action.redirect.listenerPort = '80"')],
      [`${at}[0].action.cors.maxAge`, (ir) => (route0(ir).action.cors.maxAge = INJECT)],
      [`${at}[0].action.cors.maxAge`, (ir) => (route0(ir).action.cors.maxAge = Number.NaN)],
      [`${at}[0].action.timeouts.request`, (ir) => (route0(ir).action.timeouts.request = Number.POSITIVE_INFINITY)],
      [`${at}[0].action.timeouts.backendRequest`, (ir) => (route0(ir).action.timeouts.backendRequest = -1)],
      [`${at}[0].action.timeouts.request`, (ir) => (route0(ir).action.timeouts.request = 86_400_001)],
      [`${at}[0].action.retry.attempts`, (ir) => (route0(ir).action.retry.attempts = 17)],
      [`${at}[0].action.retry.codes[1]`, (ir) => (route0(ir).action.retry.codes[1] = 200)],
      [`${at}[0].action.retry.backoffMs`, (ir) => (route0(ir).action.retry.backoffMs = 0.5)],
      [`${at}[0].action.backends[0].weight`, (ir) => (route0(ir).action.backends[0].weight = 1_000_001)],
      [`${at}[0].action.backends[0].service`, (ir) => (route0(ir).action.backends[0].service = INJECT)],
      [`${at}[0].action.backends[0].service`, (ir) => (route0(ir).action.backends[0].service = 2)],
      [`${at}[0].action.mirrors[0].service`, (ir) => (route0(ir).action.mirrors[0].service = 9)],
      [`${at}[0].action.mirrors[0].percent`, (ir) => (route0(ir).action.mirrors[0].percent = 101)],
      ['sockets[0].port', (ir) => (ir.sockets[0].port = 0)],
      ['services[0].port', (ir) => (ir.services[0].port = '80; }')],
      ['services[0].targetPort', (ir) => (ir.services[0].targetPort = 65536)],
      ['routeGenerations.app/web', (ir) => (ir.routeGenerations['app/web'] = -1)],
    ];
    for (const [path, change] of cases) rejected(hostile(change), path);
  });

  test('names: socket names, hostnames, header names, ids and paths are checked as the translator checks them', () => {
    const at = 'sockets[0].vhosts[0]';
    const cases: [string, (ir: Mutable) => void][] = [
      ['sockets[0].name', (ir) => (ir.sockets[0].name = `a1${INJECT}`)],
      ['sockets[0].address', (ir) => (ir.sockets[0].address = 'localhost')],
      [`${at}.hostname`, (ir) => (ir.sockets[0].vhosts[0].hostname = 'Example.COM')],
      [`${at}.listener`, (ir) => (ir.sockets[0].vhosts[0].listener = INJECT)],
      [`${at}.routes[0].id`, (ir) => (route0(ir).id = 'x'.repeat(2000))],
      [`${at}.routes[0].match.path.value`, (ir) => (route0(ir).match.path.value = 'no-slash')],
      [`${at}.routes[0].match.method`, (ir) => (route0(ir).match.method = 'GET"')],
      [`${at}.routes[0].match.headers[0].name`, (ir) => (route0(ir).match.headers[0].name = 'x.y')],
      [`${at}.routes[0].match.headers[0].value`, (ir) => (route0(ir).match.headers[0].value = '(?=x)')],
      [`${at}.routes[0].match.queryParams[0].value`, (ir) => (route0(ir).match.queryParams[0].value = 'a\nb')],
      [`${at}.routes[0].action.requestHeaders.set[0].name`, (ir) => (route0(ir).action.requestHeaders.set[0].name = 'x-vgw-route')],
      [`${at}.routes[0].action.requestHeaders.remove[0]`, (ir) => (route0(ir).action.requestHeaders.remove[0] = 'a b')],
      [`${at}.routes[0].action.rewrite.path.value`, (ir) => (route0(ir).action.rewrite.path.value = '/a?b')],
      [`${at}.routes[0].action.cors.allowOrigins[0]`, (ir) => (route0(ir).action.cors.allowOrigins[0] = 'javascript:alert(1)"')],
      [`${at}.routes[0].action.filters[0]`, (ir) => (route0(ir).action.filters[0] = INJECT)],
      [`${at}.routes[1].action.redirect.scheme`, (ir) => (route1(ir).action.redirect.scheme = 'gopher')],
      [`${at}.routes[1].action.redirect.hostname`, (ir) => (route1(ir).action.redirect.hostname = '*.wild.com')],
      ['services[0].name', (ir) => (ir.services[0].name = 'Web')],
      ['services[1].portName', (ir) => (ir.services[1].portName = INJECT)],
    ];
    for (const [path, change] of cases) rejected(hostile(change), path);
  });

  test('unknown fields, a wrong version and unbounded lists are refused', () => {
    rejected(hostile((ir) => (route0(ir).action.extra = 1)), 'sockets[0].vhosts[0].routes[0].action');
    rejected(hostile((ir) => (ir.version = 1)), 'version');
    const many = hostile((ir) => (route0(ir).match.headers = Array.from({ length: 65 }, () => ({ name: 'x', type: 'Exact', value: '' }))));
    rejected(many, 'sockets[0].vhosts[0].routes[0].match.headers');
    assert.equal(parseRoutingIR(null).ok, false);
    assert.equal(parseRoutingIR('{"version":2}').ok, false);
  });

  test('a reason lists at most three problems and counts the rest', () => {
    const r = parseRoutingIR(hostile((ir) => ir.services.forEach((s: Mutable) => ((s.port = 'x'), (s.name = 'X'), (s.namespace = 'Y')))));
    assert.equal(r.ok, false);
    assert.match(r.ok ? '' : r.reason, /\(and 3 more\)$/);
  });

  test('every IR the translator produces for the conformance manifests is accepted', { skip: available ? false : 'conformance manifests not found' }, async () => {
    const work = mkdtempSync(join(tmpdir(), 'vgw-ir-schema-'));
    after(() => rmSync(work, { recursive: true, force: true }));
    const tests = readdirSync(fileURLToPath(new URL('tests/', MANIFESTS))).filter((f) => f.endsWith('.yaml'));
    const gatewayClass = `apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata:\n  name: vgw\nspec:\n  controllerName: ${CONTROLLER_NAME}\n`;
    let routes = 0;
    for (const file of tests) {
      const dir = join(work, file);
      mkdirSync(dir);
      for (const [name, rel] of [['00-base.yaml', 'base/manifests.yaml'], ['01-test.yaml', `tests/${file}`]]) {
        writeFileSync(join(dir, name), readFileSync(new URL(rel, MANIFESTS), 'utf8').replaceAll('{GATEWAY_CLASS_NAME}', 'vgw'));
      }
      writeFileSync(join(dir, '99-class.yaml'), gatewayClass);
      const { snapshot } = await loadManifestDir(dir);
      let n = 0;
      for (const gw of snapshot.gateways) if (!gw.spec.addresses?.some((a) => a.value)) gw.spec.addresses = [{ type: 'IPAddress', value: `127.0.1.${++n}` }];
      const { ir } = render(snapshot, { defaultAddress: '127.0.0.1', now: '2030-01-01T00:00:00Z' });
      // Through JSON, as the agent reads it.
      const r = parseRoutingIR(JSON.parse(JSON.stringify(ir)));
      assert.equal(r.ok, true, `${file}: ${r.ok ? '' : r.reason}`);
      routes += ir.sockets.reduce((s, k) => s + k.vhosts.reduce((t, v) => t + v.routes.length, 0), 0);
    }
    assert.ok(tests.length > 50 && routes > 100, `${tests.length} manifests, ${routes} routes`);
  });
});
