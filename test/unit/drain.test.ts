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

test('a drain with nothing open waits while connections keep being accepted, and ends once they stop', async () => {
  // Polls 1-5: nothing open at the moment of the poll, but a new connection was accepted since
  // the last one (a client still reaching the pod). From poll 6 on nothing is accepted.
  let polls = 0;
  let stoppedAtPoll = -1;
  await drainConnections({
    logger: pino({ level: 'silent' }),
    varnishd: fakeVarnishd(() => (stoppedAtPoll = polls)),
    pollMs: 5,
    quietMs: 40,
    connections: async () => {
      polls++;
      return { open: 0, accepted: Math.min(polls, 5) };
    },
  });
  assert.ok(stoppedAtPoll > 5, `varnishd stopped after the accepts ended (poll ${stoppedAtPoll})`);
});

test('a drain waits for open connections even when none are accepted any more', async () => {
  let polls = 0;
  let stoppedAtPoll = -1;
  await drainConnections({
    logger: pino({ level: 'silent' }),
    varnishd: fakeVarnishd(() => (stoppedAtPoll = polls)),
    pollMs: 5,
    quietMs: 0,
    connections: async () => {
      polls++;
      return { open: polls < 4 ? 2 : 0, accepted: 7 };
    },
  });
  assert.equal(stoppedAtPoll, 4, 'stopped at the first poll with nothing open');
});

test('an unknown accepted count does not hold the drain forever', async () => {
  let polls = 0;
  await drainConnections({
    logger: pino({ level: 'silent' }),
    varnishd: fakeVarnishd(() => undefined),
    pollMs: 5,
    quietMs: 20,
    connections: async () => {
      polls++;
      return { open: 0, accepted: Number.NaN };
    },
  });
  assert.ok(polls >= 1);
});
