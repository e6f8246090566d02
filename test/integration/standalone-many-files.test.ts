// A burst of manifest files becomes a bounded number of applies, and a server with nothing to
// do loads nothing. Counts, never timings: the bounds are formulas of the settle window.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { StandaloneServer } from '../../src/standalone/server.ts';
import { silentLogger } from '../../src/util/log.ts';
import { GATEWAY_CLASS, gwRoute, httpGateway, loopbackService, yamlDocs } from './support/manifests.ts';
import { eventually } from './support/poll.ts';

const GW_ADDRESS = '127.0.26.1';
const GW_PORT = 18460;
const NS = 'burst';
const FILES = 500;
const GROUPS = 10;
/** Pause between groups: far above a plain debounce (5 ms), far below `burstQuietMs`. */
const GROUP_PAUSE_MS = 100;
/** Quiet never ends a batch here: only `maxDelayMs` does, which makes the count a formula. */
const SETTLE = { burstQuietMs: 600_000, maxDelayMs: 5_000 };

describe('vgw serve with a burst of manifest files', () => {
  let dir = '';
  let server: StandaloneServer;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vgw-many-files-'));
    await writeFile(join(dir, 'gateway.yaml'), yamlDocs([GATEWAY_CLASS, httpGateway(NS, GW_ADDRESS, GW_PORT), ...loopbackService(NS, 'svc', 18461)]));
    server = new StandaloneServer({ dir, defaultAddress: '127.0.0.1', logger: silentLogger(), settle: SETTLE, statsIntervalMs: 50, shards: 1 });
    await server.start();
  });

  after(async () => {
    await server?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test(`${FILES} files written in ${GROUPS} groups become at most 1 + ceil(span / maxDelay) applies`, async () => {
    assert.equal(server.state.ready, true);
    const before = server.state.applies ?? NaN;
    // Each group is written in one go (no event is handled in between); the pauses between
    // groups are what a plain debounce would turn into one apply each.
    const start = performance.now();
    for (let g = 0; g < GROUPS; g++) {
      if (g > 0) await sleep(GROUP_PAUSE_MS);
      for (let i = g * (FILES / GROUPS); i < (g + 1) * (FILES / GROUPS); i++) {
        writeFileSync(join(dir, `route-${i}.yaml`), yamlDocs([gwRoute(NS, `r${i}`, [`r${i}.burst.test`], [{ backendRefs: [{ name: 'svc', port: 80 }] }])]));
      }
    }
    const span = performance.now() - start;
    await eventually(`${FILES} routes live`, () => server.state.stats?.routes === FILES, 60_000);
    const applies = (server.state.applies ?? NaN) - before;
    // A batch closes maxDelayMs after its first event at the earliest (the first may close on
    // its own if it stays a lone change), so events spread over `span` fill at most this many.
    const bound = 1 + Math.ceil(span / SETTLE.maxDelayMs);
    assert.ok(applies >= 1 && applies <= bound, `${applies} applies for ${FILES} files written over ${Math.round(span)} ms (bound ${bound})`);
  });

  test('an idle server loads nothing', async () => {
    const applies = server.state.applies;
    const stats = server.statsCollector;
    assert.ok(stats, 'varnishstat collector running');
    // Several varnishstat polls go by: the control plane is awake, and still loads nothing.
    let polls = 0;
    const onSnapshot = () => polls++;
    stats.on('snapshot', onSnapshot);
    try {
      await eventually('5 varnishstat polls', () => polls >= 5, 30_000);
    } finally {
      stats.off('snapshot', onSnapshot);
    }
    assert.equal(server.state.applies, applies);
  });
});
