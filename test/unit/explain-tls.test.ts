// `vgw explain` on an HTTPS listener says that its replay is clear text: what TLS decides
// (certificate, client certificate, tls.options) is not what it checked.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { predict } from '../../src/explain/predict.ts';
import { formatExplanation } from '../../src/explain/report.ts';
import { IR_VERSION, type IRSocket, type RoutingIR } from '../../src/ir/types.ts';

function socket(port: number, tls: boolean): IRSocket {
  return {
    name: `a127_0_0_1_${port}`,
    address: '127.0.0.1',
    port,
    vhosts: [{ hostname: '*', listener: 'default/gw/l', routes: [] }],
    ...(tls ? { tls: { certificates: [{ namespace: 'default', name: 'www', hostnames: ['www.example.com'] }] } } : {}),
  };
}

const request = { method: 'GET', host: 'www.example.com', path: '/', headers: [] as [string, string][] };

test('an HTTPS listener: the explanation says the replay is clear text; a plain one does not', () => {
  const https = socket(443, true);
  const http = socket(80, false);
  const ir: RoutingIR = { version: IR_VERSION, services: [], sockets: [http, https] };
  const tlsText = formatExplanation(predict(ir, new Map(), request, https), undefined, []);
  assert.match(tlsText, /HTTPS listener: replayed in clear text, without TLS/);
  const plainText = formatExplanation(predict(ir, new Map(), request, http), undefined, []);
  assert.doesNotMatch(plainText, /clear text/);
});
