// The TLS terminator's configuration for a routing IR: one frontend per TLS socket, with the
// certificates the IR names read from the Secrets at hand. The IR carries references only, so
// this is the one place where key material joins the configuration, on its way to files only
// the data plane's user can read.
import type { Secret } from '../gatewayapi/types.ts';
import { secretValue, tlsSecretProblem, TLS_CERT_KEY, TLS_KEY_KEY } from '../gatewayapi/certificates.ts';
import { certificateId } from '../ir/certificate-secret.ts';
import type { RoutingIR } from '../ir/types.ts';
import type { HitchFrontend } from '../varnish/hitch.ts';

export interface TlsFrontends {
  frontends: HitchFrontend[];
  pems: Map<string, Buffer>;
  /** Certificates named by the IR that cannot be used now (Secret gone or invalid since the
   *  translation), as "namespace/name: why". Their frontends serve the others. */
  missing: string[];
}

export { certificateId } from '../ir/certificate-secret.ts';

/** `secrets` keyed by "namespace/name". A socket left with no usable certificate gets no frontend. */
export function tlsFrontends(ir: RoutingIR, secrets: ReadonlyMap<string, Secret>): TlsFrontends {
  const pems = new Map<string, Buffer>();
  const missing: string[] = [];
  const frontends: HitchFrontend[] = [];
  for (const socket of ir.sockets) {
    if (!socket.tls) continue;
    const certificates: string[] = [];
    for (const c of socket.tls.certificates) {
      const id = certificateId(c.namespace, c.name);
      if (!pems.has(id)) {
        const secret = secrets.get(`${c.namespace}/${c.name}`);
        const problem = secret ? tlsSecretProblem(secret) : 'Secret not found';
        if (problem || !secret) {
          if (!missing.some((m) => m.startsWith(`${c.namespace}/${c.name}:`))) missing.push(`${c.namespace}/${c.name}: ${problem}`);
          continue;
        }
        const cert = secretValue(secret, TLS_CERT_KEY) as Buffer;
        const key = secretValue(secret, TLS_KEY_KEY) as Buffer;
        pems.set(id, Buffer.concat([cert, Buffer.from(cert.at(-1) === 0x0a ? '' : '\n'), key]));
      }
      certificates.push(id);
    }
    if (certificates.length) frontends.push({ address: socket.address, port: socket.port, certificates });
  }
  return { frontends, pems, missing };
}
