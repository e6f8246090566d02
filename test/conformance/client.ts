// The request side of upstream's DefaultRoundTripper, reproduced with node:http so that what
// reaches the gateway is what the Go client would send: canonical header names, the Host rule of
// CalculateHost, Go's default User-Agent/Accept-Encoding, a new connection per request, a 10 s
// timeout and Go's redirect following (see the conformance README §4).
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import { canonicalHeaderKey } from '../../src/echo/headers.ts';
import { isRedirect, type CapturedRequest, type CapturedResponse, type RequestUrl, type RoundTrip } from './compare.ts';
import { resolveLocation } from './location.ts';
import { connectTls, type ClientTls } from './tls-client.ts';

export interface Target {
  ip: string;
  port: number;
  scheme: 'http' | 'https';
}

export interface OutgoingRequest {
  target: Target;
  /** '' = the client derives it from the gateway address */
  host: string;
  method: string;
  /** path and query, sent verbatim */
  path: string;
  headers: Record<string, string>;
  unfollowRedirect?: boolean;
  protocol?: string;
  timeoutMs?: number;
  /** Required for an https target: SNI and the trusted certificate. */
  tls?: ClientTls;
}

export interface Exchange extends RoundTrip {
  /** The URL that was asked for, which redirect expectations default to. */
  url: RequestUrl;
}

const MAX_REDIRECTS = 10;

/** upstream CalculateHost: the gateway address without the scheme's default port. */
export function calculateHost(ip: string, port: number, scheme: string): string {
  const host = ip.includes(':') ? `[${ip}]` : ip;
  if ((scheme === 'http' && port === 80) || (scheme === 'https' && port === 443)) return host;
  return `${host}:${port}`;
}

/** Go's Header.Set for every pair, plus the X-Echo-Set-Header line MakeRequest always adds. */
export function wireHeaders(headers: Record<string, string> | undefined, backendSet: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers ?? {})) out[canonicalHeaderKey(k)] = v;
  // Go ranges over a map here, so the pair order is random upstream too.
  const pairs = Object.entries(backendSet ?? {}).map(([k, v]) => `${k}:${v}`);
  for (let i = pairs.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [pairs[i], pairs[j]] = [pairs[j], pairs[i]];
  }
  out['X-Echo-Set-Header'] = pairs.join(',');
  return out;
}

export async function roundTrip(req: OutgoingRequest): Promise<Exchange> {
  const scheme = req.target.scheme;
  if (scheme === 'https' && !req.tls) throw new Error('an https request needs a server name and a trusted certificate');
  const deadline = Date.now() + (req.timeoutMs ?? 10_000);
  const [rawPath, rawQuery] = splitOnce(req.path, '?');
  const urlHost = calculateHost(req.target.ip, req.target.port, scheme);
  const url: RequestUrl = { scheme, path: rawPath };

  let current = { connect: { ip: req.target.ip, port: req.target.port }, urlHost, requestUri: (rawPath || '/') + (rawQuery === undefined ? '' : `?${rawQuery}`), path: rawPath };
  let method = req.method || 'GET';
  let hostHeader = req.host || urlHost;
  for (let hop = 0; ; hop++) {
    const headers = { ...req.headers };
    const res = req.tls
      ? await sendTls(current.connect, req.tls, req.protocol === 'H2', method, hostHeader, current.requestUri, headers, deadline)
      : req.protocol === 'H2C_PRIOR_KNOWLEDGE'
        ? await sendH2c(current.connect, method, hostHeader, current.requestUri, headers, deadline)
        : await sendH1(current.connect, method, hostHeader, current.requestUri, headers, deadline);

    const location = res.headers.location?.[0];
    if (isRedirect(res.status)) {
      if (location === undefined) throw new Error(`${res.status} response without a Location header`);
      const { scheme: s, host, port, path } = resolveLocation(location, { scheme, host: current.urlHost, path: current.path });
      res.redirect = { scheme: s, host, port, path };
    }
    const follow = !req.unfollowRedirect && [301, 302, 303, 307, 308].includes(res.status) && location !== undefined;
    if (!follow) return { url, request: capture(res, req.method || 'GET'), response: res };

    if (hop + 1 >= MAX_REDIRECTS) throw new Error(`stopped after ${MAX_REDIRECTS} redirects`);
    const next = resolveLocation(location, { scheme, host: current.urlHost, path: current.path });
    if (next.scheme !== scheme) throw new Error(`redirect to ${location} not followed: the harness client follows redirects only within the scheme of the request`);
    const connect = next.authority === current.urlHost ? current.connect : loopbackTarget(next.host, next.port, location);
    if ([301, 302, 303].includes(res.status) && method !== 'HEAD') method = 'GET';
    // Go keeps a caller-set Host only across redirects whose Location has no scheme.
    if (!(req.host && next.relative)) hostHeader = next.authority;
    current = { connect, urlHost: next.authority, requestUri: next.requestUri, path: next.path };
  }
}

