// Parsing of real varnishlog output (varnish 7.1.1) and rebuilding the request from it.
// The captures below come from a varnishd running this VCL, with the reader's own arguments
// (mirrorTransactionArgs() and rawRecordArgs()):
//
//   sub vcl_recv {
//     unset req.http.x-vgw-route;
//     if (req.url ~ "^/restart" && req.restarts == 0) { set req.http.X-First = "1"; return (restart); }
//     set req.http.x-vgw-route = "app/web/0/0";
//     set req.http.X-Added = "yes";
//     set req.http.X-Replace = "replaced";
//     unset req.http.X-Drop;
//     std.collect(req.http.X-Multi);
//     unset req.http.X-Multi;
//     std.collect(req.http.X-Keep);
//     set req.url = "/rewritten" + req.url;
//     set req.http.host = "mirror.example.com";
//     std.log("vgw-filters app/web/0/0 RequestHeaderModifier,URLRewrite,RequestMirror");
//     if (req.url ~ "nomirror") { return (synth(200)); }
//     std.log("vgw-mirror app/shadow:8080");
//     set req.http.X-After = "after";
//     return (synth(200));
//   }
//
// and these requests:
//   curl -H 'X-Replace: orig' -H 'X-Drop: a' -H 'X-Drop: b' -H 'X-Multi: 1' -H 'X-Multi: 2' \
//        -H 'X-Keep: k1' -H 'X-Keep: k2' -H 'X-Vgw-Route: evil' -H 'Host: www.example.com' \
//        -H 'X-Forwarded-For: 10.0.0.1' -H 'X-Forwarded-For: 10.0.0.2' 'http://gw/path?q=1'
//   curl -X PUT -d 'body' -H 'Host: www.example.com' 'http://gw/upload'
//   curl -H 'Host: www.example.com' 'http://gw/nomirror'
//   curl -H 'Host: www.example.com' 'http://gw/restart'
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { mirrorHeaders } from '../../src/mirror/headers.ts';
import { mirrorRequests } from '../../src/mirror/requests.ts';
import { LogThrottle } from '../../src/mirror/throttle.ts';
import { parseRawLine, RequestState, VxidParser, type VslTransaction } from '../../src/varnish/vsl.ts';
import { parseLogRecord, splitRouteId } from '../../src/vcl/log-records.ts';

const VXID_CAPTURE = `*   << Request  >> 32770
-   ReqMethod      GET
-   ReqURL         /path?q=1
-   ReqProtocol    HTTP/1.1
-   ReqHeader      Host: www.example.com
-   ReqHeader      User-Agent: curl/7.88.1
-   ReqHeader      Accept: */*
-   ReqHeader      X-Replace: orig
-   ReqHeader      X-Drop: a
-   ReqHeader      X-Drop: b
-   ReqHeader      X-Multi: 1
-   ReqHeader      X-Multi: 2
-   ReqHeader      X-Keep: k1
-   ReqHeader      X-Keep: k2
-   ReqHeader      X-Vgw-Route: evil
-   ReqHeader      X-Forwarded-For: 10.0.0.1
-   ReqHeader      X-Forwarded-For: 10.0.0.2
-   ReqUnset       X-Forwarded-For: 10.0.0.1, 10.0.0.2
-   ReqHeader      X-Forwarded-For: 10.0.0.1, 10.0.0.2, 127.0.0.1
-   ReqUnset       X-Vgw-Route: evil
-   ReqHeader      x-vgw-route: app/web/0/0
-   ReqHeader      X-Added: yes
-   ReqUnset       X-Replace: orig
-   ReqHeader      X-Replace: replaced
-   ReqUnset       X-Drop: a
-   ReqUnset       X-Drop: b
-   ReqUnset       X-Multi: 1, 2
-   ReqURL         /rewritten/path?q=1
-   ReqUnset       Host: www.example.com
-   ReqHeader      host: mirror.example.com
-   VCL_Log        vgw-filters app/web/0/0 RequestHeaderModifier,URLRewrite,RequestMirror
-   VCL_Log        vgw-mirror app/shadow:8080
-   ReqHeader      X-After: after

*   << Request  >> 5
-   ReqMethod      PUT
-   ReqURL         /upload
-   ReqProtocol    HTTP/1.1
-   ReqHeader      Host: www.example.com
-   ReqHeader      User-Agent: curl/7.88.1
-   ReqHeader      Accept: */*
-   ReqHeader      Content-Length: 4
-   ReqHeader      Content-Type: application/x-www-form-urlencoded
-   ReqHeader      X-Forwarded-For: 127.0.0.1
-   ReqHeader      x-vgw-route: app/web/0/0
-   ReqHeader      X-Added: yes
-   ReqHeader      X-Replace: replaced
-   ReqURL         /rewritten/upload
-   ReqUnset       Host: www.example.com
-   ReqHeader      host: mirror.example.com
-   VCL_Log        vgw-filters app/web/0/0 RequestHeaderModifier,URLRewrite,RequestMirror
-   VCL_Log        vgw-mirror app/shadow:8080
-   ReqHeader      X-After: after

*   << Request  >> 8
-   ReqMethod      GET
-   ReqURL         /restart
-   ReqProtocol    HTTP/1.1
-   ReqHeader      Host: www.example.com
-   ReqHeader      User-Agent: curl/7.88.1
-   ReqHeader      Accept: */*
-   ReqHeader      X-Forwarded-For: 127.0.0.1
-   ReqHeader      X-First: 1
-   ReqHeader      x-vgw-route: app/web/0/0
-   ReqHeader      X-Added: yes
-   ReqHeader      X-Replace: replaced
-   ReqURL         /rewritten/restart
-   ReqUnset       Host: www.example.com
-   ReqHeader      host: mirror.example.com
-   VCL_Log        vgw-filters app/web/0/0 RequestHeaderModifier,URLRewrite,RequestMirror
-   VCL_Log        vgw-mirror app/shadow:8080
-   ReqHeader      X-After: after
`;

