// Upstream's CompareRoundTrip: decides whether one captured round trip satisfies a case
// (the conformance README §4). Pure, so it can be unit-tested without a gateway.
import type { SecretKeyRef, TrafficCase } from './data.ts';

/** What the echo backend reported, parsed from a JSON body (upstream CapturedRequest). */
export interface CapturedRequest {
  path: string;
  host: string;
  method: string;
  proto: string;
  headers: Record<string, string[]>;
  namespace: string;
  pod: string;
  /** The echo's `tls` object, on its HTTPS port only. */
  tls?: { serverName: string; peerCertificates: string[] };
}

export interface RedirectTarget {
  scheme: string;
  host: string;
  port: string;
  path: string;
}

export interface CapturedResponse {
  status: number;
  proto: string;
  /** Lower-case names; one entry per header line, as Go's http.Header holds them. */
  headers: Record<string, string[]>;
  body: string;
  redirect?: RedirectTarget;
}

export interface RoundTrip {
  request: CapturedRequest;
  response: CapturedResponse;
}

/** The URL the client asked for, which is what redirect defaults refer to. */
export interface RequestUrl {
  scheme: string;
  path: string;
}

const REDIRECT_CODES = new Set([300, 301, 302, 303, 304, 305, 307, 308]);
const TIMEOUT_CODES = new Set([408, 504]);

export function isRedirect(status: number): boolean {
  return REDIRECT_CODES.has(status);
}

/** Returns undefined when the round trip satisfies the case, else why not. */
export function compareRoundTrip(c: TrafficCase, url: RequestUrl, rt: RoundTrip, certificateText?: (ref: SecretKeyRef) => string | undefined): string | undefined {
  const { request: got, response: res } = rt;
  const codes = c.response.statusCodes.length ? c.response.statusCodes : [200];
  const statusOk = codes.includes(res.status) || (TIMEOUT_CODES.has(res.status) && codes.some((s) => TIMEOUT_CODES.has(s)));
  if (!statusOk) return `expected status ${codes.join(' or ')}, got ${res.status}${bodyHint(res)}`;

  if (res.status === 200 || res.status === 204) {
    const exp = c.expectedRequest ?? { host: c.request.host, method: c.request.method, path: c.request.path, headers: c.request.headers, sni: c.request.sni, clientCert: c.request.clientCert };
    const method = exp.method || 'GET';
    if (exp.host && exp.host !== got.host) return `expected backend host ${q(exp.host)}, got ${q(got.host)}`;
    const path = exp.path ?? '';
    if (path !== got.path) return `expected backend path ${q(path)}, got ${q(got.path)}`;
    if (method !== got.method) return `expected backend method ${method}, got ${got.method}`;
    if (c.namespace !== got.namespace) return `expected namespace ${q(c.namespace)}, got ${q(got.namespace)}`;

    const reqHeaders = lowerKeys(got.headers);
    for (const [name, want] of Object.entries(exp.headers ?? {})) {
      const have = reqHeaders[name.toLowerCase()];
      if (have === undefined) return `expected request header ${name} at the backend, backend saw ${headerList(got.headers)}`;
      if (have.join(',') !== want) return `expected request header ${name}: ${q(want)} at the backend, got ${q(have.join(','))}`;
    }
    for (const name of exp.absentHeaders ?? []) {
      const have = reqHeaders[name.toLowerCase()];
      if (have !== undefined) return `expected request header ${name} absent at the backend, got ${q(have.join(','))}`;
    }

    const squash = (s: string) => (c.response.ignoreWhitespace ? s.replaceAll(' ', '') : s);
    for (const [name, want] of Object.entries(c.response.headers ?? {})) {
      const have = res.headers[name.toLowerCase()];
      if (have === undefined) return `expected response header ${name}: ${q(want)}, it is missing`;
      if (squash(have.join(',')) !== squash(want)) return `expected response header ${name}: ${q(want)}, got ${q(have.join(','))}`;
    }
    for (const [name, options] of Object.entries(c.response.validHeaderValues ?? {})) {
      const have = res.headers[name.toLowerCase()];
      if (have === undefined) return `expected response header ${name} (one of ${options.map(q).join(', ')}), it is missing`;
      if (!options.some((o) => squash(o) === squash(have.join(',')))) {
        return `expected response header ${name} to be one of ${options.map(q).join(', ')}, got ${q(have.join(','))}`;
      }
    }
    for (const name of c.response.absentHeaders ?? []) {
      const have = res.headers[name.toLowerCase()];
      if (have !== undefined) return `expected response header ${name} absent, got ${q(have.join(','))}`;
    }

    if (!got.pod.startsWith(c.backend)) return `expected backend ${c.backend}, answered by pod ${q(got.pod)}`;

    // Backend-side TLS, as the echo's HTTPS port reports it ("" / none on a plain port).
    if (exp.sni && exp.sni !== (got.tls?.serverName ?? '')) return `expected the gateway to send SNI ${q(exp.sni)} to the backend, echo saw ${got.tls ? q(got.tls.serverName) : 'no TLS'}`;
    if (exp.clientCert) {
      const want = certificateText?.(exp.clientCert);
      if (want === undefined) return `no certificate text for ${exp.clientCert.secret} key ${exp.clientCert.key}`;
      const presented = got.tls?.peerCertificates ?? [];
      if (!presented.includes(want)) return `expected the gateway to present ${exp.clientCert.secret} to the backend, echo saw ${presented.length} certificate(s)${got.tls ? '' : ' (no TLS)'}`;
    }
    return undefined;
  }

  if (isRedirect(res.status) && c.redirectRequest) {
    const want = c.redirectRequest;
    const r = res.redirect;
    if (!r) return `status ${res.status} without a usable Location header`;
    if (want.host && want.host !== r.host) return `expected redirect host ${q(want.host)}, got ${q(r.host)}`;
    if (want.port) {
      if (want.port !== r.port) return `expected redirect port ${q(want.port)}, got ${q(r.port)}`;
    } else {
      const scheme = r.scheme.toLowerCase();
      if (scheme === 'http' && r.port !== '' && r.port !== '80') return `expected redirect port "" or "80" for http, got ${q(r.port)}`;
      if (scheme === 'https' && r.port !== '' && r.port !== '443') return `expected redirect port "" or "443" for https, got ${q(r.port)}`;
    }
    const scheme = want.scheme || url.scheme;
    if (scheme !== r.scheme) return `expected redirect scheme ${q(scheme)}, got ${q(r.scheme)}`;
    const path = want.path || url.path;
    if (path !== r.path) return `expected redirect path ${q(path)}, got ${q(r.path)}`;
  }
  return undefined;
}

function lowerKeys(h: Record<string, string[]>): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [k, v] of Object.entries(h)) (out[k.toLowerCase()] ??= []).push(...v);
  return out;
}

function q(s: string): string {
  return JSON.stringify(s);
}

function headerList(h: Record<string, string[]>): string {
  const names = Object.keys(h);
  return names.length ? names.join(', ') : '(no headers)';
}

function bodyHint(res: CapturedResponse): string {
  const text = res.body.trim().replace(/\s+/g, ' ');
  if (!text) return '';
  return ` (body: ${text.length > 120 ? `${text.slice(0, 117)}...` : text})`;
}
