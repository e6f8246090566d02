// The drain's end condition: no connection open AND none accepted for the quiet period, so a
// pod still reached through a stale endpoint list is not stopped between two connections.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { drainConnections } from '../../src/chaperone/drain.ts';
import type { Varnishd } from '../../src/varnish/varnishd.ts';

function fakeVarnishd(onStop: () => void): Varnishd {
  return { stopChild: async () => onStop() } as unknown as Varnishd;
}

/** Drains against a scripted connections() and says at which poll varnishd was stopped. */
async function stopPoll(script: (poll: number) => { open: number; accepted: number }, quietMs: number): Promise<number> {
  let polls = 0;
  let stoppedAtPoll = -1;
  await drainConnections({
    logger: pino({ level: 'silent' }),
    varnishd: fakeVarnishd(() => (stoppedAtPoll = polls)),
    pollMs: 5,
    quietMs,
    connections: async () => script(++polls),
  });
  return stoppedAtPoll;
}

test('a drain with nothing open waits while connections keep being accepted, and ends once they stop', async () => {
  // Polls 1-5: nothing open at the moment of the poll, but a new connection was accepted since
  // the last one (a client still reaching the pod). From poll 6 on nothing is accepted.
  const stopped = await stopPoll((poll) => ({ open: 0, accepted: Math.min(poll, 5) }), 40);
  assert.ok(stopped > 5, `varnishd stopped after the accepts ended (poll ${stopped})`);
});

test('a drain waits for open connections even when none are accepted any more', async () => {
  assert.equal(await stopPoll((poll) => ({ open: poll < 4 ? 2 : 0, accepted: 7 }), 0), 4, 'stopped at the first poll with nothing open');
});

test('an unknown accepted count does not hold the drain forever', async () => {
  assert.ok((await stopPoll(() => ({ open: 0, accepted: Number.NaN }), 20)) >= 1);
});
