// An implementation of the Gateway API conformance echo backend (upstream `echo-basic`): it answers
// with a JSON description of the request it received, which is what conformance expectations are
// checked against. Only the behaviour the HTTPRoute tests depend on is reproduced.
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { groupRawHeaders } from './headers.ts';
import { parseGoDuration } from './duration.ts';
import { isWebSocketUpgrade, webSocketEcho } from './websocket.ts';
import { createEchoTlsServer, echoTlsInfo, type EchoTlsOptions } from './tls.ts';
import { ECHO_TLS_FLAGS, echoHttpsOptions } from './tls-flags.ts';

export interface EchoOptions {
  port: number;
  address?: string;
  pod?: string;
  namespace?: string;
  ingress?: string;
  service?: string;
  /** Cleartext HTTP/2 port (upstream 3001); not opened when absent. */
  h2cPort?: number;
  /** Print upstream's per-request log lines; mirror checks grep for them upstream. */
  log?: boolean;
  /** Size of the request record ring. */
  keep?: number;
  /** HTTPS port (upstream's TLS mode, 8443); not opened when absent. */
  https?: EchoTlsOptions;
}

export interface RecordedRequest {
  at: number;
  method: string;
  /** Request-target exactly as received (path and query). */
  path: string;
  host: string;
  proto: string;
  headers: Record<string, string[]>;
  remoteAddress: string;
  localPort: number;
  /** Set for a WebSocket handshake on /ws, which is recorded when it arrives (whatever its outcome). */
  upgrade?: 'websocket';
}

export interface EchoServer {
  close(): Promise<void>;
  /** Most recent requests, oldest first; bounded by `keep`. */
  requests: RecordedRequest[];
  url: string;
  h2cUrl?: string;
  httpsUrl?: string;
}

type Req = http.IncomingMessage | http2.Http2ServerRequest;
type Res = http.ServerResponse | http2.Http2ServerResponse;

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

