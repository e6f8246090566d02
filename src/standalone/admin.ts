// The admin endpoint: liveness/readiness, a JSON view of what is being served, and Prometheus
// metrics when given a registry.
import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';

/** Anything with a readiness flag; the whole object is served as /status. */
export interface AdminStatus {
  ready: boolean;
}

export function startAdminServer(address: string, port: number, status: () => AdminStatus, metrics?: Registry): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/healthz') {
      const s = status();
      res.writeHead(s.ready ? 200 : 503, { 'content-type': 'text/plain' }).end(s.ready ? 'ok\n' : 'not ready\n');
    } else if (path === '/status') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(`${JSON.stringify(status(), null, 2)}\n`);
    } else if (path === '/metrics' && metrics) {
      metrics.metrics().then(
        (text) => res.writeHead(200, { 'content-type': metrics.contentType }).end(text),
        (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${String(err)}\n`),
      );
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, address, () => resolve(server));
  });
}
