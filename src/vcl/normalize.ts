// Request normalisation before routing: the request-target, the Host header and the path are
// put in one canonical form, or the request is refused with 400, so that no spelling of a URL
// can reach a backend while skipping the rule written for it ("/x/../admin", "//admin",
// "/%61dmin", "http://host/admin" are all "/admin" on that host).
//
// VCL has no loops, so every step is a fixed sequence of regsub/regsuball passes. Each pattern
// is linear: it either starts with a literal character (PCRE2 skips ahead to candidates
// without backtracking) or its repeats cannot give back what they consumed. varnishd runs with
// pcre2_match_limit=10000 (src/runtime/data-plane.ts), and a pattern that backtracks once per
// character fails on URLs of a few kilobytes.
import { vclRegex, vclString } from './escape.ts';

/** Whether paths are normalised before routing (RoutingIR.pathNormalization; absent = On). */
export type PathNormalization = 'On' | 'Off';

/**
 * ".." segments resolved per request, nesting included ("/a/b/../../c" needs two rounds).
 * Clients send normalised paths; a deeper nesting is an attack or a bug and gets 400.
 */
export const MAX_DOT_DOT_ROUNDS = 8;

const HEX = '0123456789ABCDEF';
/** RFC 3986 section 2.3: decoding these never changes what a URI means. */
const UNRESERVED = /^[A-Za-z0-9\-._~]$/;

/** A pattern matching one hex digit in either case: "a" -> "[aA]", "4" -> "4". */
const hexDigit = (d: string) => (/[A-F]/.test(d) ? `[${d.toLowerCase()}${d}]` : d);

/** Unreserved characters grouped by the first hex digit of their encoding. */
function unreservedByHighDigit(): Map<string, string[]> {
  const groups = new Map<string, string[]>();
  for (let code = 0x20; code < 0x7f; code++) {
    const ch = String.fromCharCode(code);
    if (!UNRESERVED.test(ch)) continue;
    const hi = HEX[code >> 4];
    groups.set(hi, [...(groups.get(hi) ?? []), ch]);
  }
  return groups;
}

/**
 * Lines of VCL that normalise the path held in `pathHeader` (query removed) in place, or answer
 * 400; `changedHeader` is set when the path changed. Order: refuse what cannot be normalised
 * safely, decode encoded unreserved characters, upper-case the hex of the encodings that stay,
 * merge slashes, remove "." and ".." segments.
 *
 * Every assignment is guarded by a test of what it changes: setting a header copies the whole
 * value into the request's workspace (twice with regsub), and a long URL rewritten by every
 * pass would run out of workspace (varnishd then answers 503).
 */
export function pathNormalizationVcl(pathHeader: string, changedHeader: string): string[] {
  const p = pathHeader;
  const lines: string[] = [];
  const change = (indent: string, cond: string, value: string) =>
    lines.push(`${indent}if (${p} ~ ${cond}) { set ${p} = ${value}; set ${changedHeader} = "1"; }`);
  // Encoded "/" "\" or NUL, a "\" itself (some backends read it as "/"), a "%" without two hex
  // digits, a fragment, or a path that is not absolute.
  lines.push(`if (${p} !~ "^/" || ${p} ~ ${vclRegex('[\\\\#]|%(?:00|2[fF]|5[cC])|%(?![0-9A-Fa-f]{2})')}) { return (synth(400)); }`);
  lines.push(`if (${p} ~ "%") {`);
  for (const [hi, chars] of unreservedByHighDigit()) {
    const los = [...new Set(chars.flatMap((c) => hexDigit(HEX[c.charCodeAt(0) & 15]).replace(/[[\]]/g, '').split('')))];
    lines.push(`  if (${p} ~ ${vclRegex(`%${hi}[${los.join('')}]`)}) {`);
    for (const c of chars) {
      const enc = vclRegex(`%${hi}${hexDigit(HEX[c.charCodeAt(0) & 15])}`);
      change('    ', enc, `regsuball(${p}, ${enc}, ${vclString(c)})`);
    }
    lines.push('  }');
  }
  // What stays encoded is reserved or non-ASCII: one spelling, upper-case hex (RFC 3986 6.2.2.1).
  lines.push(`  if (${p} ~ "%(?:[a-f]|[0-9A-Fa-f][a-f])") {`);
  for (const d of 'abcdef') change('    ', `"%${d}"`, `regsuball(${p}, "%${d}", "%${d.toUpperCase()}")`);
  for (const d of 'abcdef') change('    ', `"%[0-9A-F]${d}"`, `regsuball(${p}, "(%[0-9A-F])${d}", "\\1${d.toUpperCase()}")`);
  lines.push('  }');
  lines.push('}');
  change('', '"//"', `regsuball(${p}, "//+", "/")`);
  // RFC 3986 section 5.2.4. A trailing "." or ".." leaves the path ending in "/"; ".." never
  // climbs above the root.
  const dotDot = vclRegex('/\\.\\.(?:/|$)');
  lines.push(`if (${p} ~ ${vclRegex('/\\.\\.?(?:/|$)')}) {`);
  change('  ', vclRegex('/\\.(?=/)'), `regsuball(${p}, ${vclRegex('/\\.(?=/)')}, "")`);
  change('  ', vclRegex('/\\.$'), `regsub(${p}, ${vclRegex('/\\.$')}, "/")`);
  const inner = vclRegex('/(?!\\.\\.(?:/|$))[^/]+/\\.\\.(?=/)');
  const last = vclRegex('/(?!\\.\\.(?:/|$))[^/]+/\\.\\.$');
  const leading = vclRegex('^(?:/\\.\\.)+(?=/|$)');
  for (let i = 0; i < MAX_DOT_DOT_ROUNDS; i++) {
    lines.push(`  if (${p} ~ ${dotDot}) {`);
    change('    ', inner, `regsuball(${p}, ${inner}, "")`);
    change('    ', last, `regsub(${p}, ${last}, "/")`);
    change('    ', leading, `regsub(${p}, ${leading}, "")`);
    lines.push(`    if (${p} == "") { set ${p} = "/"; }`);
    lines.push('  }');
  }
  lines.push(`  if (${p} ~ ${dotDot}) { return (synth(400)); }`);
  lines.push('}');
  return lines;
}

