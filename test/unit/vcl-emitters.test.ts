// Typed emitters and the compiler's use of them: no number or generated name reaches VCL
// unless it is exactly of its type, whatever the IR object handed to compileVcl() holds.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { IR_VERSION, type EndpointMap, type RoutingIR } from '../../src/ir/types.ts';
import { compileVcl } from '../../src/vcl/compile.ts';
import { VclValueError, vclDurationMs, vclIdent, vclInt, vclName, vclPort, vclReal, vclStatus } from '../../src/vcl/escape.ts';
import { summarizeError } from '../../src/chaperone/error-summary.ts';

const HOSTILE: unknown[] = ['"; } sub vcl_recv { return (synth(200)); } sub INJECTED {', '80', '', Number.NaN, 1e309, -1e309, -1, 1.5, 2 ** 60, null, undefined, {}, [80], true];

describe('typed emitters', () => {
  test('vclInt, vclPort, vclStatus, vclDurationMs accept exactly integers in range', () => {
    assert.equal(vclInt(0, 0, 10), '0');
    assert.equal(vclInt(10, 0, 10), '10');
    assert.equal(vclPort(65535), '65535');
    assert.equal(vclStatus(308, 300, 399), '308');
    assert.equal(vclDurationMs(1500), '1500ms');
    for (const v of [...HOSTILE, 11, -1]) assert.throws(() => vclInt(v, 0, 10), VclValueError, String(v));
    for (const v of [...HOSTILE, 0, 65536]) assert.throws(() => vclPort(v), VclValueError, String(v));
    for (const v of [...HOSTILE, 200, 400]) assert.throws(() => vclStatus(v, 300, 399), VclValueError, String(v));
    for (const v of [...HOSTILE, 7 * 86_400_000 + 1]) assert.throws(() => vclDurationMs(v), VclValueError, String(v));
  });

  test('vclReal writes digits and one dot, never an exponent', () => {
    assert.equal(vclReal(50, 0, 100), '50');
    assert.equal(vclReal(100 / 3, 0, 100), '33.333');
    assert.equal(vclReal(1e-7, 0, 100), '0');
    assert.equal(vclReal(0.5, 0, 100), '0.5');
    for (const v of [...HOSTILE.filter((h) => h !== 1.5 && h !== -1), 100.5, -0.1]) assert.throws(() => vclReal(v, 0, 100), VclValueError, String(v));
  });

  test('identifiers: generated prefixes with an index, names of the VCL identifier shape', () => {
    assert.equal(vclIdent('vgw_s', 3), 'vgw_s3');
    assert.equal(vclName('vgw_e4_10_0_0_1_80'), 'vgw_e4_10_0_0_1_80');
    for (const v of HOSTILE.filter((h) => !(typeof h === 'number' && Number.isSafeInteger(h) && h >= 0))) assert.throws(() => vclIdent('vgw_s', v), VclValueError, String(v));
    assert.throws(() => vclIdent('x; }', 1), VclValueError);
    for (const v of ['a b', '1abc', 'a;', 'a"', '', 'x'.repeat(200), 5]) assert.throws(() => vclName(v), VclValueError, String(v));
  });
});

/** A small IR using every numeric field the compiler emits, and its endpoints. */
function base(): { ir: RoutingIR; endpoints: EndpointMap } {
  const ir: RoutingIR = {
    version: IR_VERSION,
    services: [
      { namespace: 'app', name: 'web', port: 80, portName: 'http' },
      { namespace: 'app', name: 'copy', port: 80, portName: 'http' },
    ],
    sockets: [
      {
        name: 'a127_0_0_1_80',
        address: '127.0.0.1',
        port: 80,
        vhosts: [
          {
            hostname: 'web.example.com',
            listener: 'infra/gw/http',
            routes: [
              {
                id: 'app/web/0/0',
                match: { path: { type: 'PathPrefix', value: '/' }, headers: [], queryParams: [] },
                action: {
                  responseHeaders: { set: [{ name: 'x-a', value: 'b' }], add: [], remove: [] },
                  cors: { allowOrigins: ['*'], allowMethods: ['GET'], allowHeaders: [], exposeHeaders: [], allowCredentials: false, maxAge: 60 },
                  mirrors: [{ service: 1, percent: 50 }],
                  timeouts: { request: 5000, backendRequest: 1000 },
                  retry: { attempts: 2, codes: [502, 503], backoffMs: 100 },
                  backends: [
                    { weight: 3, service: 0 },
                    { weight: 1, service: 1 },
                  ],
                },
              },
              {
                id: 'app/web/1/0',
                match: { path: { type: 'Exact', value: '/old' }, headers: [], queryParams: [] },
                action: { redirect: { statusCode: 301, port: 8080, listenerPort: 80 }, backends: [] },
              },
            ],
          },
        ],
      },
    ],
  };
  const endpoints: EndpointMap = new Map([
    ['app/web:80', [{ address: '10.0.0.1', port: 8080 }]],
    ['app/copy:80', [{ address: '10.0.0.2', port: 8080 }]],
  ]);
  return { ir, endpoints };
}

