/** Free TCP ports, found by letting the kernel pick one. */
import { createServer } from 'node:net';

/**
 * Returns a port that was free a moment ago. Another process can take it
 * before varnishd binds it, so callers that bind later must retry on failure.
 */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      srv.close(() => {
        if (addr && typeof addr === 'object') resolve(addr.port);
        else reject(new Error('could not determine a free port'));
      });
    });
  });
}

/** Why a socket could not be bound, by `address:port` key (socketKey in ir/types.ts). */
export type UnavailableSockets = Map<string, string>;

/**
 * Tries to bind `address:port` and closes it again at once. Resolves null when the bind
 * worked, otherwise with why not ("in use", "address not available", ...). A port that is
 * free now can still be taken before varnishd binds it; varnishd's own failure covers that.
 */
export function probeBind(address: string, port: number): Promise<string | null> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', (err: NodeJS.ErrnoException) => resolve(bindFailure(err)));
    srv.listen({ host: address, port, exclusive: true }, () => srv.close(() => resolve(null)));
  });
}

function bindFailure(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'EADDRINUSE':
      return 'in use by another process';
    case 'EADDRNOTAVAIL':
      return 'address not available on this host';
    case 'EACCES':
      return 'permission denied (privileged port)';
    default:
      return err.code ?? err.message;
  }
}

/** Probes each socket (in parallel); returns the ones that cannot be bound, keyed by `key`. */
export async function probeSockets<T extends { address: string; port: number }>(
  sockets: readonly T[],
  key: (s: T) => string,
): Promise<UnavailableSockets> {
  const out: UnavailableSockets = new Map();
  const results = await Promise.all(sockets.map((s) => probeBind(s.address, s.port)));
  results.forEach((why, i) => {
    if (why !== null) out.set(key(sockets[i]), why);
  });
  return out;
}