/**
 * Absolute-form request-targets (RFC 9112 section 3.2.2): the authority replaces Host and the
 * request continues in origin-form. varnishd already does this for "http://host/path"; this
 * covers "https://", a missing path ("http://host?q") and any case of the scheme.
 */
export function absoluteFormVcl(): string[] {
  return [
    'if (req.url ~ "^(?i)https?://") {',
    '  set req.http.host = regsub(req.url, "^(?i)https?://([^/?#]*).*$", "\\1");',
    '  set req.url = regsub(req.url, "^(?i)https?://[^/?#]*", "");',
    '  if (req.url !~ "^/") { set req.url = "/" + req.url; }',
    '}',
  ];
}

/**
 * Host must be an RFC 3986 authority without userinfo: reg-name or IP literal, optional port.
 * Anything else ("/", "?", "#", "\", "@", spaces...) could travel into a redirect's Location
 * through a wildcard listener, so it is refused. HTTP/1.1 requires Host (RFC 9112 3.2).
 */
export function hostValidationVcl(): string[] {
  return [
    'if (!req.http.host) {',
    '  if (req.proto != "HTTP/1.0") { return (synth(400)); }',
    `} elsif (req.http.host ~ ${vclRegex("[^A-Za-z0-9._~!$&'()*+,;=:%\\[\\]-]|%(?![0-9A-Fa-f]{2})")}) {`,
    '  return (synth(400));',
    `} elsif (req.http.host ~ "[\\[\\]]") {`,
    `  if (req.http.host !~ ${vclRegex('^\\[[0-9A-Fa-f:.]+\\](?::[0-9]*)?$')}) { return (synth(400)); }`,
    `} elsif (req.http.host ~ ${vclRegex(':(?![0-9]*$)')}) {`,
    '  return (synth(400));',
    '}',
  ];
}

/**
 * The x-vgw-* headers carry the router's state through a request; whatever a client or a
 * backend sends under that prefix is dropped, in any letter case. vmod_header renames every
 * such line to one name, which a single unset then removes (an emptied line would stay).
 */
export function stripInternalHeadersVcl(object: 'req' | 'bereq' | 'beresp' | 'resp'): string[] {
  return [`header.regsub(${object}, "^(?i)x-vgw-[^:]*:", "x-vgw-drop:");`, `unset ${object}.http.x-vgw-drop;`];
}

export type NormalizedRoutePath = { ok: true; path: string } | { ok: false; reason: string };

/**
 * The same normalisation in TypeScript, for route match values: a PathPrefix or Exact value is
 * compared with normalised request paths, so it is normalised the same way ("/a//b" matches
 * what "/a/b" matches).
 */
export function normalizePath(path: string): NormalizedRoutePath {
  if (!path.startsWith('/')) return { ok: false, reason: 'path must start with "/"' };
  if (/[\\#]|%(?:00|2f|5c)|%(?![0-9A-Fa-f]{2})/i.test(path)) return { ok: false, reason: 'encoded "/", "\\" or NUL, a "\\", "#" or a malformed "%"' };
  let p = path.replace(/%([0-9A-Fa-f]{2})/g, (enc, hex: string) => {
    const ch = String.fromCharCode(parseInt(hex, 16));
    return UNRESERVED.test(ch) ? ch : `%${hex.toUpperCase()}`;
  });
  p = p.replace(/\/{2,}/g, '/');
  p = p.replace(/\/\.(?=\/)/g, '').replace(/\/\.$/, '/');
  for (let i = 0; i < MAX_DOT_DOT_ROUNDS && /\/\.\.(?:\/|$)/.test(p); i++) {
    p = p.replace(/\/(?!\.\.(?:\/|$))[^/]+\/\.\.(?=\/)/g, '');
    p = p.replace(/\/(?!\.\.(?:\/|$))[^/]+\/\.\.$/, '/');
    p = p.replace(/^(?:\/\.\.)+(?=\/|$)/, '');
    if (p === '') p = '/';
  }
  if (/\/\.\.(?:\/|$)/.test(p)) return { ok: false, reason: `".." nested deeper than ${MAX_DOT_DOT_ROUNDS}` };
  return { ok: true, path: p };
}
