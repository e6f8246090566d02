// Loopback ports of the backend TLS proxy, one per TLS endpoint (tlsProxyKey). A key keeps its
// port for as long as it is in use with the same trust fingerprint (tlsProxyTargets), so a reload
// never moves a service that stays (its open connections and the VCL naming it are unaffected);
// a changed fingerprint moves it, so no request reuses a connection verified by old rules. New ports are chosen by the kernel (a
// listen on port 0, closed again before the proxy binds it), so they are free when chosen and
// never collide with another process's fixed ports.
import { createServer } from 'node:net';
import { TLS_PROXY_ADDRESS } from '../ir/backend-tls.ts';
import { STUNNEL_LIMITS } from '../varnish/stunnel.ts';

export class TlsProxyPorts {
  private readonly ports = new Map<string, number>();
  private readonly fingerprints = new Map<string, string>();

  get map(): ReadonlyMap<string, number> {
    return this.ports;
  }

  /**
   * Gives every key of `wanted` (key -> trust fingerprint) a port, a new one when its
   * fingerprint changed, and drops the keys not among them.
   */
  async assign(wanted: ReadonlyMap<string, string>): Promise<ReadonlyMap<string, number>> {
    if (wanted.size > STUNNEL_LIMITS.services) throw new Error(`${wanted.size} TLS backend endpoints: at most ${STUNNEL_LIMITS.services}`);
    // The ports given up stay taken for this round: a moved key must not land on its old port.
    const taken = new Set(this.ports.values());
    for (const k of [...this.ports.keys()]) {
      if (wanted.get(k) === this.fingerprints.get(k)) continue;
      this.ports.delete(k);
      this.fingerprints.delete(k);
    }
    for (const [k, fingerprint] of wanted) {
      if (this.ports.has(k)) continue;
      let port = await freePort();
      while (taken.has(port)) port = await freePort();
      taken.add(port);
      this.ports.set(k, port);
      this.fingerprints.set(k, fingerprint);
    }
    return this.ports;
  }

  /** Whether `wanted` has a key without a port, or with another fingerprint than its port's. */
  needsAssign(wanted: ReadonlyMap<string, string>): boolean {
    for (const [k, fingerprint] of wanted) if (this.fingerprints.get(k) !== fingerprint) return true;
    return false;
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