type Site = { field: string; set: (ir: any, endpoints: EndpointMap, v: unknown) => void };
const route = (ir: any, i: number) => ir.sockets[0].vhosts[0].routes[i];
const SITES: Site[] = [
  { field: 'redirect.statusCode', set: (ir, _e, v) => (route(ir, 1).action.redirect.statusCode = v) },
  { field: 'redirect.port', set: (ir, _e, v) => (route(ir, 1).action.redirect.port = v) },
  { field: 'redirect.listenerPort', set: (ir, _e, v) => ((route(ir, 1).action.redirect.port = undefined), (route(ir, 1).action.redirect.listenerPort = v)) },
  { field: 'socket.port', set: (ir, _e, v) => ((route(ir, 1).action.redirect.port = undefined), (route(ir, 1).action.redirect.listenerPort = 0), (ir.sockets[0].port = v)) },
  { field: 'cors.maxAge', set: (ir, _e, v) => (route(ir, 0).action.cors.maxAge = v) },
  { field: 'timeouts.request', set: (ir, _e, v) => (route(ir, 0).action.timeouts.request = v) },
  { field: 'timeouts.backendRequest', set: (ir, _e, v) => (route(ir, 0).action.timeouts.backendRequest = v) },
  { field: 'retry.attempts', set: (ir, _e, v) => (route(ir, 0).action.retry.attempts = v) },
  { field: 'retry.backoffMs', set: (ir, _e, v) => (route(ir, 0).action.retry.backoffMs = v) },
  { field: 'retry.codes[0]', set: (ir, _e, v) => (route(ir, 0).action.retry.codes[0] = v) },
  { field: 'backends[0].weight', set: (ir, _e, v) => (route(ir, 0).action.backends[0].weight = v) },
  { field: 'backends[1].weight', set: (ir, _e, v) => (route(ir, 0).action.backends[1].weight = v) },
  { field: 'backends[0].service', set: (ir, _e, v) => (route(ir, 0).action.backends[0].service = v) },
  { field: 'mirrors[0].service', set: (ir, _e, v) => (route(ir, 0).action.mirrors[0].service = v) },
  { field: 'mirrors[0].percent', set: (ir, _e, v) => (route(ir, 0).action.mirrors[0].percent = v) },
  { field: 'endpoint port', set: (_ir, e, v) => ((e.get('app/web:80') as any[])[0].port = v) },
  { field: 'endpoint address', set: (_ir, e, v) => ((e.get('app/web:80') as any[])[0].address = v) },
];

/** VCL with its string literals ("..." and {"..."}) emptied: what is left is code. */
function withoutStrings(vcl: string): string {
  return vcl.replace(/\{"[\s\S]*?"\}/g, '""').replace(/"[^"\n]*"/g, '""');
}

/** The shape of a VCL: its sub and backend declarations and its block structure. */
function skeleton(vcl: string): string {
  return vcl
    .split('\n')
    .filter((l) => /^\s*(sub |backend |\}|if |\} elsif|\} else)/.test(l))
    .map((l) => withoutStrings(l).replace(/vgw_e[A-Za-z0-9_]*/g, 'vgw_e').replace(/[0-9][0-9.]*/g, 'N'))
    .join('\n');
}

