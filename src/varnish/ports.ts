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