export async function startEchoServer(opts: EchoOptions): Promise<EchoServer> {
  const address = opts.address ?? '127.0.0.1';
  const ctx = {
    namespace: opts.namespace ?? '',
    ingress: opts.ingress ?? '',
    service: opts.service ?? '',
    pod: opts.pod ?? '',
  };
  const keep = opts.keep ?? 10_000;
  const requests: RecordedRequest[] = [];
  // Per-process attempt counters of the /retry/ handler, as upstream keeps them in memory.
  const retryCounts = new Map<string, number>();

  const handle = (req: Req, res: Res, localPort: number, h2cOnly: boolean): void => {
    const uri = req.url ?? '/';
    const remote = `${req.socket?.remoteAddress ?? ''}:${req.socket?.remotePort ?? ''}`;
    if (h2cOnly && req.httpVersionMajor !== 2 && String(req.headers.upgrade ?? '').toLowerCase() !== 'h2c') {
      send(res, 400, { 'Content-Type': 'text/plain; charset=utf-8' }, 'Expected h2c request');
      return;
    }
    const path = routingPath(uri);
    if (path === undefined) {
      send(res, 400, { 'Content-Type': 'text/plain; charset=utf-8' }, '400 Bad Request');
      return;
    }
    if (path === '/health') {
      send(res, 200, { 'Content-Type': 'text/plain; charset=utf-8' }, 'OK');
      return;
    }
    if (path === '/status' || path === '/retry') {
      // Go's ServeMux redirects a subtree root requested without its trailing slash.
      const query = uri.includes('?') ? uri.slice(uri.indexOf('?')) : '';
      send(res, 301, { Location: `${path}/${query}`, 'Content-Type': 'text/html; charset=utf-8' }, '');
      return;
    }
    if (path.startsWith('/status/')) {
      const m = /^\/status\/(\d\d\d)$/.exec(uri);
      send(res, m ? Number(m[1]) : 400, {}, '');
      return;
    }
    if (path === '/ws') {
      // Upstream answers a plain request here with a failed WebSocket handshake.
      send(res, 400, { 'Content-Type': 'text/plain; charset=utf-8' }, 'Bad Request');
      return;
    }
    void (async () => {
      if (path.startsWith('/retry/')) {
        const outcome = await retryOutcome(uri, retryCounts);
        if (outcome === 'reset') {
          (req.socket as net.Socket | undefined)?.resetAndDestroy?.();
          return;
        }
        if (typeof outcome === 'number') {
          send(res, outcome, {}, '');
          return;
        }
      }
      await echo(req, res, uri, remote, localPort);
    })().catch((err: unknown) => {
      if (!res.headersSent) sendError(res, err, 500);
    });
  };

  // One request log for echoed requests and WebSocket handshakes alike: it stands in for the pod
  // log that upstream's mirror checks read.
  const record = (req: Req, uri: string, remote: string, localPort: number, upgrade?: 'websocket'): RecordedRequest => {
    const headers = groupRawHeaders(req.rawHeaders, (n) => n === 'Host' || n.startsWith(':'));
    const host = req.httpVersionMajor === 2
      ? String((req as http2.Http2ServerRequest).authority ?? req.headers[':authority'] ?? '')
      : String(req.headers.host ?? '');
    const proto = `HTTP/${req.httpVersionMajor}.${req.httpVersionMinor}`;
    const entry: RecordedRequest = { at: Date.now(), method: req.method ?? '', path: uri, host, proto, headers, remoteAddress: remote, localPort, ...(upgrade ? { upgrade } : {}) };
    requests.push(entry);
    if (requests.length > keep) requests.splice(0, requests.length - keep);
    return entry;
  };

  const echo = async (req: Req, res: Res, uri: string, remote: string, localPort: number): Promise<void> => {
    if (opts.log) console.log(`Echoing back request made to ${uri} to client (${remote})`);
    const { headers, host, proto } = record(req, uri, remote, localPort);

    const delay = queryValue(uri, 'delay');
    if (delay) {
      let ms: number;
      try {
        ms = parseGoDuration(delay);
      } catch (err) {
        sendError(res, err, 500);
        return;
      }
      if (ms > 0) await sleep(ms);
    }

    const body = {
      path: uri,
      host,
      method: req.method ?? '',
      proto,
      headers: sortKeys(headers),
      namespace: ctx.namespace,
      ingress: ctx.ingress,
      service: ctx.service,
      pod: ctx.pod,
      httpPort: String(localPort),
    };
    const tls = echoTlsInfo(req.socket);
    const out = goJson(tls ? { ...body, tls } : body);
    for (const [name, value] of echoSetHeaders(headers['X-Echo-Set-Header'] ?? [])) res.setHeader(name, value);
    res.setHeader('Content-Type', 'application/json');
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Content-Length', Buffer.byteLength(out));
    res.statusCode = 200;
    res.end(out);
  };

  let httpPort = opts.port;
  const ws = webSocketEcho({ log: opts.log === true });
  // Only WebSocket handshakes on /ws become upgrades; other requests carrying Upgrade are echoed.
  const h1 = http.createServer({ shouldUpgradeCallback: (req) => isWebSocketUpgrade(req, routingPath(req.url ?? '/')) }, (req, res) => handle(req, res, httpPort, false));
  h1.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    record(req, req.url ?? '/', `${socket.remoteAddress ?? ''}:${socket.remotePort ?? ''}`, httpPort, 'websocket');
    ws.handle(req, socket, head);
  });
  // Go's server never closes idle keep-alive connections; a shorter idle timeout here would race
  // with a proxy reusing its pooled connection.
  h1.keepAliveTimeout = 0;
  h1.headersTimeout = 60_000;
  h1.requestTimeout = 0;
  await listen(h1, opts.port, address);
  httpPort = (h1.address() as net.AddressInfo).port;

  let closeH2c: (() => Promise<void>) | undefined;
  let h2cUrl: string | undefined;
  if (opts.h2cPort !== undefined) {
    let port = opts.h2cPort;
    const h2 = http2.createServer((req, res) => handle(req, res, port, true));
    const h1OnH2cPort = http.createServer((req, res) => handle(req, res, port, true));
    const sockets = new Set<net.Socket>();
    const sniffer = net.createServer((socket) => {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
      socket.once('data', (first: Buffer) => {
        socket.pause();
        socket.unshift(first);
        const prior = first.length >= H2_PREFACE.length
          ? first.subarray(0, H2_PREFACE.length).equals(H2_PREFACE)
          : H2_PREFACE.subarray(0, first.length).equals(first);
        if (prior) {
          // The HTTP/2 session drains what is buffered on the socket itself.
          h2.emit('connection', socket);
        } else {
          h1OnH2cPort.emit('connection', socket);
          socket.resume();
        }
      });
    });
    await listen(sniffer, port, address);
    port = (sniffer.address() as net.AddressInfo).port;
    h2cUrl = `http://${address}:${port}`;
    closeH2c = async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => sniffer.close(() => resolve()));
      h1OnH2cPort.closeAllConnections();
      h2.close();
    };
  }

  let httpsServer: ReturnType<typeof createEchoTlsServer> | undefined;
  let httpsUrl: string | undefined;
  if (opts.https) {
    let port = opts.https.port;
    httpsServer = createEchoTlsServer(opts.https, (req, res) => handle(req, res, port, false));
    await listen(httpsServer, port, address);
    port = (httpsServer.address() as net.AddressInfo).port;
    httpsUrl = `https://${address}:${port}`;
  }

  return {
    requests,
    url: `http://${address}:${httpPort}`,
    ...(h2cUrl !== undefined ? { h2cUrl } : {}),
    ...(httpsUrl !== undefined ? { httpsUrl } : {}),
    async close() {
      if (httpsServer) {
        const s = httpsServer;
        const closed = new Promise<void>((resolve) => s.close(() => resolve()));
        s.closeAllConnections();
        await closed;
      }
      const closed = new Promise<void>((resolve) => h1.close(() => resolve()));
      h1.closeAllConnections();
      ws.close();
      await closed;
      await closeH2c?.();
    },
  };
}

