// Location handling as Go's net/http client does it (resp.Location() = req.URL.Parse(loc)), so
// redirect expectations see the same scheme/host/port/path upstream would. WHATWG URL parsing is
// not a substitute: it drops default ports ("https://h:443" has port "" there, "443" in Go).
import type { RedirectTarget } from './compare.ts';

export interface BaseUrl {
  scheme: string;
  /** host[:port] as in the request URL */
  host: string;
  /** escaped path of the request URL */
  path: string;
}

export interface ResolvedLocation extends RedirectTarget {
  /** host[:port] as written */
  authority: string;
  /** escaped path plus query, for following the redirect */
  requestUri: string;
  /** true when the reference carried no scheme (Go keeps a custom Host header then) */
  relative: boolean;
}

export function resolveLocation(loc: string, base: BaseUrl): ResolvedLocation {
  let rest = loc.split('#')[0];
  let scheme = '';
  const sm = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(rest);
  if (sm) {
    scheme = sm[1].toLowerCase();
    rest = rest.slice(sm[0].length);
  }
  let authority: string | undefined;
  if (rest.startsWith('//')) {
    const end = rest.slice(2).search(/[/?]/);
    authority = end < 0 ? rest.slice(2) : rest.slice(2, 2 + end);
    rest = end < 0 ? '' : rest.slice(2 + end);
    const at = authority.lastIndexOf('@');
    if (at >= 0) authority = authority.slice(at + 1);
  }
  const qi = rest.indexOf('?');
  const refPath = qi < 0 ? rest : rest.slice(0, qi);
  const query = qi < 0 ? '' : rest.slice(qi);

  const absolute = scheme !== '' || authority !== undefined;
  const escapedPath = absolute ? resolvePath(refPath, '') : resolvePath(base.path, refPath);
  const host = authority ?? base.host;
  let path: string;
  try {
    path = decodeURIComponent(escapedPath);
  } catch {
    throw new Error(`malformed Location ${JSON.stringify(loc)}`);
  }
  const { hostname, port } = splitHostPort(host);
  return {
    scheme: scheme || base.scheme,
    host: hostname,
    port,
    path,
    authority: host,
    requestUri: (escapedPath || '/') + query,
    relative: scheme === '',
  };
}

/** url.URL.Hostname() and Port(). */
export function splitHostPort(authority: string): { hostname: string; port: string } {
  if (authority.startsWith('[')) {
    const close = authority.indexOf(']');
    const hostname = close < 0 ? authority.slice(1) : authority.slice(1, close);
    const after = close < 0 ? '' : authority.slice(close + 1);
    return { hostname, port: after.startsWith(':') ? after.slice(1) : '' };
  }
  const colon = authority.lastIndexOf(':');
  if (colon < 0) return { hostname: authority, port: '' };
  return { hostname: authority.slice(0, colon), port: authority.slice(colon + 1) };
}

/** Go's net/url resolvePath: merge a reference path with a base path and remove dot segments. */
export function resolvePath(base: string, ref: string): string {
  let full: string;
  if (ref === '') full = base;
  else if (!ref.startsWith('/')) full = base.slice(0, base.lastIndexOf('/') + 1) + ref;
  else full = ref;
  if (full === '') return '';

  let dst = '/';
  let first = true;
  let elem = '';
  let remaining = full;
  let found = true;
  while (found) {
    const i = remaining.indexOf('/');
    found = i >= 0;
    elem = found ? remaining.slice(0, i) : remaining;
    remaining = found ? remaining.slice(i + 1) : '';
    if (elem === '.') {
      first = false;
      continue;
    }
    if (elem === '..') {
      const str = dst.slice(1);
      const index = str.lastIndexOf('/');
      dst = '/';
      if (index === -1) first = true;
      else dst += str.slice(0, index);
    } else {
      if (!first) dst += '/';
      dst += elem;
      first = false;
    }
  }
  if (elem === '.' || elem === '..') dst += '/';
  if (dst.length > 1 && dst[1] === '/') dst = dst.slice(1);
  return dst;
}
