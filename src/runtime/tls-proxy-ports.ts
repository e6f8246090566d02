// Loopback ports of the backend TLS proxy, one per TLS endpoint (tlsProxyKey). A key keeps its
// port for as long as it is in use, so a reload never moves a service that stays (its open
// connections and the VCL naming it are unaffected). New ports are chosen by the kernel (a
// listen on port 0, closed again before the proxy binds it), so they are free when chosen and
// never collide with another process's fixed ports.
import { createServer } from 'node:net';
import { TLS_PROXY_ADDRESS } from '../ir/backend-tls.ts';
import { STUNNEL_LIMITS } from '../varnish/stunnel.ts';

export class TlsProxyPorts {
  private readonly ports = new Map<string, number>();

  get map(): ReadonlyMap<string, number> {
    return this.ports;
  }

  /** Gives every key of `keys` a port and drops the keys not among them. */
  async assign(keys: Iterable<string>): Promise<ReadonlyMap<string, number>> {
    const wanted = new Set(keys);
    if (wanted.size > STUNNEL_LIMITS.services) throw new Error(`${wanted.size} TLS backend endpoints: at most ${STUNNEL_LIMITS.services}`);
    for (const k of [...this.ports.keys()]) if (!wanted.has(k)) this.ports.delete(k);
    const taken = new Set(this.ports.values());
    for (const k of wanted) {
      if (this.ports.has(k)) continue;
      let port = await freePort();
      while (taken.has(port)) port = await freePort();
      taken.add(port);
      this.ports.set(k, port);
    }
    return this.ports;
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, TLS_PROXY_ADDRESS, () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}
