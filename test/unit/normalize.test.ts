// Path normalisation in TypeScript (used for route match values) and the VCL it mirrors.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compileVcl } from '../../src/vcl/compile.ts';
import { MAX_DOT_DOT_ROUNDS, normalizePath } from '../../src/vcl/normalize.ts';
import { IR_VERSION, type RoutingIR } from '../../src/ir/types.ts';

const ok = (path: string) => {
  const n = normalizePath(path);
  assert.ok(n.ok, `${path}: ${n.ok ? '' : n.reason}`);
  return n.path;
};

test('dot segments are removed as RFC 3986 5.2.4 says, never above the root', () => {
  const cases: [string, string][] = [
    ['/x/../admin', '/admin'],
    ['/./admin', '/admin'],
    ['/a/b/../../c', '/c'],
    ['/a/./../b', '/b'],
    ['/a/..', '/'],
    ['/a/b/..', '/a/'],
    ['/a/.', '/a/'],
    ['/..', '/'],
    ['/../../a', '/a'],
    ['/a/../b/../c', '/c'],
    ['/a/..b/.c', '/a/..b/.c'],
  ];
  for (const [input, expected] of cases) assert.equal(ok(input), expected, input);
});

test('encoded unreserved characters are decoded, other encodings upper-cased, slashes merged', () => {
  assert.equal(ok('/%61dmin'), '/admin');
  assert.equal(ok('/%2e%2E/admin'), '/admin');
  assert.equal(ok('/%7e%5F%2d'), '/~_-');
  assert.equal(ok('/caf%c3%a9'), '/caf%C3%A9');
  assert.equal(ok('/a%25%32%66'), '/a%252f');
  assert.equal(ok('//admin///x//'), '/admin/x/');
});

test('what cannot be normalised safely is refused', () => {
  for (const bad of ['/a%2fb', '/a%2F', '/a%5c', '/a%00', '/a\\b', '/a%', '/a%4', '/a%zz', 'admin', '*', '/a#b']) {
    assert.equal(normalizePath(bad).ok, false, bad);
  }
  const deep = (n: number) => `/${'a/'.repeat(n)}${'../'.repeat(n)}x`;
  assert.equal(ok(deep(MAX_DOT_DOT_ROUNDS)), '/x');
  assert.equal(normalizePath(deep(MAX_DOT_DOT_ROUNDS + 1)).ok, false);
});

const ir = (pathNormalization?: 'On' | 'Off'): RoutingIR => ({
  version: IR_VERSION,
  ...(pathNormalization ? { pathNormalization } : {}),
  services: [],
  sockets: [
    {
      name: 's',
      address: '127.0.0.1',
      port: 8080,
      vhosts: [{ hostname: 'a.example', listener: 'ns/gw/l', routes: [{ id: 'ns/r/0/0', match: { path: { type: 'PathPrefix', value: '/a//b/./c' }, headers: [], queryParams: [] }, action: { backends: [] } }] }],
    },
  ],
});

test('the compiler normalises route values, and emits no path rewriting when off', () => {
  const on = compileVcl(ir(), new Map()).vcl;
  assert.match(on, /x-vgw-path ~ "\^\\\/a\\\/b\\\/c\(\?:\/\|\$\)"/);
  assert.match(on, /return \(synth\(400\)\)/);
  assert.match(on, /regsuball\(req\.http\.x-vgw-path, "\/\/\+", "\/"\)/);
  const off = compileVcl(ir('Off'), new Map()).vcl;
  assert.doesNotMatch(off, /regsuball\(req\.http\.x-vgw-path/);
  assert.match(off, /\/a\\\/\\\/b\\\/\\\.\\\/c/);
  // Host validation, absolute-form and the x-vgw-* strip are not optional.
  for (const vcl of [on, off]) {
    assert.match(vcl, /header\.regsub\(req, "\^\(\?i\)x-vgw-\[\^:\]\*:", "x-vgw-drop:"\);/);
    assert.match(vcl, /https\?:\/\//);
  }
});
