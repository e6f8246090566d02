// Listener tls.options: the keys vgw reads, each checked so that a value reaching the TLS
// terminator cannot make it refuse its whole configuration. A key we do not know is an error,
// never ignored: an option that silently did nothing could leave TLS weaker than its author
// believes. Pure.
import { getCiphers } from 'node:tls';
import { IR_LIMITS } from '../ir/schema.ts';
import type { IRTLSOptions } from '../ir/types.ts';

export const TLS_OPTION_PREFIX = 'gateway.vgw.dev/';
export const MIN_TLS_VERSION_OPTION = `${TLS_OPTION_PREFIX}min-tls-version`;
export const CIPHERS_OPTION = `${TLS_OPTION_PREFIX}ciphers`;
export const CIPHER_SUITES_OPTION = `${TLS_OPTION_PREFIX}cipher-suites`;

export type TlsOptionsResult = { ok: true; options: IRTLSOptions } | { ok: false; message: string };

// OpenSSL's names as this process's OpenSSL knows them (lowercase): TLS 1.3 suites start with
// "tls_", the rest are TLS 1.2 ciphers. An unknown name would make the terminator fail to load.
const KNOWN = new Set(getCiphers());
const TLS13_SUITES = new Map([...KNOWN].filter((c) => c.startsWith('tls_')).map((c) => [c, c.toUpperCase()]));
const CIPHER_LIST = /^[A-Za-z0-9_-]+(?::[A-Za-z0-9_-]+)*$/;

/** Parses one listener's tls.options. The first problem found names its key. */
export function parseTlsOptions(raw: Readonly<Record<string, string>> | undefined): TlsOptionsResult {
  const options: IRTLSOptions = {};
  for (const [key, value] of Object.entries(raw ?? {}).sort(([a], [b]) => (a < b ? -1 : 1))) {
    const bad = (why: string): TlsOptionsResult => ({ ok: false, message: `tls.options ${JSON.stringify(key)}: ${why}` });
    if (key === MIN_TLS_VERSION_OPTION) {
      if (value !== 'TLSv1.2' && value !== 'TLSv1.3') return bad(`must be TLSv1.2 or TLSv1.3, not ${JSON.stringify(value.slice(0, 40))}`);
      options.minVersion = value;
    } else if (key === CIPHERS_OPTION || key === CIPHER_SUITES_OPTION) {
      const list = cipherList(value, key === CIPHER_SUITES_OPTION);
      if (typeof list === 'string') return bad(list);
      if (key === CIPHERS_OPTION) options.ciphers = list;
      else options.cipherSuites = list;
    } else {
      return bad(`not supported (supported: ${[MIN_TLS_VERSION_OPTION, CIPHERS_OPTION, CIPHER_SUITES_OPTION].join(', ')})`);
    }
  }
  return { ok: true, options };
}

/** The names of a colon-separated list, or why it is refused. */
function cipherList(value: string, tls13: boolean): string[] | string {
  if (!CIPHER_LIST.test(value)) return 'must be cipher names separated by ":" (letters, digits, "-" and "_"; no OpenSSL keywords or "!")';
  const names = value.split(':');
  if (names.length > IR_LIMITS.ciphers) return `at most ${IR_LIMITS.ciphers} names`;
  if (new Set(names.map((n) => n.toLowerCase())).size !== names.length) return 'lists a name twice';
  for (const n of names) {
    const lower = n.toLowerCase();
    if (tls13 ? !TLS13_SUITES.has(lower) : !KNOWN.has(lower) || lower.startsWith('tls_')) {
      return `${JSON.stringify(n.slice(0, 64))} is not a known TLS ${tls13 ? '1.3 cipher suite' : '1.2 cipher'}${tls13 ? ` (known: ${[...TLS13_SUITES.values()].join(', ')})` : ''}`;
    }
  }
  // TLS 1.3 suite names are written in upper case (TLS_AES_128_GCM_SHA256); TLS 1.2 cipher names
  // are OpenSSL's (ECDHE-RSA-AES128-GCM-SHA256), also upper case.
  return names.map((n) => n.toUpperCase());
}

/** Two listeners' options are the same (they must be, to share one address:port). */
export function sameTlsOptions(a: IRTLSOptions | undefined, b: IRTLSOptions | undefined): boolean {
  return JSON.stringify(normalize(a)) === JSON.stringify(normalize(b));
}

function normalize(o: IRTLSOptions | undefined): unknown[] {
  return [o?.minVersion ?? 'TLSv1.2', o?.ciphers ?? null, o?.cipherSuites ?? null];
}
