// One tenant's route can neither stop the gateway from starting nor block later updates:
// regexes PCRE2 refuses (caught by the dialect tokenizer or, past it, by PCRE2 through
// varnishd -C) reject only their route, and a route whose generated VCL still does not compile
// is found by bisection and rejected while everything else is applied, at cold start too.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startEchoServer, type EchoServer } from '../../src/echo/server.ts';
import type { RoutingIR } from '../../src/ir/types.ts';
import type { CompileHook } from '../../src/pipeline/render.ts';
import { StandaloneServer } from '../../src/standalone/server.ts';
import { silentLogger } from '../../src/util/log.ts';
import { getText } from './support/http.ts';
import { GATEWAY_CLASS, gwRoute, httpGateway, loopbackService, yamlDocs } from './support/manifests.ts';
import { eventually } from './support/poll.ts';

const NS = 'app';
const PORT = 18080;

// Each is accepted by ECMAScript's RegExp, which is what the gateway validated with before.
const BAD_REGEXES: [pattern: string, reason: RegExp][] = [
  ['[\\w-.]+', /must be first, last or written/],
  ['\\u00e9', /PCRE2 does not support/],
  ['\\p{Foo}', /Unicode property/],
  ['a\\g', /backreferences/],
  ['a\\c', /control escapes/],
  ['[[:foo:]]', /unknown POSIX class/],
  ['(?<n>a)(?<n>b)', /used twice/],
  ['x\\o', /octal/],
  ['\\L', /PCRE2 does not support/],
  ['\\Q)\\E|.*', /quoting/],
  ['a\\c)|b(', /control escapes/],
  // Past the tokenizer: limits only PCRE2 knows.
  [`${'('.repeat(260)}a${')'.repeat(260)}`, /PCRE2: parentheses are too deeply nested/],
  ['(?:a{60000}){60000}', /PCRE2: regular expression is too large/],
];

const goodRoute = (prefix: string) => gwRoute(NS, 'good', ['good.example.com'], [{ matches: [{ path: { type: 'PathPrefix', value: prefix } }], backendRefs: [{ name: 'svc', port: 80 }] }]);

const getStatus = async (address: string, port: number, host: string, path: string) => (await getText(port, path, host, address)).status;

function problemOf(server: StandaloneServer, name: string): string | undefined {
  return server.state.problems.find((p) => p.object === `${NS}/${name}`)?.message;
}

describe('vgw serve: routes with regexes PCRE2 refuses', () => {
  const ADDRESS = '127.0.24.1';
  let dir = '';
  let server: StandaloneServer;
  let backend: EchoServer;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vgw-regex-'));
    backend = await startEchoServer({ port: 0, pod: 'svc-1', namespace: NS });
    const bad = BAD_REGEXES.map(([pattern], i) =>
      gwRoute(NS, `bad-${i}`, [`bad-${i}.example.com`], [{ matches: [{ path: { type: 'RegularExpression', value: pattern } }], backendRefs: [{ name: 'svc', port: 80 }] }]),
    );
    await writeFile(join(dir, 'gateway.yaml'), yamlDocs([GATEWAY_CLASS, httpGateway(NS, ADDRESS, PORT), ...loopbackService(NS, 'svc', Number(new URL(backend.url).port))]));
    await writeFile(join(dir, 'good.yaml'), yamlDocs([goodRoute('/')]));
    await writeFile(join(dir, 'bad.yaml'), yamlDocs(bad));
    server = new StandaloneServer({ dir, defaultAddress: '127.0.0.1', logger: silentLogger() });
    await server.start();
  });

  after(async () => {
    await server?.stop();
    await backend?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('the good route serves from the cold start', async () => {
    assert.equal(server.state.ready, true, server.state.lastError?.message);
    assert.equal(await getStatus(ADDRESS, PORT, 'good.example.com', '/x'), 200);
  });

  test('each bad route is not accepted, with the reason naming the field and the construct', () => {
    BAD_REGEXES.forEach(([pattern, reason], i) => {
      const message = problemOf(server, `bad-${i}`);
      assert.ok(message, `bad-${i} (${pattern.slice(0, 40)}) must be rejected`);
      assert.match(message, /UnsupportedValue: spec\.rules\[0\]\.matches\[0\]\.path\.value: invalid regular expression: /);
      assert.match(message, reason, pattern.slice(0, 40));
    });
  });

  test('a later change to the good route goes live', async () => {
    await writeFile(join(dir, 'good.yaml'), yamlDocs([goodRoute('/v2')]));
    await eventually('changed route live', async () => (await getStatus(ADDRESS, PORT, 'good.example.com', '/x')) === 404, 15_000);
    assert.equal(await getStatus(ADDRESS, PORT, 'good.example.com', '/v2/x'), 200);
    assert.equal(server.state.lastError, undefined);
  });
});

