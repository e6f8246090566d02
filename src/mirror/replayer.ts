// Sends mirrored requests to the mirror Service. Stock Varnish cannot send one request to two
// backends, so HTTPRoute RequestMirror is carried out here, from the shared-memory log, after
// varnishd has handled the original request (see docs/mirroring.md).
//
// Fire and forget: replay() never waits and never throws; outcomes go to the `onOutcome`
// callback (metrics). In-flight requests are bounded: beyond the bound a mirror is dropped, so
// a slow mirror Service costs memory and sockets up to the bound, never more.
import { Agent, request } from 'node:http';
import type { Logger } from 'pino';
import type { EndpointMap, IREndpoint } from '../ir/types.ts';
import { mirrorHeaders } from './headers.ts';
import type { MirrorRequest } from './requests.ts';
import { LogThrottle } from './throttle.ts';

/** What became of one mirror: the label values of vgw_mirror_requests_total{outcome}. */
export type MirrorOutcome =
  /** A response came back (any status) and was read to the end. */
  | 'ok'
  /** Connection failure, timeout, or a request node:http refused to send. */
  | 'error'
  /** The mirror Service had no ready endpoint. */
  | 'no_endpoints'
  /** Too many mirrors in flight. */
  | 'dropped'
  /** The request declared a body, which the log does not hold. */
  | 'body_not_mirrored'
  /** The URL or a header was longer than vsl_reclen allowed the log to hold. */
  | 'truncated';

export const MIRROR_OUTCOMES: readonly MirrorOutcome[] = ['ok', 'error', 'no_endpoints', 'dropped', 'body_not_mirrored', 'truncated'];

export interface MirrorReplayerOptions {
  logger: Logger;
  /** Default 256. */
  maxInFlight?: number;
  /** Whole-request deadline, connect to last response byte; default 10 s. */
  timeoutMs?: number;
  onOutcome?: (service: string, outcome: MirrorOutcome, route: string | undefined) => void;
}

export class MirrorReplayer {
  private readonly log: Logger;
  private readonly maxInFlight: number;
  private readonly timeoutMs: number;
  private readonly onOutcome: NonNullable<MirrorReplayerOptions['onOutcome']>;
  private readonly agent: Agent;
  private readonly throttle = new LogThrottle();
  private readonly next = new Map<string, number>();
  private readonly active = new Set<() => void>();
  private endpoints: EndpointMap = new Map();
  private closed = false;

  constructor(opts: MirrorReplayerOptions) {
    this.log = opts.logger.child({ component: 'mirror' });
    this.maxInFlight = opts.maxInFlight ?? 256;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.onOutcome = opts.onOutcome ?? (() => undefined);
    // Keep-alive: mirrored traffic is steady, new connections per request would cost more
    // than the requests. The in-flight bound also bounds the busy sockets. No maxTotalSockets:
    // it counts idle sockets too, so one endpoint's idle connections would hold back requests
    // to another until the server closed them.
    this.agent = new Agent({ keepAlive: true, maxFreeSockets: 64 });
  }

  get inFlight(): number {
    return this.active.size;
  }

  /** Ready endpoints per service key, as of the config that is live. */
  setEndpoints(endpoints: EndpointMap): void {
    this.endpoints = endpoints;
    for (const key of this.next.keys()) if (!endpoints.has(key)) this.next.delete(key);
  }

  replay(req: MirrorRequest): void {
    const { service, route } = req;
    if (this.closed) return;
    if (req.truncated) return this.fail(service, 'truncated', route, 'URL or header longer than vsl_reclen', undefined, 'info');
    const { headers, hasBody } = mirrorHeaders(req.headers);
    if (hasBody) return this.fail(service, 'body_not_mirrored', route, 'request bodies are not in the log', undefined, 'info');
    const endpoint = this.pick(service);
    if (!endpoint) return this.fail(service, 'no_endpoints', route, 'mirror Service has no ready endpoint');
    if (this.active.size >= this.maxInFlight) return this.fail(service, 'dropped', route, `more than ${this.maxInFlight} mirrors in flight`);
    this.send(req, endpoint, headers);
  }

  /** Aborts mirrors in flight and closes idle connections. */
  close(): void {
    this.closed = true;
    for (const abort of [...this.active]) abort();
    this.agent.destroy();
  }

  private pick(service: string): IREndpoint | undefined {
    const eps = this.endpoints.get(service);
    if (!eps || eps.length === 0) return undefined;
    const i = this.next.get(service) ?? 0;
    this.next.set(service, (i + 1) % eps.length);
    return eps[i % eps.length];
  }

  private send(req: MirrorRequest, ep: IREndpoint, headers: string[]): void {
    const { service, route } = req;
    let settled = false;
    const settle = (outcome: MirrorOutcome, err?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      this.active.delete(abort);
      if (outcome === 'ok') this.onOutcome(service, outcome, route);
      else this.fail(service, outcome, route, err?.message ?? 'failed', `${ep.address}:${ep.port}`);
    };
    let r: ReturnType<typeof request> | undefined;
    // close(): shutting down is no outcome of the mirror, nothing is counted.
    const abort = () => {
      settled = true;
      clearTimeout(timer);
      this.active.delete(abort);
      r?.destroy();
    };
    const timer = setTimeout(() => {
      r?.destroy();
      settle('error', new Error(`no complete response in ${this.timeoutMs} ms`));
    }, this.timeoutMs);
    this.active.add(abort);
    try {
      r = request({
        host: ep.address,
        port: ep.port,
        method: req.method,
        path: req.url,
        // Flat array: repeated header names and their order survive.
        headers,
        agent: this.agent,
        // Host, when the client sent one, is in `headers` as VCL left it.
        setHost: !headers.some((h, i) => i % 2 === 0 && h.toLowerCase() === 'host'),
      });
    } catch (err) {
      // Method, path or a header node:http will not send.
      settle('error', err as Error);
      return;
    }
    r.on('response', (res) => {
      res.on('error', (err) => settle('error', err));
      res.on('end', () => settle('ok'));
      res.resume();
    });
    r.on('error', (err) => settle('error', err));
    r.end();
  }

  private fail(service: string, outcome: MirrorOutcome, route: string | undefined, reason: string, endpoint?: string, level: 'info' | 'warn' = 'warn'): void {
    this.onOutcome(service, outcome, route);
    const suppressed = this.throttle.take(`${service} ${outcome}`);
    if (suppressed < 0) return;
    this.log[level]({ event: 'mirror-failed', service, route, outcome, endpoint, err: reason, suppressed }, `mirror to ${service} failed: ${outcome}`);
  }
}