function listen(server: net.Server, port: number, address: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, address, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function send(res: Res, status: number, headers: Record<string, string>, body: string): void {
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  if (status >= 200 && status !== 204 && status !== 304) res.setHeader('Content-Length', Buffer.byteLength(body));
  res.statusCode = status;
  res.end(body);
}

function sendError(res: Res, err: unknown, status: number): void {
  const message = err instanceof Error ? err.message : String(err);
  send(res, status, { 'Content-Type': 'application/json', 'X-Content-Type-Options': 'nosniff' }, JSON.stringify({ message }));
}

// The decoded path used for handler selection; upstream collapses `//` first so that such paths
// reach the echo handler instead of a ServeMux redirect. Undefined when the URI is malformed.
export function routingPath(uri: string): string | undefined {
  let target = uri.split('?')[0];
  const abs = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^/]*/.exec(target);
  if (abs) target = target.slice(abs[0].length) || '/';
  let decoded: string;
  try {
    decoded = decodeURIComponent(target);
  } catch {
    return undefined;
  }
  return decoded.replaceAll('//', '/');
}

function queryValue(uri: string, name: string): string | undefined {
  const q = uri.indexOf('?');
  if (q < 0) return undefined;
  return new URLSearchParams(uri.slice(q + 1)).get(name) ?? undefined;
}

// Upstream splits every X-Echo-Set-Header line on ',' and each pair on the first ':'; names keep
// their case, and a repeated name is appended with ','.
export function echoSetHeaders(lines: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of lines) {
    for (const pair of line.split(',')) {
      const trimmed = pair.trim();
      const colon = trimmed.indexOf(':');
      const name = colon < 0 ? trimmed : trimmed.slice(0, colon);
      const value = colon < 0 ? '' : trimmed.slice(colon + 1).trim();
      // Go drops header names that are not valid tokens when writing the response.
      if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name)) continue;
      const prev = out.get(name);
      out.set(name, prev === undefined ? value : `${prev},${value}`);
    }
  }
  return out;
}

