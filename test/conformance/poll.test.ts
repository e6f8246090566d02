import { test } from 'node:test';
import assert from 'node:assert/strict';
import { awaitSettled, pollUntil, type Clock } from './poll.ts';

// A clock that only moves when someone sleeps, so waiting rules are checked without waiting.
function fakeClock(): Clock & { slept: number[] } {
  let t = 0;
  const slept: number[] = [];
  return {
    slept,
    now: () => t,
    sleep: async (ms) => {
      slept.push(ms);
      t += ms;
    },
  };
}

test('pollUntil stops as soon as the condition holds', async () => {
  const clock = fakeClock();
  let reads = 0;
  const r = await pollUntil(() => ++reads, (n) => n === 4, { intervalMs: 100, capMs: 10_000, clock });
  assert.deepEqual(r, { value: 4, met: true });
  assert.deepEqual(clock.slept, [100, 100, 100]);
});

test('pollUntil gives up at the cap with the last value', async () => {
  const clock = fakeClock();
  const r = await pollUntil(() => 'never', () => false, { intervalMs: 300, capMs: 1000, clock });
  assert.deepEqual(r, { value: 'never', met: false });
  assert.equal(clock.now(), 1000);
});

test('awaitSettled waits for a quiet period after the last change', async () => {
  const clock = fakeClock();
  // The count grows for the first 2.5 s (one more every 500 ms), then stays at 5.
  const r = await awaitSettled(() => Math.min(5, Math.floor(clock.now() / 500)), { intervalMs: 100, quietMs: 1000, capMs: 10_000, clock });
  assert.deepEqual(r, { value: 5, settled: true });
  assert.equal(clock.now(), 3500);
});

test('awaitSettled reports a count still moving at the cap', async () => {
  const clock = fakeClock();
  const r = await awaitSettled(() => clock.now(), { intervalMs: 100, quietMs: 1000, capMs: 2000, clock });
  assert.equal(r.settled, false);
  assert.equal(r.value, 2000);
});

test('awaitSettled judges a count that never moves after the quiet period', async () => {
  const clock = fakeClock();
  assert.deepEqual(await awaitSettled(() => 0, { intervalMs: 250, quietMs: 1000, capMs: 10_000, clock }), { value: 0, settled: true });
  assert.equal(clock.now(), 1000);
});
