// The rules and limits a routing value must meet, in one place. The translator applies them to
// Gateway API input, the IR schema to a routing ConfigMap, the VCL compiler and the data plane
// rely on them; each imports them from here so that the three can never disagree. Pure data and
// pure functions: no I/O.

/** The router's per-request state travels in request headers with this prefix; routes cannot name them. */
export const RESERVED_HEADER_PREFIX = 'x-vgw-';
const RESERVED_HEADER = new RegExp(`^${RESERVED_HEADER_PREFIX}`, 'i');

/** Is `name` one of the router's own headers (any case)? */
export function isReservedHeader(name: string): boolean {
  return RESERVED_HEADER.test(name);
}

/** Why a route may not set or remove a reserved header. */
export const RESERVED_HEADER_PROBLEM = `header names starting with "${RESERVED_HEADER_PREFIX}" are reserved for the gateway`;

// Header names become part of VCL identifiers (req.http.NAME), so only characters VCL accepts
// there may pass. HTTP tokens allow a few more (e.g. "." or "!"); those are rejected with a
// clear message rather than silently mangled.
const HEADER_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;

/** Why `name` cannot be used as a header name, or null when it can. */
export function headerNameProblem(name: string): string | null {
  if (HEADER_NAME.test(name)) return null;
  return `header name ${JSON.stringify(name.slice(0, 80))} is not supported: use letters, digits, "-" and "_" (at most 128)`;
}

// NUL ends a C string inside varnishd; the other control characters cannot appear in HTTP
// header values or URLs, so a value holding them could never match and is rejected early.
const CONTROL_CHARACTER = /[\u0000-\u0008\u000a-\u001f\u007f]/;

/** Why `value` cannot be used as a routing value (it holds a control character), or null when it can. */
export function controlCharacterProblem(value: string): string | null {
  const m = CONTROL_CHARACTER.exec(value);
  if (m) return `contains control character U+${m[0].charCodeAt(0).toString(16).padStart(4, '0')}`;
  return null;
}

/** Characters of one user string (header value, path, regex). */
export const MAX_VALUE_LENGTH = 4096;
/** Characters of one regular expression. */
export const MAX_REGEX_LENGTH = 1024;

/** An HTTP query parameter name: an HTTP token of at most 256 characters. */
export const QUERY_NAME = /^[A-Za-z0-9!#$%'*+.^_`|~-]{1,256}$/;

export const METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH']);
export const REDIRECT_CODES: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);
/** varnishd runs with max_retries set to this (GATEWAY_PARAMS); more attempts are refused. */
export const MAX_RETRY_ATTEMPTS = 16;
/** Timeouts above a day are refused: they are almost certainly a unit mistake. */
export const MAX_TIMEOUT_MS = 86_400_000;
/** Retry backoff above a minute is refused. */
export const MAX_BACKOFF_MS = 60_000;
/** CORS maxAge (seconds) above a year is refused. */
export const MAX_CORS_MAX_AGE = 86_400 * 365;
/** backendRef weights. */
export const MAX_WEIGHT = 1_000_000;

// Paths written into a request line or a Location header: RFC 3986 path characters only
// (percent-encode the rest), so nothing a route author writes can split a header, smuggle a
// second request or need escaping on the way out.
export const PATH = /^\/[A-Za-z0-9\-._~!$&'()*+,;=:@%/]*$/;
/** A CORS origin: "*" or scheme://host[:port], host optionally starting with "*.", lowercase. */
export const ORIGIN = /^(?:\*|[a-z][a-z0-9+.-]*:\/\/(?:\*\.)?[a-z0-9]([a-z0-9.-]*[a-z0-9])?(?::[0-9]{1,5})?)$/;
/** An HTTP token (methods in CORS lists). */
export const TOKEN = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;

const LABEL = /^[a-z0-9]+(?:-+[a-z0-9]+)*$/;

/** RFC 1123 DNS name, lowercase, optionally with one leading "*." label. No IP addresses. */
export function validHostname(h: string, allowWildcard: boolean): string | null {
  if (h.length === 0 || h.length > 253) return 'must be 1-253 characters';
  let rest = h;
  if (h.startsWith('*.')) {
    if (!allowWildcard) return 'wildcards are not allowed here';
    rest = h.slice(2);
  }
  const labels = rest.split('.');
  if (labels.some((l) => l.length > 63 || !LABEL.test(l))) {
    return 'must be a lowercase RFC 1123 hostname (letters, digits, "-" and "."), optionally prefixed with "*."';
  }
  if (/^[0-9.]+$/.test(rest)) return 'must not be an IP address';
  return null;
}
