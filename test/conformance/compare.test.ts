import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compareRoundTrip, type CapturedRequest, type CapturedResponse, type RoundTrip } from './compare.ts';
import type { TrafficCase } from './data.ts';
import { resolveLocation, resolvePath } from './location.ts';
import { calculateHost, wireHeaders } from './client.ts';

const URL_ = { scheme: 'http', path: '/' };

function kase(over: Partial<TrafficCase> = {}): TrafficCase {
  return {
    name: 't',
    request: { host: '', method: 'GET', path: '/' },
    response: { statusCodes: [200] },
    backend: 'infra-backend-v1',
    namespace: 'gateway-conformance-infra',
    ...over,
  };
}

function echoed(over: Partial<CapturedRequest> = {}): CapturedRequest {
  return { path: '/', host: '127.0.1.1', method: 'GET', proto: 'HTTP/1.1', headers: {}, namespace: 'gateway-conformance-infra', pod: 'infra-backend-v1-abcdefghij-klmno', ...over };
}

function rt(status: number, req: Partial<CapturedRequest> = {}, res: Partial<CapturedResponse> = {}): RoundTrip {
  return { request: echoed(req), response: { status, proto: 'HTTP/1.1', headers: {}, body: '', ...res } };
}

test('a 200 from the right pod passes', () => {
  assert.equal(compareRoundTrip(kase(), URL_, rt(200)), undefined);
});

test('a 200 from the wrong backend fails', () => {
  assert.match(compareRoundTrip(kase(), URL_, rt(200, { pod: 'infra-backend-v2-abcdefghij-klmno' })) ?? '', /expected backend infra-backend-v1/);
});

test('an empty backend accepts any pod, but the namespace is exact', () => {
  assert.equal(compareRoundTrip(kase({ backend: '' }), URL_, rt(200, { pod: 'x' })), undefined);
  assert.match(compareRoundTrip(kase(), URL_, rt(200, { namespace: '' })) ?? '', /expected namespace/);
  // A 200 that is not echo JSON captures nothing but the method, so the path check fails it.
  const notEcho = rt(200, { namespace: '', pod: '', path: '', host: '' });
  assert.equal(compareRoundTrip(kase({ namespace: '', backend: '' }), URL_, notEcho), 'expected backend path "/", got ""');
});

test('408 and 504 satisfy each other, other statuses do not', () => {
  const timeout = kase({ response: { statusCodes: [408] } });
  assert.equal(compareRoundTrip(timeout, URL_, rt(504)), undefined);
  assert.equal(compareRoundTrip(kase({ response: { statusCodes: [504] } }), URL_, rt(408)), undefined);
  assert.match(compareRoundTrip(timeout, URL_, rt(500)) ?? '', /expected status 408, got 500/);
});

test('statuses other than 200/204 and redirects check nothing else', () => {
  const c = kase({ response: { statusCodes: [404] } });
  assert.equal(compareRoundTrip(c, URL_, rt(404, { pod: '', namespace: '' })), undefined);
  assert.match(compareRoundTrip(c, URL_, rt(200)) ?? '', /expected status 404, got 200/);
});

test('204 gets the same body checks as 200', () => {
  const c = kase({ response: { statusCodes: [204] } });
  assert.match(compareRoundTrip(c, URL_, rt(204, { pod: 'web-backend-a-b' })) ?? '', /expected backend/);
});

test('the backend path is the request URI including the query', () => {
  const c = kase({ request: { host: '', method: 'GET', path: '/q?a=1' } });
  assert.equal(compareRoundTrip(c, URL_, rt(200, { path: '/q?a=1' })), undefined);
  assert.match(compareRoundTrip(c, URL_, rt(200, { path: '/q' })) ?? '', /expected backend path "\/q\?a=1", got "\/q"/);
});