async function retryOutcome(uri: string, counts: Map<string, number>): Promise<'echo' | 'reset' | number> {
  const q = new URLSearchParams(uri.includes('?') ? uri.slice(uri.indexOf('?') + 1) : '');
  const uuid = q.get('uuid');
  const succeedAfter = Number(q.get('succeedAfter'));
  if (!uuid || !Number.isInteger(succeedAfter) || succeedAfter < 0) return 400;
  const seen = (counts.get(uuid) ?? 0) + 1;
  counts.set(uuid, seen);
  if (seen > succeedAfter) return 'echo';
  const delay = q.get('delayRetry');
  if (delay) await sleep(Math.max(0, parseGoDuration(delay)));
  const code = q.get('responseCode');
  if (code === null) return 'reset';
  const n = Number(code);
  return Number.isInteger(n) && n >= 100 && n <= 999 ? n : 400;
}

function sortKeys<T>(o: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

// encoding/json's MarshalIndent(v, "", " "), including its HTML-safe escaping.
function goJson(v: unknown): string {
  return JSON.stringify(v, null, 1)
    .replaceAll('<', '\\u003c')
    .replaceAll('>', '\\u003e')
    .replaceAll('&', '\\u0026')
    .replaceAll('\u2028', '\\u2028')
    .replaceAll('\u2029', '\\u2029');
}

export function randomPodName(prefix: string): string {
  const alnum = 'bcdfghjklmnpqrstvwxz2456789';
  const pick = (n: number) => [...randomBytes(n)].map((b) => alnum[b % alnum.length]).join('');
  return `${prefix}-${pick(10)}-${pick(5)}`;
}

/**
 * `vgw echo --port N [--address A] [--pod NAME] [--namespace NS] [--h2c-port N]
 * [--https-port N --tls-cert FILE --tls-key FILE [--tls-client-ca FILE]]`; the pod and namespace
 * default to $POD_NAME and $NAMESPACE, the TLS files to upstream's TLS_SERVER_CERT,
 * TLS_SERVER_PRIVKEY and TLS_CLIENT_CACERTS.
 */
export async function runEchoCommand(argv: string[]): Promise<void> {
  const flags = parseFlags(argv, ['port', 'address', 'pod', 'namespace', 'h2c-port', ...ECHO_TLS_FLAGS]);
  const https = await echoHttpsOptions(flags, process.env);
  const port = Number(flags.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error('echo: --port N is required');
  const h2c = flags['h2c-port'] === undefined ? undefined : Number(flags['h2c-port']);
  if (h2c !== undefined && (!Number.isInteger(h2c) || h2c < 0 || h2c > 65535)) throw new Error('echo: bad --h2c-port');
  const server = await startEchoServer({
    port,
    address: flags.address ?? '127.0.0.1',
    // POD_NAME and NAMESPACE are what the conformance suite's echo Deployments set from the
    // downward API, so this command can stand in for that image unchanged.
    pod: flags.pod ?? process.env.POD_NAME ?? randomPodName('echo'),
    namespace: flags.namespace ?? process.env.NAMESPACE ?? 'default',
    ...(h2c !== undefined ? { h2cPort: h2c } : {}),
    ...(https ? { https } : {}),
    log: true,
  });
  console.log(`Starting server, listening on ${server.url} (http)`);
  if (server.h2cUrl !== undefined) console.log(`Starting server, listening on ${server.h2cUrl} (h2c)`);
  if (server.httpsUrl !== undefined) console.log(`Starting server, listening on ${server.httpsUrl} (https)`);
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  await server.close();
}

function parseFlags(argv: string[], known: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const m = /^--([a-z0-9-]+)(?:=(.*))?$/.exec(arg);
    if (!m || !known.includes(m[1])) throw new Error(`echo: unknown argument ${arg}`);
    const value = m[2] ?? argv[++i];
    if (value === undefined) throw new Error(`echo: --${m[1]} needs a value`);
    out[m[1]] = value;
  }
  return out;
}
