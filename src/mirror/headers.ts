// Which logged header lines a mirrored request carries. The mirror is a new HTTP/1.1 request
// on its own connection, so the client connection's hop-by-hop headers do not apply to it, and
// our internal x-vgw-* state must never leave the gateway.
import { RESERVED_HEADER_PREFIX } from '../ir/limits.ts';

/** Always hop-by-hop (RFC 9110 section 7.6.1), plus the Proxy-* family. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'te', 'transfer-encoding', 'upgrade', 'trailer', 'proxy-connection']);

export interface MirrorHeaders {
  /** Flat [name, value, name, value, ...], the form node:http takes for repeated names. */
  headers: string[];
  /** The request declares a body (Content-Length > 0 or Transfer-Encoding): it is not in the log. */
  hasBody: boolean;
}

export function mirrorHeaders(lines: string[]): MirrorHeaders {
  const parsed: { name: string; lower: string; value: string }[] = [];
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim();
    parsed.push({ name, lower: name.toLowerCase(), value: line.slice(colon + 1).trim() });
  }
  // Headers named by Connection are hop-by-hop too.
  const named = new Set<string>();
  let hasBody = false;
  for (const h of parsed) {
    if (h.lower === 'connection') for (const t of h.value.split(',')) named.add(t.trim().toLowerCase());
    if (h.lower === 'transfer-encoding') hasBody = true;
    if (h.lower === 'content-length' && !/^0*$/.test(h.value)) hasBody = true;
  }
  const headers: string[] = [];
  for (const h of parsed) {
    if (HOP_BY_HOP.has(h.lower) || named.has(h.lower) || h.lower.startsWith('proxy-') || h.lower.startsWith(RESERVED_HEADER_PREFIX)) continue;
    headers.push(h.name, h.value);
  }
  return { headers, hasBody };
}