describe('vgw serve: a route whose VCL does not compile is found and rejected alone', () => {
  const ADDRESS = '127.0.24.2';
  let dir = '';
  let server: StandaloneServer;
  let backend: EchoServer;
  /** Compiles of an IR that holds the poison route: each isolation does several. */
  let poisonCompiles = 0;

  // A failure no validation can see: any VCL holding route app/poison gets a line VCC refuses.
  const hook: CompileHook = (deploy, ir: RoutingIR) => {
    const poisoned = ir.sockets.some((s) => s.vhosts.some((v) => v.routes.some((r) => r.id.startsWith(`${NS}/poison/`))));
    if (!poisoned) return deploy;
    poisonCompiles++;
    return { ...deploy, main: `${deploy.main}\nsub vgw_poisoned { set req.http.x-poison = ; }\n` };
  };
  const poisonRoute = (prefix: string) => gwRoute(NS, 'poison', ['poison.example.com'], [{ matches: [{ path: { type: 'PathPrefix', value: prefix } }], backendRefs: [{ name: 'svc', port: 80 }] }]);
  const others = ['one', 'two', 'three', 'four', 'five'].map((n) => gwRoute(NS, n, [`${n}.example.com`], [{ backendRefs: [{ name: 'svc', port: 80 }] }]));

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vgw-bisect-'));
    backend = await startEchoServer({ port: 0, pod: 'svc-1', namespace: NS });
    await writeFile(join(dir, 'gateway.yaml'), yamlDocs([GATEWAY_CLASS, httpGateway(NS, ADDRESS, PORT), ...loopbackService(NS, 'svc', Number(new URL(backend.url).port))]));
    await writeFile(join(dir, 'good.yaml'), yamlDocs([goodRoute('/'), ...others]));
    await writeFile(join(dir, 'poison.yaml'), yamlDocs([poisonRoute('/')]));
    server = new StandaloneServer({ dir, defaultAddress: '127.0.0.1', logger: silentLogger(), compileHook: hook });
    await server.start();
  });

  after(async () => {
    await server?.stop();
    await backend?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('at cold start, everything but the culprit serves', async () => {
    assert.equal(server.state.ready, true, server.state.lastError?.message);
    assert.equal(await getStatus(ADDRESS, PORT, 'good.example.com', '/'), 200);
    for (const n of ['one', 'two', 'three', 'four', 'five']) assert.equal(await getStatus(ADDRESS, PORT, `${n}.example.com`, '/'), 200, n);
    assert.equal(await getStatus(ADDRESS, PORT, 'poison.example.com', '/'), 404);
    const message = problemOf(server, 'poison') ?? '';
    assert.match(message, /UnsupportedValue: the generated configuration did not compile: /);
    assert.match(message, /\(VCL line \d+: sub vgw_poisoned \{ set req\.http\.x-poison = ; \}\)/);
    assert.deepEqual(server.state.problems.map((p) => p.object), [`${NS}/poison`], 'only the culprit is rejected');
  });

  test('later changes go live without bisecting again while the culprit is unchanged', async () => {
    const before = poisonCompiles;
    await writeFile(join(dir, 'good.yaml'), yamlDocs([goodRoute('/v2'), ...others]));
    await eventually('changed route live', async () => (await getStatus(ADDRESS, PORT, 'good.example.com', '/')) === 404, 15_000);
    assert.equal(poisonCompiles, before, 'the remembered culprit is left out without compiling it again');
    assert.match(problemOf(server, 'poison') ?? '', /did not compile/);
  });

  test('a changed culprit is tried again, and once fixed it serves', async () => {
    const before = poisonCompiles;
    await writeFile(join(dir, 'poison.yaml'), yamlDocs([poisonRoute('/p')]));
    await eventually('culprit isolated again', async () => poisonCompiles > before && /did not compile/.test(problemOf(server, 'poison') ?? ''), 15_000);
    await writeFile(join(dir, 'poison.yaml'), yamlDocs([gwRoute(NS, 'antidote', ['poison.example.com'], [{ backendRefs: [{ name: 'svc', port: 80 }] }])]));
    await eventually('fixed route serves', async () => (await getStatus(ADDRESS, PORT, 'poison.example.com', '/')) === 200, 15_000);
    assert.equal(problemOf(server, 'poison'), undefined);
  });
});
