/** Parsing of `vcl.list -j` (JSON format version 2 in Varnish 7.x). */

export interface VclListEntry {
  name: string;
  /** "active", "available" or "discarded". */
  status: string;
  /** "auto", "cold" or "warm" (the requested state), or "label". */
  state: string;
  /** "warm", "cold", "cooling", "busy", ...: the actual temperature. */
  temperature: string;
  busy: number;
  /** Present when the entry is a label: the VCL it points to. */
  labelTarget?: string;
  /** Number of labels pointing here; varnishd refuses to discard while there are any. */
  labels: number;
}

/**
 * The reply is `[ version, [args], timestamp, {entry}, {entry}, ... ]`.
 * Unknown fields are ignored so a newer varnishd does not break the parser.
 */
export function parseVclList(body: string): VclListEntry[] {
  const parsed: unknown = JSON.parse(body);
  if (!Array.isArray(parsed) || parsed.length < 3) throw new Error('unexpected vcl.list -j reply');
  const entries: VclListEntry[] = [];
  for (const raw of parsed.slice(3)) {
    if (!raw || typeof raw !== 'object') continue;
    const e = raw as Record<string, unknown>;
    if (typeof e.name !== 'string') continue;
    const label = e.label as Record<string, unknown> | undefined;
    entries.push({
      name: e.name,
      status: String(e.status ?? ''),
      state: String(e.state ?? ''),
      temperature: String(e.temperature ?? ''),
      busy: Number(e.busy ?? 0),
      labelTarget: label && typeof label.name === 'string' ? label.name : undefined,
      labels: typeof e.labels === 'number' ? e.labels : 0,
    });
  }
  return entries;
}