describe('compileVcl with hostile IR values', () => {
  test('every numeric field: VclValueError, or VCL of the same structure without the injected text', () => {
    const { ir, endpoints } = base();
    const expected = skeleton(compileVcl(ir, endpoints).vcl);
    let thrown = 0;
    for (const site of SITES) {
      for (const v of HOSTILE) {
        const b = base();
        site.set(b.ir, b.endpoints, v);
        let vcl: string;
        try {
          vcl = compileVcl(b.ir as unknown as RoutingIR, b.endpoints).vcl;
        } catch (err) {
          assert.ok(err instanceof VclValueError, `${site.field} = ${String(v)}: ${(err as Error).stack}`);
          thrown++;
          continue;
        }
        assert.ok(!withoutStrings(vcl).includes('INJECTED'), `${site.field} = ${String(v)}: injected text outside a string literal`);
        assert.equal((vcl.match(/^sub /gm) ?? []).length, (compileVcl(ir, endpoints).vcl.match(/^sub /gm) ?? []).length, `${site.field} = ${String(v)}: subs`);
        // Some values are legitimately absent (undefined port: the listener's is used); the rest
        // of the structure must not change.
        if (v !== undefined && v !== null) assert.equal(skeleton(vcl), expected, `${site.field} = ${String(v)}: structure`);
      }
    }
    assert.ok(thrown > SITES.length * 5, `${thrown} rejections`);
  });
});

describe('structural guard: compile.ts interpolates only emitter output into VCL lines', () => {
  // Functions that return checked VCL (the emitters) or VCL fragments built only from them.
  const CALLS = new Set([
    'vclString', 'vclRegex', 'vclInt', 'vclIdent', 'vclName', 'vclPort', 'vclReal', 'vclStatus', 'vclDurationMs',
    'headerRef', 'comment', 'queryHeader', 'originCondition', 'redirectLocation', 'replacedPath', 'matchCondition', 'valueCondition', 'value',
  ]);
  // Local variables that hold VCL fragments built from emitters (checked where they are built).
  const FRAGMENTS = new Set(['bound', 'expr', 'first', 'later', 'key', 'log', 'preflight', 're', 'ref', 'share', 'cond', 'head', 'host', 'path', 'query', 'rest']);

  /** `${...}` expressions at the top level of templates passed to out.line/open/reopen or parts.push. */
  function interpolations(source: string): string[] {
    const found: string[] = [];
    for (const m of source.matchAll(/(?:out\.(?:line|open|reopen)|parts\.push)\(`/g)) {
      let j = (m.index ?? 0) + m[0].length;
      while (j < source.length && source[j] !== '`') {
        if (source[j] === '\\') j += 2;
        else if (source.startsWith('${', j)) {
          let depth = 1;
          let k = j + 2;
          while (depth > 0 && k < source.length) {
            if (source[k] === '{') depth++;
            else if (source[k] === '}') depth--;
            k++;
          }
          found.push(source.slice(j + 2, k - 1).trim());
          j = k;
        } else j++;
      }
    }
    return found;
  }

  test('each interpolation is an emitter call, an upper-case constant or a known fragment variable', () => {
    const source = readFileSync(new URL('../../src/vcl/compile.ts', import.meta.url), 'utf8');
    const found = interpolations(source);
    assert.ok(found.length > 50, `${found.length} interpolations found: the scanner still matches the compiler's style`);
    const bad = found.filter((e) => {
      if (/^[A-Z][A-Z0-9_]*$/.test(e)) return false;
      if (/^[a-z][A-Za-z0-9]*$/.test(e)) return !FRAGMENTS.has(e);
      const call = /^([A-Za-z][A-Za-z0-9]*)\(/.exec(e);
      return !(call && CALLS.has(call[1]) && e.endsWith(')'));
    });
    assert.deepEqual(bad, [], 'route these through an emitter of src/vcl/escape.ts');
  });

  test('the guard catches a raw IR number', () => {
    const found = interpolations('out.line(`return (synth(${a.redirect.statusCode}));`); out.line(`set x = "${total}";`);');
    assert.deepEqual(found, ['a.redirect.statusCode', 'total']);
  });
});

describe('error summaries', () => {
  test('a VCC error keeps its message and position, never the VCL around it', () => {
    const vcc = [
      'VCL compile failed, last good config keeps serving: Message from VCC-compiler:',
      "Expected ';' got 'sub'",
      '(program line 4), at',
      "('<vcl.inline>' Line 45 Pos 10)",
      '        set req.http.x-secret = "hunter2" sub vcl_recv {',
      '---------#####---',
      'Running VCC-compiler failed, exit 1',
    ].join('\n');
    const s = summarizeError(vcc);
    assert.equal(s, "VCL compile failed, last good config keeps serving: Expected ';' got 'sub' (VCL line 45 pos 10)");
    assert.ok(!s.includes('hunter2'));
    assert.equal(summarizeError(`one line\nsecond ${'x'.repeat(10)}`), 'one line');
    assert.ok(summarizeError('y'.repeat(5000)).length <= 300);
  });
});
