// Go's time.ParseDuration, because the echo contract takes `?delay=` in Go syntax ("1s", "500ms",
// "1.5h", "1h2m"). Returns milliseconds; throws with Go's message on malformed input.

const UNIT_NS: Record<string, number> = {
  ns: 1,
  us: 1e3,
  'µs': 1e3, // U+00B5 micro sign
  'μs': 1e3, // U+03BC Greek mu
  ms: 1e6,
  s: 1e9,
  m: 60e9,
  h: 3600e9,
};

export function parseGoDuration(input: string): number {
  const fail = (why: string): never => {
    throw new Error(`time: ${why} ${JSON.stringify(input)}`);
  };
  let s = input;
  let sign = 1;
  if (s.startsWith('-') || s.startsWith('+')) {
    if (s[0] === '-') sign = -1;
    s = s.slice(1);
  }
  if (s === '0') return 0;
  if (s === '') fail('invalid duration');
  let totalNs = 0;
  while (s !== '') {
    const m = /^(\d*)(?:\.(\d*))?/.exec(s);
    const whole = m?.[1] ?? '';
    const frac = m?.[2];
    if (whole === '' && (frac === undefined || frac === '')) fail('invalid duration');
    s = s.slice(m![0].length);
    const unit = /^[^\d.]+/.exec(s)?.[0];
    if (unit === undefined) fail('missing unit in duration');
    const scale = UNIT_NS[unit!];
    if (scale === undefined) fail(`unknown unit ${JSON.stringify(unit)} in duration`);
    s = s.slice(unit!.length);
    totalNs += Number(`${whole || '0'}.${frac || '0'}`) * scale;
  }
  return (sign * totalNs) / 1e6;
}
