// Header-name canonicalization as Go's net/textproto does it. The conformance client and the echo
// backend are Go programs upstream, so header names on the wire and in the echo body follow this
// rule (`x-header-set` -> `X-Header-Set`); names with bytes outside the token set stay untouched.

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

export function canonicalHeaderKey(name: string): string {
  if (!TOKEN.test(name)) return name;
  let out = '';
  let upper = true;
  for (const c of name) {
    out += upper ? c.toUpperCase() : c.toLowerCase();
    upper = c === '-';
  }
  return out;
}

// Groups raw header lines (name, value, name, value, ...) by canonical name, one value per line,
// keeping the order in which the lines arrived.
export function groupRawHeaders(raw: readonly string[], skip: (canonical: string) => boolean = () => false): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = canonicalHeaderKey(raw[i]);
    if (skip(name)) continue;
    (out[name] ??= []).push(raw[i + 1]);
  }
  return out;
}
