// Reading the Prometheus text format in tests.

/** Sample lines: one per series (histogram buckets included), comments left out. */
export function samples(text: string): string[] {
  return text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
}

/** The value of the first series whose line starts with `prefix`. */
export function sampleStartingWith(text: string, prefix: string): number | undefined {
  return valueOf(samples(text).find((l) => l.startsWith(prefix)));
}

/** The value of the series `series` (name and labels, exactly as printed). */
export function sample(text: string, series: string): number | undefined {
  return valueOf(samples(text).find((l) => seriesOf(l) === series));
}

/** Every series (name and labels, no value), sorted. */
export function seriesKeys(text: string): string[] {
  return samples(text).map(seriesOf).sort();
}

const seriesOf = (line: string) => line.slice(0, line.lastIndexOf(' '));
const valueOf = (line: string | undefined) => (line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1)));
