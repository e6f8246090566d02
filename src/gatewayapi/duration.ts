// Gateway API Duration (GEP-2257): one to four "<1-5 digits><h|m|s|ms>" parts, e.g. "1h30m",
// "500ms", "0s". A subset of Go's durations: no signs, fractions or µs/ns.
const DURATION = /^(?:[0-9]{1,5}(?:h|m|s|ms)){1,4}$/;
const PART = /([0-9]{1,5})(h|ms|m|s)/g;
const UNIT_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1 };

/** Milliseconds, or null when `value` is not a Gateway API Duration. */
export function parseDuration(value: unknown): number | null {
  if (typeof value !== 'string' || !DURATION.test(value)) return null;
  let ms = 0;
  for (const m of value.matchAll(PART)) ms += Number(m[1]) * UNIT_MS[m[2]];
  return ms;
}
