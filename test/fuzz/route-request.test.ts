// The reference evaluator the routing fuzz test compares varnishd with: its own rules, by example.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { normalizePath, routeRequest } from '../../src/ir/route-request.ts';
import type { IRRoute, RoutingIR } from '../../src/ir/types.ts';

const route = (id: string, match: Partial<IRRoute['match']>): IRRoute => ({ id, match: { path: { type: 'PathPrefix', value: '/' }, headers: [], queryParams: [], ...match }, action: { backends: [] } });
const ir: RoutingIR = {
  version: 4,
  services: [],
  sockets: [{
    name: 's', address: '127.0.0.1', port: 80,
    vhosts: [
      { hostname: 'a.test', listener: 'l', routes: [route('exact', { path: { type: 'Exact', value: '/admin' } }), route('q', { path: { type: 'PathPrefix', value: '/q' }, queryParams: [{ name: 'id', type: 'Exact', value: '1' }] })] },
      { hostname: '*.a.test', listener: 'l', routes: [route('wild', { path: { type: 'PathPrefix', value: '/foo' } })] },
      { hostname: '*', listener: 'l', routes: [route('any', { headers: [{ name: 'X-A', type: 'RegularExpression', value: '[0-9]+' }] })] },
    ],
  }],
};
const decide = (host: string, target: string, headers: [string, string][] = []) => {
  const d = routeRequest(ir, 's', { host, target, method: 'GET', headers });
  return d.kind === 'route' ? d.id : d.status;
};

describe('reference routing evaluator', () => {
  test('normalises paths: dot segments, unreserved encodings, slashes; refuses hidden separators', () => {
    assert.deepEqual(normalizePath('/x/../admin'), { ok: true, path: '/admin' });
    assert.deepEqual(normalizePath('//a//b/./c/'), { ok: true, path: '/a/b/c/' });
    assert.deepEqual(normalizePath('/%61/%2e%2e/%7e%3a'), { ok: true, path: '/~%3A' });
    assert.deepEqual(normalizePath('/../../a/..'), { ok: true, path: '/' });
    for (const bad of ['/a%2Fb', '/a%5c', '/a%00', '/a\\b', '/%zz', 'a']) assert.equal(normalizePath(bad).ok, false, bad);
  });

  test('exact host, then the longest wildcard, then the catch-all; case and port ignored', () => {
    assert.equal(decide('A.Test:80', '/x/../admin'), 'exact');
    assert.equal(decide('b.a.test', '/foo/bar'), 'wild');
    assert.equal(decide('b.a.test', '/foobar'), 404);
    assert.equal(decide('other.test', '/', [['x-a', '12'], ['X-A', 'no']]), 'any');
    assert.equal(decide('other.test', '/', [['X-A', 'no'], ['x-a', '12']]), 404, 'the first header line counts');
    assert.equal(decide('a.test', '/q?id=2&id=1'), 404, 'the first query parameter counts');
    assert.equal(decide('a.test', '/q?x=1&id=1'), 'q');
    assert.equal(decide('a.test', '/a%2fb'), 400);
  });
});