const RAW_CAPTURE = `     32770 VCL_Log        c vgw-filters app/web/0/0 RequestHeaderModifier,URLRewrite,RequestMirror
     32770 VCL_Log        c vgw-mirror app/shadow:8080
         5 VCL_Log        c vgw-filters app/web/0/0 RequestHeaderModifier,URLRewrite,RequestMirror
         5 VCL_Log        c vgw-mirror app/shadow:8080
     32772 VCL_Log        c vgw-filters app/web/0/0 RequestHeaderModifier,URLRewrite,RequestMirror
         8 VCL_Log        c vgw-filters app/web/0/0 RequestHeaderModifier,URLRewrite,RequestMirror
         8 VCL_Log        c vgw-mirror app/shadow:8080`;

function transactions(text: string): VslTransaction[] {
  const p = new VxidParser();
  const out: VslTransaction[] = [];
  for (const line of text.split('\n')) {
    const tx = p.push(line);
    if (tx) out.push(tx);
  }
  return out;
}

describe('varnishlog -g vxid', () => {
  const txs = transactions(VXID_CAPTURE);

  test('splits the output into transactions of records', () => {
    assert.deepEqual(
      txs.map((t) => [t.vxid, t.type, t.records.length]),
      [
        [32770, 'Request', 32],
        [5, 'Request', 18],
        [8, 'Request', 17],
      ],
    );
    assert.deepEqual(txs[0].records[0], { tag: 'ReqMethod', payload: 'GET' });
    assert.deepEqual(txs[0].records.at(-1), { tag: 'ReqHeader', payload: 'X-After: after' });
  });

  test('rebuilds the request as it stood at the mirror record', () => {
    const [m] = mirrorRequests(txs[0], 255);
    assert.equal(m.service, 'app/shadow:8080');
    assert.equal(m.route, 'app/web/0/0');
    assert.equal(m.method, 'GET');
    assert.equal(m.url, '/rewritten/path?q=1');
    assert.equal(m.protocol, 'HTTP/1.1');
    assert.equal(m.truncated, false);
    assert.deepEqual(m.headers, [
      'User-Agent: curl/7.88.1',
      'Accept: */*',
      // std.collect logs nothing: the two lines stay two lines (same meaning in HTTP).
      'X-Keep: k1',
      'X-Keep: k2',
      // varnishd collected the client's two lines silently, then unset the joined line.
      'X-Forwarded-For: 10.0.0.1, 10.0.0.2, 127.0.0.1',
      'x-vgw-route: app/web/0/0',
      'X-Added: yes',
      'X-Replace: replaced',
      'host: mirror.example.com',
    ]);
  });

  test('a request with a body is recognised', () => {
    const [m] = mirrorRequests(txs[1], 255);
    assert.equal(m.method, 'PUT');
    assert.equal(m.url, '/rewritten/upload');
    assert.equal(mirrorHeaders(m.headers).hasBody, true);
  });

  test('a restarted request is logged whole under its new vxid', () => {
    const [m] = mirrorRequests(txs[2], 255);
    assert.equal(m.url, '/rewritten/restart');
    assert.ok(m.headers.includes('X-First: 1'));
    assert.ok(m.headers.includes('host: mirror.example.com'));
  });

  test('a transaction cut short by a new header is dropped, the next one is kept', () => {
    const p = new VxidParser();
    const got: VslTransaction[] = [];
    for (const line of ['*   << Request  >> 1', '-   ReqURL         /a', '*   << Request  >> 2', '-   ReqURL         /b', '']) {
      const tx = p.push(line);
      if (tx) got.push(tx);
    }
    assert.deepEqual(got, [{ vxid: 2, type: 'Request', records: [{ tag: 'ReqURL', payload: '/b' }] }]);
  });

  test('payload whitespace is kept (std.log("  two leading spaces "), captured)', () => {
    const p = new VxidParser();
    p.push('*   << Request  >> 7');
    p.push('-   VCL_Log          two leading spaces ');
    p.push('-   Filters        ');
    const tx = p.push('');
    assert.deepEqual(tx?.records, [
      { tag: 'VCL_Log', payload: '  two leading spaces ' },
      { tag: 'Filters', payload: '' },
    ]);
  });
});

