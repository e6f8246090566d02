// The generated host switch (src/vcl/compile.ts, emitSwitch) in a real varnishd: one VCL of 300
// exact hosts spans three vhost subs, each a two-level if/elsif switch on the selector's index.
// Every host has a path of its own, so a request that reached another host's branch would get
// 404 on its own path, and one that reached its own branch gets 404 on its neighbour's.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startEchoServer, type EchoServer } from '../../src/echo/server.ts';
import { StandaloneServer } from '../../src/standalone/server.ts';
import { silentLogger } from '../../src/util/log.ts';
import { getText } from './support/http.ts';
import { GATEWAY_CLASS, gwRoute, httpGateway, loopbackService, yamlDocs } from './support/manifests.ts';
import { eventually } from './support/poll.ts';

const ADDRESS = '127.0.7.3';
const PORT = 18082;
const NS = 'switch';
/** More than two vhost subs of 128, and groups of every size the switch makes. */
const HOSTS = 300;

const status = async (host: string, path: string) => (await getText(PORT, path, host, ADDRESS)).status;

describe('host switch of a 300-host VCL', () => {
  let dir = '';
  let server: StandaloneServer;
  let echo: EchoServer;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vgw-host-switch-'));
    echo = await startEchoServer({ port: 0, pod: 'web-1-1', namespace: NS });
    const routes = Array.from({ length: HOSTS }, (_, i) =>
      gwRoute(NS, `r${i}`, [`h${i}.switch.test`], [{ matches: [{ path: { type: 'PathPrefix', value: `/p${i}` } }], backendRefs: [{ name: 'web', port: 80 }] }]),
    );
    await writeFile(join(dir, 'all.yaml'), yamlDocs([GATEWAY_CLASS, httpGateway(NS, ADDRESS, PORT), ...loopbackService(NS, 'web', Number(new URL(echo.url).port)), ...routes]));
    // One VCL, no shards: every host goes through the switch of that VCL.
    server = new StandaloneServer({ dir, defaultAddress: '127.0.0.1', logger: silentLogger(), shards: 1 });
    await server.start();
    await eventually('the config is live', () => server.state.ready, 60_000);
  });

  after(async () => {
    await server?.stop();
    await echo?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('each host reaches its own branch and no other', async () => {
    for (let i = 0; i < HOSTS; i++) {
      const host = `h${i}.switch.test`;
      assert.equal(await status(host, `/p${i}`), 200, `${host} /p${i}`);
      assert.equal(await status(host, `/p${(i + 1) % HOSTS}x`), 404, `${host} /p${(i + 1) % HOSTS}x`);
    }
    assert.equal(await status('unknown.switch.test', '/p0'), 404);
  });
});
