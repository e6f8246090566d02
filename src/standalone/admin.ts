// Admin HTTP endpoints: probes (liveness/readiness), a JSON view of what is being served, and
// Prometheus metrics when given a registry.
//
// Probes carry nothing but a status line, so they can listen wherever the kubelet reaches them
// (the in-pod agent binds them on all addresses). /status and /metrics describe the config and
// its errors; they are served on an address the caller chooses, loopback by default.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';

/** Anything with a readiness flag; the whole object is served as /status. */
export interface AdminStatus {
  ready: boolean;
}

export interface AdminRoutes {
  /** Readiness, for /healthz and /readyz. */
  ready: () => boolean;
  /** Served as /status when given. */
  status?: () => object;
  /** Served as /metrics when given. */
  metrics?: Registry;
}

function handler(routes: AdminRoutes) {
  return (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/healthz' || path === '/readyz') {
      const ready = routes.ready();
      res.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' }).end(ready ? 'ok\n' : 'not ready\n');
    } else if (path === '/status' && routes.status) {
      res.writeHead(200, { 'content-type': 'application/json' }).end(`${JSON.stringify(routes.status(), null, 2)}\n`);
    } else if (path === '/metrics' && routes.metrics) {
      const metrics = routes.metrics;
      metrics.metrics().then(
        (text) => res.writeHead(200, { 'content-type': metrics.contentType }).end(text),
        () => res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics unavailable\n'),
      );
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  };
}

/** Listens on `address:port` (port 0: any free port) with the given routes. */
export function startHttpEndpoint(address: string, port: number, routes: AdminRoutes): Promise<Server> {
  const server = createServer(handler(routes));
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, address, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

/** Everything on one port: /healthz, /readyz, /status and, with a registry, /metrics. */
export function startAdminServer(address: string, port: number, status: () => AdminStatus, metrics?: Registry): Promise<Server> {
  return startHttpEndpoint(address, port, { ready: () => status().ready, status, metrics });
}

/** Probes only: /healthz and /readyz, nothing about the config. */
export function startProbeServer(address: string, port: number, ready: () => boolean): Promise<Server> {
  return startHttpEndpoint(address, port, { ready });
}
