// HTTPRouteBackendProtocolWebSocket's procedure (cases.json `websocketEcho`): dial a WebSocket
// through the gateway, exchange a text and a binary message with the echo backend's /ws handler,
// and require 3 such rounds in a row within 30 s. Upstream dials with golang.org/x/net/websocket;
// the `ws` package plays that client here.
import WebSocket from 'ws';
import type { TrafficTest } from './data.ts';
import type { Target } from './client.ts';
import { awaitConvergence, describeError, type ConvergenceOptions } from './converge.ts';
import type { CaseResult } from './cases.ts';

export type WebSocketStep = { send: 'text'; payload: string } | { send: 'binary'; payload: Buffer };

export interface WebSocketSpec {
  /** `ws://{gwAddr}/ws` with the placeholder still in */
  url: string;
  origin: string;
  steps: WebSocketStep[];
}

// t.Name() of upstream's subtest when the suite runs as TestConformance (spaces become '_').
const SUBTEST = 'websocket_connection_should_reach_backend';

/** Reads the procedural block; every step expects its own payload back, as upstream's do. */
export function websocketSpec(test: TrafficTest): WebSocketSpec {
  const p = test.procedural ?? { type: '' };
  const steps: WebSocketStep[] = [];
  for (const s of (p.steps ?? []) as Record<string, unknown>[]) {
    if (typeof s.sendText === 'string') {
      if (s.expectText !== s.sendText) throw new Error(`${test.name}: step expects ${JSON.stringify(s.expectText)} back for ${JSON.stringify(s.sendText)}`);
      steps.push({ send: 'text', payload: s.sendText });
    } else if (Array.isArray(s.sendBinary)) {
      if (JSON.stringify(s.expectBinary) !== JSON.stringify(s.sendBinary)) throw new Error(`${test.name}: a binary step expects something other than its own payload back`);
      steps.push({ send: 'binary', payload: Buffer.from(s.sendBinary as number[]) });
    } else {
      throw new Error(`${test.name}: unknown WebSocket step ${JSON.stringify(s)}`);
    }
  }
  if (!steps.length) throw new Error(`${test.name}: no WebSocket steps`);
  return { url: typeof p.url === 'string' ? p.url : 'ws://{gwAddr}/ws', origin: `ws://gateway/TestConformance/${test.name}/${SUBTEST}`, steps };
}

/**
 * The URL to dial and the Host header x/net/websocket sends: the URL's authority verbatim, port
 * included (upstream's gwAddr is always host:port). WHATWG URL parsing would drop ':80'.
 */
export function dialTarget(spec: WebSocketSpec, target: Target): { url: string; host: string } {
  const gwAddr = `${target.ip.includes(':') ? `[${target.ip}]` : target.ip}:${target.port}`;
  const url = spec.url.replace('{gwAddr}', gwAddr);
  const m = /^wss?:\/\/([^/?#]+)/.exec(url);
  if (!m) throw new Error(`not a WebSocket URL: ${url}`);
  return { url, host: m[1] };
}

/** One dial + exchange; undefined when every step got its payload back, else why not. */
export async function websocketRound(spec: WebSocketSpec, target: Target, timeoutMs = 10_000): Promise<string | undefined> {
  const { url, host } = dialTarget(spec, target);
  const ws = new WebSocket(url, { origin: spec.origin, headers: { Host: host }, perMessageDeflate: false, handshakeTimeout: timeoutMs, followRedirects: false });
  const inbox: { data: Buffer; isBinary: boolean }[] = [];
  let waiter: (() => void) | undefined;
  let ended: string | undefined;
  const wake = () => {
    waiter?.();
    waiter = undefined;
  };
  ws.on('message', (data, isBinary) => {
    inbox.push({ data: toBuffer(data), isBinary });
    wake();
  });
  ws.on('unexpected-response', (req, res) => {
    ended = `handshake answered with HTTP ${res.statusCode}`;
    req.destroy();
    wake();
  });
  ws.on('error', (err) => {
    ended ??= `failed to dial or read: ${describeError(err)}`;
    wake();
  });
  ws.on('close', (code) => {
    ended ??= `connection closed (${code})`;
    wake();
  });
  const timer = setTimeout(() => {
    ended ??= `no answer within ${timeoutMs / 1000} s`;
    wake();
  }, timeoutMs);
  const settle = () => new Promise<void>((resolve) => (waiter = resolve));

  try {
    while (ws.readyState === WebSocket.CONNECTING && ended === undefined) {
      ws.once('open', wake);
      await settle();
    }
    for (const step of spec.steps) {
      if (ended !== undefined) return ended;
      ws.send(step.payload, { binary: step.send === 'binary' });
      while (!inbox.length && ended === undefined) await settle();
      const reply = inbox.shift();
      if (!reply) return `failed to receive the ${step.send} reply: ${ended}`;
      // Upstream receives with websocket.Message into a string or []byte, which takes the payload
      // of either frame type; so only the payload is compared.
      const want = step.send === 'text' ? Buffer.from(step.payload, 'utf8') : step.payload;
      if (!reply.data.equals(want)) return `unexpected ${step.send} reply: want ${show(step.send, want)}, got ${show(step.send, reply.data)}`;
    }
    return undefined;
  } finally {
    clearTimeout(timer);
    await closeQuietly(ws);
  }
}

export async function websocketEcho(test: TrafficTest, target: Target, convergence: ConvergenceOptions): Promise<CaseResult> {
  const name = 'websocket connection should reach backend';
  let spec: WebSocketSpec;
  try {
    spec = websocketSpec(test);
  } catch (err) {
    return { name, ok: false, attempts: 0, detail: (err as Error).message };
  }
  const r = await awaitConvergence(() => websocketRound(spec, target), convergence);
  return r.ok ? { name, ok: true, attempts: r.attempts } : { name, ok: false, attempts: r.attempts, detail: `not consistent within ${Math.round(convergence.timeoutMs / 1000)} s: ${r.lastFailure}` };
}

function toBuffer(data: WebSocket.RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

function show(kind: 'text' | 'binary', b: Buffer): string {
  return kind === 'text' ? JSON.stringify(b.toString('utf8')) : `[${[...b].join(',')}]`;
}

// Like upstream's deferred ws.Close(): send a close frame, and do not let a peer that never
// answers it hold the socket open.
async function closeQuietly(ws: WebSocket): Promise<void> {
  if (ws.readyState === WebSocket.CLOSED) return;
  if (ws.readyState !== WebSocket.OPEN) {
    ws.terminate();
    return;
  }
  const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
  ws.close(1000);
  const timer = setTimeout(() => ws.terminate(), 1000);
  await closed;
  clearTimeout(timer);
}
