// Rate-limited logging: under load one failure repeats thousands of times a second, and a log
// line for each would cost more than the mirroring itself. The first occurrence per key is
// logged at once, then at most one line per interval, carrying the count of those suppressed.

export class LogThrottle {
  private readonly intervalMs: number;
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  constructor(intervalMs = 10_000) {
    this.intervalMs = intervalMs;
  }

  /** Returns the number of occurrences suppressed since the last line, or -1 to stay quiet. */
  take(key: string, now = Date.now()): number {
    const s = this.last.get(key);
    if (!s) {
      // Keys are service keys and reasons from the config, but keep the map bounded anyway.
      if (this.last.size >= 10_000) this.last.clear();
      this.last.set(key, { at: now, suppressed: 0 });
      return 0;
    }
    if (now - s.at < this.intervalMs) {
      s.suppressed++;
      return -1;
    }
    const suppressed = s.suppressed;
    s.at = now;
    s.suppressed = 0;
    return suppressed;
  }
}