// A followed redirect may only go somewhere the harness owns; resolving other names would mean
// talking to the internet.
function loopbackTarget(hostname: string, port: string, location: string): { ip: string; port: number } {
  if (net.isIPv4(hostname) && hostname.startsWith('127.')) return { ip: hostname, port: port ? Number(port) : location.startsWith('https:') ? 443 : 80 };
  throw new Error(`redirect to ${location} not followed: host is outside the harness`);
}

function capture(res: CapturedResponse, method: string): CapturedRequest {
  const empty: CapturedRequest = { path: '', host: '', method, proto: '', headers: {}, namespace: '', pod: '' };
  if (res.headers['content-type']?.[0] !== 'application/json') return empty;
  let parsed: unknown;
  try {
    parsed = JSON.parse(res.body);
  } catch (err) {
    throw new Error(`unexpected error reading response: ${(err as Error).message}`);
  }
  const o = (parsed ?? {}) as Record<string, unknown>;
  const str = (k: string) => (typeof o[k] === 'string' ? (o[k] as string) : '');
  const headers: Record<string, string[]> = {};
  if (o.headers && typeof o.headers === 'object') {
    for (const [k, v] of Object.entries(o.headers as Record<string, unknown>)) {
      if (Array.isArray(v)) headers[k] = v.map(String);
    }
  }
  const out: CapturedRequest = { path: str('path'), host: str('host'), method: str('method'), proto: str('proto'), headers, namespace: str('namespace'), pod: str('pod') };
  if (o.tls && typeof o.tls === 'object') {
    const t = o.tls as Record<string, unknown>;
    out.tls = {
      serverName: typeof t.serverName === 'string' ? t.serverName : '',
      peerCertificates: Array.isArray(t.peerCertificates) ? t.peerCertificates.filter((x): x is string => typeof x === 'string') : [],
    };
  }
  return out;
}

function sendH1(to: { ip: string; port: number }, method: string, host: string, requestUri: string, headers: Record<string, string>, deadline: number, over?: Duplex): Promise<CapturedResponse> {
  const wire: [string, string][] = [['Host', host]];
  if (!hasHeader(headers, 'User-Agent')) wire.push(['User-Agent', 'Go-http-client/1.1']);
  for (const [k, v] of Object.entries(headers)) wire.push([k, v]);
  // Go announces an empty body for the methods servers expect one with (transferWriter's
  // shouldSendContentLength); node would send an empty chunked body instead.
  if (['POST', 'PUT', 'PATCH'].includes(method) && !hasHeader(headers, 'Content-Length')) wire.push(['Content-Length', '0']);
  const addedGzip = !hasHeader(headers, 'Accept-Encoding') && !hasHeader(headers, 'Range') && method !== 'HEAD';
  if (addedGzip) wire.push(['Accept-Encoding', 'gzip']);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => request.destroy(new Error('client timeout (10s) awaiting response')), Math.max(1, deadline - Date.now()));
    const request = http.request(
      // Over an established TLS socket, node needs no agent (and then closes after the response).
      over
        ? { method, path: requestUri, headers: wire.flat(), setHost: false, createConnection: () => over }
        : { host: to.ip, port: to.port, method, path: requestUri, headers: wire.flat(), agent: false, setHost: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (e) => {
          clearTimeout(timer);
          reject(e);
        });
        res.on('end', () => {
          clearTimeout(timer);
          try {
            resolve(finish(res.statusCode ?? 0, `HTTP/${res.httpVersion}`, res.rawHeaders, Buffer.concat(chunks), addedGzip));
          } catch (e) {
            reject(e);
          }
        });
      },
    );
    request.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    request.end();
  });
}