describe('varnishlog -g raw', () => {
  test('parses records and our payloads', () => {
    const recs = RAW_CAPTURE.split('\n').map(parseRawLine).filter((r) => r !== null);
    assert.equal(recs.length, 7);
    assert.deepEqual(recs[0], { vxid: 32770, tag: 'VCL_Log', side: 'c', payload: 'vgw-filters app/web/0/0 RequestHeaderModifier,URLRewrite,RequestMirror' });
    assert.deepEqual(parseLogRecord(recs[0].payload), { kind: 'filters', route: 'app/web/0/0', filters: ['RequestHeaderModifier', 'URLRewrite', 'RequestMirror'] });
    assert.deepEqual(parseLogRecord(recs[1].payload), { kind: 'mirror', service: 'app/shadow:8080' });
    assert.equal(recs[2].vxid, 5);
    assert.equal(parseRawLine(''), null);
    assert.equal(parseRawLine('Log overrun'), null);
    assert.deepEqual(parseRawLine('     32774 VCL_Log        c   two leading spaces '), { vxid: 32774, tag: 'VCL_Log', side: 'c', payload: '  two leading spaces ' });
  });

  test('route ids split into route and rule labels', () => {
    assert.deepEqual(splitRouteId('app/web/3/1'), { route: 'app/web', rule: '3' });
    assert.equal(splitRouteId('app/web/3'), null);
  });
});

describe('RequestState', () => {
  test('ReqUnset removes exactly one matching line', () => {
    const s = new RequestState();
    for (const h of ['A: 1', 'A: 1', 'B: 2']) s.apply('ReqHeader', h);
    s.apply('ReqUnset', 'A: 1');
    assert.deepEqual(s.snapshot().headers, ['A: 1', 'B: 2']);
  });

  test('records cut at vsl_reclen make the request truncated', () => {
    const s = new RequestState(255);
    s.apply('ReqURL', '/short');
    s.apply('ReqHeader', `X-Long: ${'a'.repeat(254 - 8)}`);
    assert.equal(s.snapshot().truncated, true);
    s.apply('ReqUnset', `X-Long: ${'a'.repeat(254 - 8)}`);
    assert.equal(s.snapshot().truncated, false);
    const big = new RequestState(4084);
    big.apply('ReqHeader', `X-Long: ${'a'.repeat(300)}`);
    assert.equal(big.snapshot().truncated, false);
  });
});

describe('mirrorHeaders', () => {
  test('drops hop-by-hop and internal headers, keeps Host and repeated names in order', () => {
    const { headers, hasBody } = mirrorHeaders([
      'host: mirror.example.com',
      'Connection: keep-alive, X-Hop',
      'Keep-Alive: timeout=5',
      'TE: trailers',
      'Upgrade: websocket',
      'Proxy-Authorization: secret',
      'X-Hop: gone',
      'x-vgw-route: app/web/0/0',
      'X-Vgw-Host: www',
      'Cookie: a=1',
      'Cookie: b=2',
      'Content-Length: 0',
      'X-Empty:',
    ]);
    assert.deepEqual(headers, ['host', 'mirror.example.com', 'Cookie', 'a=1', 'Cookie', 'b=2', 'Content-Length', '0', 'X-Empty', '']);
    assert.equal(hasBody, false);
  });

  test('a declared body is recognised', () => {
    assert.equal(mirrorHeaders(['Content-Length: 12']).hasBody, true);
    assert.equal(mirrorHeaders(['Transfer-Encoding: chunked']).hasBody, true);
    assert.equal(mirrorHeaders(['Content-Length: 00']).hasBody, false);
  });
});

test('LogThrottle: first at once, then one per interval with the count suppressed', () => {
  const t = new LogThrottle(1000);
  assert.equal(t.take('a', 0), 0);
  assert.equal(t.take('a', 10), -1);
  assert.equal(t.take('a', 20), -1);
  assert.equal(t.take('b', 30), 0);
  assert.equal(t.take('a', 1000), 2);
  assert.equal(t.take('a', 1500), -1);
});
