// A large first load starts varnishd on the Gateways' sockets while the routes are still being
// parsed: the config then goes live on that varnishd (no second start), every route answers,
// and a guess that turns out wrong only costs a restart.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { startEchoServer, type EchoServer } from '../../src/echo/server.ts';
import { StandaloneServer } from '../../src/standalone/server.ts';
import { PARSE_AHEAD_MIN_FILES } from '../../src/providers/file/parallel-parse.ts';
import { memoryLogger } from './support/chaperone-world.ts';
import { GATEWAY_CLASS, gwRoute, httpGateway, loopbackService, yamlDocs } from './support/manifests.ts';

const NS = 'early';
const ROUTES = PARSE_AHEAD_MIN_FILES + 10;

function get(address: string, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: address, port, path: '/', headers: { host }, agent: false, timeout: 5000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

describe('varnishd started during the first load', () => {
  const cleanup: (() => Promise<unknown>)[] = [];
  let echo: EchoServer;
  after(async () => {
    for (const c of cleanup.reverse()) await c();
  });

  async function serve(address: string, port: number, extra: object[] = []) {
    echo ??= await startEchoServer({ port: 0, pod: 'web-1-1', namespace: NS });
    if (!cleanup.length) cleanup.push(() => echo.close());
    const dir = await mkdtemp(join(tmpdir(), 'vgw-early-'));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, 'gateway.yaml'), yamlDocs([GATEWAY_CLASS, httpGateway(NS, address, port), ...loopbackService(NS, 'web', Number(new URL(echo.url).port))]));
    for (let i = 0; i < ROUTES; i++) {
      await writeFile(join(dir, `route-${i}.yaml`), yamlDocs([gwRoute(NS, `r${i}`, [`r${i}.early.test`], [{ backendRefs: [{ name: 'web', port: 80 }] }])]));
    }
    for (const [i, doc] of extra.entries()) await writeFile(join(dir, `zz-extra-${i}.yaml`), yamlDocs([doc]));
    const log = memoryLogger('info');
    const server = new StandaloneServer({ dir, defaultAddress: '127.0.0.1', logger: log.logger, shards: 1 });
    cleanup.push(() => server.stop());
    await server.start();
    return { server, events: () => log.lines().map((l) => l.event as string) };
  }

  test('the first config goes live on the varnishd started early', async () => {
    const { server, events } = await serve('127.0.117.2', 18082);
    assert.equal(server.state.ready, true, server.state.lastError?.message);
    const seen = events();
    assert.ok(seen.includes('varnishd-prestarted'), seen.join(' '));
    assert.ok(seen.indexOf('varnishd-prestarted') < seen.indexOf('vcl-active'), seen.join(' '));
    assert.equal(server.state.varnishdStarts, 1);
    assert.ok(!seen.includes('varnishd-restart'));
    for (const i of [0, ROUTES - 1]) assert.equal(await get('127.0.117.2', 18082, `r${i}.early.test`), 200);
  });

  test('a wrong guess (a second Gateway only the full load finds) costs a restart, nothing else', async () => {
    // Its file does not look like a Gateway's (a List of them), so the early start misses it.
    const list = { apiVersion: 'v1', kind: 'List', items: [{ ...httpGateway(NS, '127.0.117.4', 18084), metadata: { name: 'gw2', namespace: NS } }] };
    const { server, events } = await serve('127.0.117.3', 18083, [list]);
    assert.equal(server.state.ready, true, server.state.lastError?.message);
    const seen = events();
    assert.ok(seen.includes('varnishd-prestarted') && seen.includes('varnishd-restart'), seen.join(' '));
    assert.equal(server.state.varnishdStarts, 2);
    assert.equal(await get('127.0.117.3', 18083, 'r0.early.test'), 200);
  });
});
