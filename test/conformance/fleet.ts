// The echo pods of the current test, run in-process. Pods of Deployments that stay (the base
// manifests) keep running from one test to the next, as they would in a cluster.
import { startEchoServer, type EchoServer, type RecordedRequest } from '../../src/echo/server.ts';
import { ECHO_H2C_PORT, ECHO_HTTP_PORT, ECHO_HTTPS_PORT, type MountedKey, type Pod } from './world.ts';

interface Running {
  pod: Pod;
  server: EchoServer;
}

export class EchoFleet {
  #running = new Map<string, Running>();

  /**
   * Starts the pods that are missing and stops those no longer wanted. `mounted` reads the
   * Secret/ConfigMap keys a TLS echo serves (certificate, key, client CAs).
   */
  async sync(pods: Pod[], mounted?: (ref: MountedKey) => Buffer): Promise<void> {
    const wanted = new Map(pods.map((p) => [`${p.namespace}/${p.name}`, p]));
    for (const [key, r] of this.#running) {
      if (!wanted.has(key)) {
        this.#running.delete(key);
        await r.server.close();
      }
    }
    for (const [key, pod] of wanted) {
      if (this.#running.has(key)) continue;
      const server = await startEchoServer({
        port: ECHO_HTTP_PORT,
        h2cPort: ECHO_H2C_PORT,
        address: pod.ip,
        pod: pod.name,
        namespace: pod.namespace,
        ...(pod.tls ? { https: httpsOptions(pod, mounted) } : {}),
      }).catch((err: NodeJS.ErrnoException) => {
        // The pod addresses are fixed, so the usual cause is a second run on the same machine.
        if (err.code === 'EADDRINUSE') throw new Error(`echo pod ${key} cannot listen on ${pod.ip}: address in use (is another conformance run going on?)`, { cause: err });
        throw err;
      });
      this.#running.set(key, { pod, server });
    }
  }

  /** Requests echoed by any pod of a Deployment. */
  requestsOf(namespace: string, deployment: string): RecordedRequest[] {
    return [...this.#running.values()]
      .filter((r) => r.pod.namespace === namespace && r.pod.deployment === deployment)
      .flatMap((r) => r.server.requests);
  }

  async closeAll(): Promise<void> {
    const all = [...this.#running.values()];
    this.#running.clear();
    await Promise.allSettled(all.map((r) => r.server.close()));
  }
}

function httpsOptions(pod: Pod, mounted: ((ref: MountedKey) => Buffer) | undefined) {
  const tls = pod.tls!;
  if (!mounted) throw new Error(`echo pod ${pod.namespace}/${pod.name} serves HTTPS, but no Secrets were given to read its certificate from`);
  return { port: ECHO_HTTPS_PORT, cert: mounted(tls.cert), key: mounted(tls.key), ...(tls.clientCa ? { clientCa: mounted(tls.clientCa) } : {}) };
}
