// Waiting on things the gateway does asynchronously (mirrored requests are replayed from the
// Varnish log after the client got its answer). The clock is a parameter so that the waiting
// rules can be unit-tested without waiting.
import { setTimeout as sleep } from 'node:timers/promises';

export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

export const REAL_CLOCK: Clock = { now: () => Date.now(), sleep: (ms) => sleep(ms) };

export interface PollOptions {
  intervalMs: number;
  /** Give up after this long (the last value read is returned). */
  capMs: number;
  clock?: Clock;
}

/** Reads until `done` holds or the cap is reached; `met` says which. */
export async function pollUntil<T>(read: () => T, done: (value: T) => boolean, opts: PollOptions): Promise<{ value: T; met: boolean }> {
  const clock = opts.clock ?? REAL_CLOCK;
  const until = clock.now() + opts.capMs;
  for (;;) {
    const value = read();
    if (done(value)) return { value, met: true };
    if (clock.now() >= until) return { value, met: false };
    await clock.sleep(Math.min(opts.intervalMs, Math.max(1, until - clock.now())));
  }
}

/**
 * Reads a growing count until it has not changed for `quietMs`, or the cap is reached
 * (`settled` false: the count was still moving when the wait ended).
 */
export async function awaitSettled(read: () => number, opts: PollOptions & { quietMs: number }): Promise<{ value: number; settled: boolean }> {
  const clock = opts.clock ?? REAL_CLOCK;
  const start = clock.now();
  let value = read();
  let changedAt = start;
  for (;;) {
    const now = clock.now();
    if (now - changedAt >= opts.quietMs) return { value, settled: true };
    if (now - start >= opts.capMs) return { value, settled: false };
    await clock.sleep(opts.intervalMs);
    const next = read();
    if (next !== value) {
      value = next;
      changedAt = clock.now();
    }
  }
}