test('request headers: default expectation is the request, values joined with a bare comma', () => {
  const c = kase({ request: { host: 'example.com', method: 'GET', path: '/', headers: { version: 'one' } } });
  assert.equal(compareRoundTrip(c, URL_, rt(200, { host: 'example.com', headers: { Version: ['one'] } })), undefined);
  assert.match(compareRoundTrip(c, URL_, rt(200, { host: 'other.com', headers: { Version: ['one'] } })) ?? '', /expected backend host/);
  const appended = kase({ expectedRequest: { path: '/', headers: { 'X-Add': 'a,b' }, absentHeaders: ['X-Gone'] } });
  assert.equal(compareRoundTrip(appended, URL_, rt(200, { headers: { 'X-Add': ['a', 'b'] } })), undefined);
  assert.match(compareRoundTrip(appended, URL_, rt(200, { headers: { 'X-Add': ['a, b'] } })) ?? '', /got "a, b"/);
  assert.match(compareRoundTrip(appended, URL_, rt(200, { headers: { 'X-Add': ['a', 'b'], 'X-Gone': ['1'] } })) ?? '', /X-Gone absent/);
});

test('an explicit expected request without a host does not compare the host', () => {
  const c = kase({ request: { host: 'example.com', method: 'GET', path: '/' }, expectedRequest: { path: '/' } });
  assert.equal(compareRoundTrip(c, URL_, rt(200, { host: 'rewritten.example' })), undefined);
});

test('response headers: case-insensitive names, whitespace option, valid values, absent headers', () => {
  const c = kase({ response: { statusCodes: [200], headers: { 'X-Header-Add': 'a,b' }, absentHeaders: ['X-Remove'] } });
  assert.equal(compareRoundTrip(c, URL_, rt(200, {}, { headers: { 'x-header-add': ['a', 'b'] } })), undefined);
  assert.match(compareRoundTrip(c, URL_, rt(200, {}, { headers: { 'x-header-add': ['a,b'], 'x-remove': ['v'] } })) ?? '', /X-Remove absent/);
  assert.match(compareRoundTrip(c, URL_, rt(200, {}, { headers: {} })) ?? '', /missing/);
  const loose = kase({ response: { statusCodes: [200], headers: { 'Access-Control-Allow-Methods': 'GET,POST' }, ignoreWhitespace: true } });
  assert.equal(compareRoundTrip(loose, URL_, rt(200, {}, { headers: { 'access-control-allow-methods': ['GET, POST'] } })), undefined);
  const oneOf = kase({ response: { statusCodes: [200], validHeaderValues: { 'X-V': ['1', '2'] } } });
  assert.equal(compareRoundTrip(oneOf, URL_, rt(200, {}, { headers: { 'x-v': ['2'] } })), undefined);
  assert.match(compareRoundTrip(oneOf, URL_, rt(200, {}, { headers: { 'x-v': ['3'] } })) ?? '', /one of/);
});

test('redirects: default port, scheme and path', () => {
  const c = kase({ request: { host: '', method: 'GET', path: '/r?x=1', unfollowRedirect: true }, response: { statusCodes: [302] }, redirectRequest: { host: 'example.org' } });
  const url = { scheme: 'http', path: '/r' };
  const loc = (scheme: string, host: string, port: string, path: string) => rt(302, { pod: '', namespace: '' }, { redirect: { scheme, host, port, path } });
  assert.equal(compareRoundTrip(c, url, loc('http', 'example.org', '', '/r')), undefined);
  assert.equal(compareRoundTrip(c, url, loc('http', 'example.org', '80', '/r')), undefined);
  assert.match(compareRoundTrip(c, url, loc('http', 'example.org', '8080', '/r')) ?? '', /"" or "80"/);
  assert.match(compareRoundTrip(c, url, loc('https', 'example.org', '', '/r')) ?? '', /redirect scheme "http"/);
  assert.match(compareRoundTrip(c, url, loc('http', 'example.org', '', '/other')) ?? '', /redirect path "\/r"/);
  assert.match(compareRoundTrip(c, url, loc('http', 'other.org', '', '/r')) ?? '', /redirect host/);
  const https = kase({ response: { statusCodes: [301] }, redirectRequest: { scheme: 'https' } });
  assert.equal(compareRoundTrip(https, URL_, rt(301, {}, { redirect: { scheme: 'https', host: 'h', port: '443', path: '/' } })), undefined);
  assert.match(compareRoundTrip(https, URL_, rt(301, {}, { redirect: { scheme: 'https', host: 'h', port: '80', path: '/' } })) ?? '', /"" or "443"/);
  const port = kase({ response: { statusCodes: [302] }, redirectRequest: { port: '8083' } });
  assert.match(compareRoundTrip(port, URL_, rt(302, {}, { redirect: { scheme: 'http', host: 'h', port: '', path: '/' } })) ?? '', /port "8083", got ""/);
});

