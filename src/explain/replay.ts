// The request through the real thing: the VCL the compiler generates for the config, loaded in
// a throwaway varnishd, with one stub HTTP server per Service that has ready endpoints (so a
// Service without any still answers 500, as it would). The stub tells which Service the request
// reached and how it arrived (URL and headers after filters); the client sees the response.
import { mkdtemp, rm, chmod } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { serviceKey, type EndpointMap, type RoutingIR } from '../ir/types.ts';
import { compileConfig } from '../pipeline/render.ts';
import { varnishdParams } from '../runtime/data-plane.ts';
import { Varnishd } from '../varnish/varnishd.ts';
import type { ExplainRequest } from './request.ts';

export interface Observation {
  status: number;
  /** Response headers as the client got them, in order. */
  headers: [string, string][];
  /** The Service whose stub got the request ("namespace/name:port"), if one did. */
  backend?: { service: string; method: string; url: string; headers: [string, string][] };
}

interface Stub {
  service: string;
  server: http.Server;
  port: number;
  last: Observation['backend'] | undefined;
}

/** Most bytes of a stub's or the gateway's answer kept; explain needs the head, not the body. */
const MAX_BODY = 64 * 1024;

export class Replayer {
  readonly #ir: RoutingIR;
  readonly #endpoints: EndpointMap;
  #stubs: Stub[] = [];
  #varnishd: Varnishd | undefined;
  #workDir = '';
  #ports = new Map<string, number>();

  constructor(ir: RoutingIR, endpoints: EndpointMap) {
    this.#ir = ir;
    this.#endpoints = endpoints;
  }

  /** Starts the stubs and varnishd with the config's VCL (one VCL, no shards). */
  async start(): Promise<void> {
    const stubEndpoints: EndpointMap = new Map();
    for (const svc of this.#ir.services) {
      const key = serviceKey(svc);
      if (!(this.#endpoints.get(key)?.length) || stubEndpoints.has(key)) continue;
      const stub = await startStub(key);
      this.#stubs.push(stub);
      stubEndpoints.set(key, [{ address: '127.0.0.1', port: stub.port }]);
    }
    const config = compileConfig(this.#ir, stubEndpoints, { shards: 1 });
    this.#workDir = await mkdtemp(path.join(tmpdir(), 'vgw-explain-'));
    // varnishd's worker drops privileges when started as root and must read its files.
    await chmod(this.#workDir, 0o755);
    this.#varnishd = new Varnishd({
      listeners: this.#ir.sockets.map((s) => ({ name: s.name, address: '127.0.0.1', port: 0 })),
      workDir: this.#workDir,
      vcl: config.vcl,
      params: varnishdParams().params,
      storage: 'malloc,16m',
      logger: pino({ level: 'silent' }),
      restartManager: false,
    });
    await this.#varnishd.start();
    for (const l of await this.#varnishd.listenAddresses()) this.#ports.set(l.name, l.port);
  }

  async send(req: ExplainRequest, socket: string): Promise<Observation> {
    const port = this.#ports.get(socket);
    if (port === undefined) throw new Error(`socket ${socket} is not listening`);
    for (const s of this.#stubs) s.last = undefined;
    const { status, headers } = await rawRequest(port, req);
    const hit = this.#stubs.find((s) => s.last !== undefined);
    return { status, headers, ...(hit?.last ? { backend: hit.last } : {}) };
  }

  async stop(): Promise<void> {
    await this.#varnishd?.stop().catch(() => undefined);
    await Promise.all(this.#stubs.map((s) => new Promise<void>((resolve) => s.server.close(() => resolve()))));
    this.#stubs = [];
    if (this.#workDir) await rm(this.#workDir, { recursive: true, force: true });
  }
}

function startStub(service: string): Promise<Stub> {
  return new Promise((resolve, reject) => {
    const stub: Stub = { service, server: http.createServer(), port: 0, last: undefined };
    stub.server.on('request', (req, res) => {
      const headers: [string, string][] = [];
      for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) headers.push([req.rawHeaders[i], req.rawHeaders[i + 1]]);
      stub.last = { service, method: req.method ?? '', url: req.url ?? '', headers };
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(`reached ${service}\n`);
      });
    });
    // The generated VCL uses Connection: close for WebSocket only; keep-alive is fine here.
    stub.server.once('error', reject);
    stub.server.listen(0, '127.0.0.1', () => {
      stub.port = (stub.server.address() as net.AddressInfo).port;
      resolve(stub);
    });
  });
}

/** The request written as given (method, target, Host, headers), over a fresh connection. */
function rawRequest(port: number, req: ExplainRequest): Promise<{ status: number; headers: [string, string][] }> {
  return new Promise((resolve, reject) => {
    const lines = [`${req.method} ${req.path} HTTP/1.1`, `Host: ${req.host}`, ...req.headers.map(([n, v]) => `${n}: ${v}`), 'Connection: close', '', ''];
    const socket = net.connect({ host: '127.0.0.1', port });
    let data = Buffer.alloc(0);
    socket.setTimeout(30_000, () => socket.destroy(new Error('no answer from varnishd within 30 s')));
    socket.on('connect', () => socket.write(lines.join('\r\n'), 'latin1'));
    socket.on('data', (chunk: Buffer) => {
      if (data.length < MAX_BODY) data = Buffer.concat([data, chunk]);
      const head = data.indexOf('\r\n\r\n');
      if (head >= 0) {
        socket.destroy();
        resolve(parseHead(data.subarray(0, head).toString('latin1')));
      }
    });
    socket.on('error', reject);
    socket.on('close', () => reject(new Error('varnishd closed the connection without a response')));
  });
}

function parseHead(head: string): { status: number; headers: [string, string][] } {
  const [statusLine, ...rest] = head.split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
  if (!m) throw new Error(`not an HTTP response: ${JSON.stringify(statusLine)}`);
  const headers = rest.map((l): [string, string] => {
    const at = l.indexOf(':');
    return [l.slice(0, at), l.slice(at + 1).trim()];
  });
  return { status: Number(m[1]), headers };
}
