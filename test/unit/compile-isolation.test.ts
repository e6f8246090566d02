// Finding the HTTPRoutes whose generated VCL does not compile (src/pipeline/compile-isolation.ts),
// with VCC replaced by a rule over the routes present: the search itself, and the memory of
// culprits per route version. The real varnishd path is test/integration/regex-isolation.test.ts.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { HTTPRoute } from '../../src/gatewayapi/types.ts';
import type { IRRoute, RoutingIR } from '../../src/ir/types.ts';
import { CompileCulprits, isolateCompileFailure } from '../../src/pipeline/compile-isolation.ts';
import type { VccResult } from '../../src/varnish/vcc-check.ts';

function irWith(keys: string[]): RoutingIR {
  const route = (id: string) => ({ id, match: { path: { type: 'PathPrefix', value: '/' }, headers: [], queryParams: [] }, action: { backends: [] } }) as IRRoute;
  return {
    version: 4,
    services: [],
    sockets: [{ name: 's', address: '127.0.0.1', port: 80, vhosts: [{ hostname: '*', listener: 'ns/gw/http', routes: keys.flatMap((k) => [route(`${k}/0/0`), route(`${k}/1/0`)]) }] }],
  } as RoutingIR;
}

/** "VCL": one line per route id; VCC "fails" on the first line of a poisoned route. */
const compile = (ir: RoutingIR) => ['vcl 4.1;', ...ir.sockets.flatMap((s) => s.vhosts.flatMap((v) => v.routes.map((r) => r.id)))].join('\n');
const checkWith = (poisoned: Set<string>, base = true) => {
  let runs = 0;
  const check = async (vcl: string): Promise<VccResult> => {
    runs++;
    if (!base) return { ok: false, message: 'broken everywhere' };
    const lines = vcl.split('\n');
    const at = lines.findIndex((l) => poisoned.has(l.split('/').slice(0, 2).join('/')));
    return at < 0 ? { ok: true } : { ok: false, message: 'bad token', line: at + 1 };
  };
  return { check, runs: () => runs };
};

const keys = Array.from({ length: 40 }, (_, i) => `ns/r${i}`);

describe('isolateCompileFailure', () => {
  test('null when the whole config compiles', async () => {
    const { check } = checkWith(new Set());
    assert.equal(await isolateCompileFailure(irWith(keys), { compile, check }), null);
  });

  test('finds every culprit, with the VCC message and the line it names', async () => {
    const { check, runs } = checkWith(new Set(['ns/r3', 'ns/r31']));
    const result = await isolateCompileFailure(irWith(keys), { compile, check });
    assert.deepEqual(result?.culprits.map((c) => c.route), ['ns/r3', 'ns/r31']);
    assert.match(result?.culprits[0].message ?? '', /^bad token \(VCL line \d+: ns\/r3\/0\/0\)$/);
    assert.equal(result?.checks, runs());
    assert.ok(runs() <= 2 + 2 * (Math.ceil(Math.log2(keys.length)) + 1) + 1, `bisection, not one check per route (${runs()})`);
  });

  test('stops at maxCulprits', async () => {
    const { check } = checkWith(new Set(['ns/r1', 'ns/r2', 'ns/r3']));
    const result = await isolateCompileFailure(irWith(keys), { compile, check, maxCulprits: 2 });
    assert.deepEqual(result?.culprits.map((c) => c.route), ['ns/r1', 'ns/r2']);
  });

  test('a failure without any route is not blamed on a route', async () => {
    const { check } = checkWith(new Set(), false);
    const result = await isolateCompileFailure(irWith(keys), { compile, check });
    assert.deepEqual(result?.culprits, []);
    assert.equal(result?.unattributed, 'broken everywhere');
  });
});

describe('CompileCulprits', () => {
  const route = (name: string, generation: number, prefix: string) =>
    ({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name, namespace: 'ns', generation }, spec: { rules: [{ matches: [{ path: { type: 'PathPrefix', value: prefix } }] }] } }) as HTTPRoute;

  test('a culprit is rejected until its generation or spec changes, and forgotten once gone', () => {
    const culprits = new CompileCulprits();
    culprits.add(route('a', 1, '/'), 'bad token');
    assert.equal(culprits.rejected(route('a', 1, '/')), 'the generated configuration did not compile: bad token');
    assert.equal(culprits.rejected(route('a', 2, '/')), null, 'new generation');
    assert.equal(culprits.rejected(route('a', 1, '/x')), null, 'same generation, edited spec (a file)');
    assert.equal(culprits.rejected(route('b', 1, '/')), null);
    culprits.prune([route('a', 1, '/')]);
    assert.equal(culprits.size, 1);
    culprits.prune([route('a', 1, '/x')]);
    assert.equal(culprits.size, 0);
  });
});