test('a redirect without redirect expectations only checks the status', () => {
  const c = kase({ response: { statusCodes: [301] } });
  assert.equal(compareRoundTrip(c, URL_, rt(301, { pod: '' })), undefined);
});

test('Location parsing follows Go, including explicit default ports and dot segments', () => {
  const base = { scheme: 'http', host: '127.0.1.1', path: '/a/b' };
  assert.deepEqual(pick(resolveLocation('https://example.org:443/x', base)), { scheme: 'https', host: 'example.org', port: '443', path: '/x' });
  assert.deepEqual(pick(resolveLocation('HTTP://Example.org/x%20y', base)), { scheme: 'http', host: 'Example.org', port: '', path: '/x y' });
  assert.deepEqual(pick(resolveLocation('/c/../d', base)), { scheme: 'http', host: '127.0.1.1', port: '', path: '/d' });
  assert.deepEqual(pick(resolveLocation('c', base)), { scheme: 'http', host: '127.0.1.1', port: '', path: '/a/c' });
  assert.deepEqual(pick(resolveLocation('//other:8080', base)), { scheme: 'http', host: 'other', port: '8080', path: '' });
  assert.equal(resolvePath('/a/b/', '../c/.'), '/a/c/');
});

test('the Host header drops only the scheme default port', () => {
  assert.equal(calculateHost('127.0.1.1', 80, 'http'), '127.0.1.1');
  assert.equal(calculateHost('127.0.1.1', 8080, 'http'), '127.0.1.1:8080');
  assert.equal(calculateHost('127.0.1.1', 443, 'https'), '127.0.1.1');
});

test('request headers get Go-canonical names and the X-Echo-Set-Header line', () => {
  assert.deepEqual(wireHeaders({ 'x-header-set': 'v' }, undefined), { 'X-Header-Set': 'v', 'X-Echo-Set-Header': '' });
  const set = wireHeaders(undefined, { a: '1', B: '2' })['X-Echo-Set-Header'];
  assert.deepEqual(set.split(',').sort(), ['B:2', 'a:1']);
});

function pick(l: ReturnType<typeof resolveLocation>) {
  return { scheme: l.scheme, host: l.host, port: l.port, path: l.path };
}

test('backend TLS: the SNI the gateway sent and the client certificate it presented, as the echo saw them', () => {
  const cert = '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n';
  const ref = { secret: 'gateway-conformance-infra/tls-checks-client-certificate', key: 'tls.crt' };
  const texts = (r: { secret: string; key: string }) => (r.secret === ref.secret && r.key === 'tls.crt' ? cert : undefined);
  const c = kase({ backend: '', request: { host: '', method: 'GET', path: '/', sni: 'abc.example.com', clientCert: ref } });
  assert.equal(compareRoundTrip(c, URL_, rt(200, { tls: { serverName: 'abc.example.com', peerCertificates: [cert] } }), texts), undefined);
  assert.match(compareRoundTrip(c, URL_, rt(200, { tls: { serverName: 'other.example.com', peerCertificates: [cert] } }), texts) ?? '', /expected the gateway to send SNI "abc.example.com"/);
  assert.match(compareRoundTrip(c, URL_, rt(200), texts) ?? '', /echo saw no TLS/);
  assert.match(compareRoundTrip(c, URL_, rt(200, { tls: { serverName: 'abc.example.com', peerCertificates: [] } }), texts) ?? '', /to present gateway-conformance-infra\/tls-checks-client-certificate/);
  // An explicit expectedRequest replaces the request's SNI (the re-encrypt case).
  const reencrypt = kase({ backend: '', request: { host: '', method: 'GET', path: '/', sni: 'https-listener.org' }, expectedRequest: { path: '/', sni: 'abc.example.com' } });
  assert.equal(compareRoundTrip(reencrypt, URL_, rt(200, { tls: { serverName: 'abc.example.com', peerCertificates: [] } })), undefined);
});