function sendH2c(to: { ip: string; port: number }, method: string, host: string, requestUri: string, headers: Record<string, string>, deadline: number, over?: Duplex): Promise<CapturedResponse> {
  const addedGzip = !hasHeader(headers, 'Accept-Encoding') && !hasHeader(headers, 'Range') && method !== 'HEAD';
  const h2headers: http2.OutgoingHttpHeaders = { ':method': method, ':path': requestUri, ':authority': host, ':scheme': over ? 'https' : 'http' };
  if (!hasHeader(headers, 'User-Agent')) h2headers['user-agent'] = 'Go-http-client/2.0';
  for (const [k, v] of Object.entries(headers)) h2headers[k.toLowerCase()] = v;
  if (addedGzip) h2headers['accept-encoding'] = 'gzip';
  return new Promise((resolve, reject) => {
    const session = http2.connect(`${over ? 'https' : 'http'}://${to.ip.includes(':') ? `[${to.ip}]` : to.ip}:${to.port}`, over ? { createConnection: () => over } : {});
    const fail = (e: Error) => {
      clearTimeout(timer);
      session.destroy();
      reject(e);
    };
    const timer = setTimeout(() => fail(new Error('client timeout (10s) awaiting response')), Math.max(1, deadline - Date.now()));
    session.on('error', fail);
    const stream = session.request(h2headers, { endStream: true });
    let status = 0;
    const raw: string[] = [];
    stream.on('response', (h) => {
      status = Number(h[':status']);
      for (const [k, v] of Object.entries(h)) {
        if (k.startsWith(':') || v === undefined) continue;
        for (const one of Array.isArray(v) ? v : [String(v)]) raw.push(k, one);
      }
    });
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('error', fail);
    stream.on('end', () => {
      clearTimeout(timer);
      session.close();
      try {
        resolve(finish(status, 'HTTP/2.0', raw, Buffer.concat(chunks), addedGzip));
      } catch (e) {
        reject(e);
      }
    });
  });
}

/**
 * HTTPS: HTTP/1.1 over TLS; with `h2`, ALPN offers h2 and http/1.1 and the request goes as
 * HTTP/2 only if the server picks h2 (as Go's transport does when it may use HTTP/2).
 */
async function sendTls(to: { ip: string; port: number }, tlsOpts: ClientTls, h2: boolean, method: string, host: string, requestUri: string, headers: Record<string, string>, deadline: number): Promise<CapturedResponse> {
  const socket = await connectTls(to, h2 ? { ...tlsOpts, alpn: ['h2', 'http/1.1'] } : tlsOpts, deadline);
  return socket.alpnProtocol === 'h2' ? sendH2c(to, method, host, requestUri, headers, deadline, socket) : sendH1(to, method, host, requestUri, headers, deadline, socket);
}

function finish(status: number, proto: string, rawHeaders: string[], body: Buffer, addedGzip: boolean): CapturedResponse {
  const headers: Record<string, string[]> = {};
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) (headers[rawHeaders[i].toLowerCase()] ??= []).push(rawHeaders[i + 1]);
  let text = body;
  // Go's transport undoes the gzip it asked for and hides that it did.
  if (addedGzip && headers['content-encoding']?.[0]?.toLowerCase() === 'gzip') {
    text = gunzipSync(body);
    delete headers['content-encoding'];
    delete headers['content-length'];
  }
  return { status, proto, headers, body: text.toString('utf8') };
}

function hasHeader(h: Record<string, string>, name: string): boolean {
  const lower = name.toLowerCase();
  return Object.keys(h).some((k) => k.toLowerCase() === lower);
}

function splitOnce(s: string, sep: string): [string, string | undefined] {
  const i = s.indexOf(sep);
  return i < 0 ? [s, undefined] : [s.slice(0, i), s.slice(i + 1)];
}
