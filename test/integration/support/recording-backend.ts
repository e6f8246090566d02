// A backend that records every request it receives, body included, and plays the echo backend's
// `/retry/` contract (`?uuid=U&succeedAfter=N&responseCode=C`). The echo backend records only the
// requests it echoes, never the attempts it fails, and never a request body, so retry tests that
// count attempts or check a re-sent body need this one.
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RecordedAttempt {
  method: string;
  /** Request-target exactly as received. */
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface RecordingBackend {
  port: number;
  requests: RecordedAttempt[];
  /** Requests received for one `uuid` query value, failed attempts included. */
  attempts(uuid: string): RecordedAttempt[];
  close(): Promise<void>;
}

export async function startRecordingBackend(address = '127.0.0.1'): Promise<RecordingBackend> {
  const requests: RecordedAttempt[] = [];
  const uuidOf = (url: string) => new URLSearchParams(url.includes('?') ? url.slice(url.indexOf('?') + 1) : '').get('uuid');
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = req.url ?? '/';
      const entry: RecordedAttempt = { method: req.method ?? '', url, headers: req.headers, body: Buffer.concat(chunks).toString() };
      requests.push(entry);
      const q = new URLSearchParams(url.includes('?') ? url.slice(url.indexOf('?') + 1) : '');
      const uuid = q.get('uuid');
      const succeedAfter = Number(q.get('succeedAfter') ?? 0);
      if (uuid !== null) {
        const seen = requests.filter((r) => uuidOf(r.url) === uuid).length;
        if (seen <= succeedAfter) {
          // A body of our own, so a test can tell this answer from one Varnish synthesizes.
          const out = `failing attempt ${seen}\n`;
          res.writeHead(Number(q.get('responseCode') ?? 500), { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(out) }).end(out);
          return;
        }
      }
      const out = JSON.stringify({ method: entry.method, url, body: entry.body });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) }).end(out);
    });
  });
  // As in the echo backend: never close an idle keep-alive connection Varnish may be reusing.
  server.keepAliveTimeout = 0;
  server.requestTimeout = 0;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, address, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    requests,
    attempts: (uuid) => requests.filter((r) => uuidOf(r.url) === uuid),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
