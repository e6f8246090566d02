// The `/ws` handler of upstream echo-basic: a WebSocket echo on the HTTP port. Upstream serves it
// with golang.org/x/net/websocket and `io.Copy(ws, ws)`; here the `ws` package does the protocol
// and every message goes back as it came (text stays text, binary stays binary).
import type http from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';

/**
 * Whether an HTTP/1.1 request is a WebSocket handshake for the echo. Only these are taken over as
 * upgrades; any other request, `Upgrade` header or not, is served like a plain request, as Go's
 * server does (it knows nothing of upgrades unless a handler takes the connection over).
 */
export function isWebSocketUpgrade(req: http.IncomingMessage, routingPath: string | undefined): boolean {
  return routingPath === '/ws' && req.method === 'GET' && String(req.headers.upgrade ?? '').toLowerCase() === 'websocket';
}

/**
 * x/net/websocket's Handler refuses a handshake whose Origin header is missing or not a request
 * URI (`checkOrigin` -> 403), so a gateway that drops Origin fails upstream; it fails here too.
 */
export function acceptableOrigin(origin: string | undefined): boolean {
  if (!origin) return false;
  if (origin.startsWith('/')) return true;
  return URL.canParse(origin);
}

export interface WebSocketEcho {
  handle(req: http.IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Drops every open echo connection (they are no longer tracked by the HTTP server). */
  close(): void;
}

export function webSocketEcho(opts: { log?: boolean } = {}): WebSocketEcho {
  // Upstream negotiates no extensions; permessage-deflate stays off so frames pass as sent.
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
  wss.on('connection', (ws, req) => {
    if (opts.log) console.log(`established websocket connection ${req.socket.remoteAddress ?? ''}:${req.socket.remotePort ?? ''}`);
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    // A peer that vanishes mid-frame is the peer's problem; the echo has nothing to report.
    ws.on('error', () => ws.terminate());
  });
  return {
    handle(req, socket, head) {
      socket.on('error', () => socket.destroy());
      if (!acceptableOrigin(req.headers.origin)) {
        socket.end('HTTP/1.1 403 Forbidden\r\n\r\n');
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
    },
    close() {
      for (const ws of wss.clients) ws.terminate();
      wss.close();
    },
  };
}
