// The TLS terminator's configuration for a routing IR: one frontend per TLS socket, with the
// certificates the IR names read from the Secrets at hand. The IR carries references only, so
// this is the one place where key material joins the configuration, on its way to files only
// the data plane's user can read.
import { createHash } from 'node:crypto';
import type { ConfigMap, Secret } from '../gatewayapi/types.ts';
import { caBundlePem, caBundleProblem } from '../gatewayapi/frontend-tls.ts';
import { secretValue, tlsSecretProblem, TLS_CERT_KEY, TLS_KEY_KEY } from '../gatewayapi/certificates.ts';
import { certificateId } from '../ir/certificate-secret.ts';
import type { RoutingIR } from '../ir/types.ts';
import type { HitchFrontend } from '../varnish/hitch.ts';

export interface TlsFrontends {
  frontends: HitchFrontend[];
  pems: Map<string, Buffer>;
  /** Client CA bundles by id (HitchFrontend.clientVerify.ca): the ca.crt of every ConfigMap a
   *  socket's validation names, one after the other. */
  caBundles: Map<string, Buffer>;
  /** Certificates named by the IR that cannot be used now (Secret gone or invalid since the
   *  translation), as "namespace/name: why". Their frontends serve the others. */
  missing: string[];
}

export { certificateId } from '../ir/certificate-secret.ts';

/**
 * `secrets` and `configMaps` keyed by "namespace/name". A socket left with no usable certificate
 * gets no frontend; so does one whose client validation has no usable CA bundle left: it is
 * never served without the validation its Gateway asks for.
 */
export function tlsFrontends(ir: RoutingIR, secrets: ReadonlyMap<string, Secret>, configMaps: ReadonlyMap<string, ConfigMap> = new Map()): TlsFrontends {
  const pems = new Map<string, Buffer>();
  const caBundles = new Map<string, Buffer>();
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
    if (!certificates.length) continue;
    const frontend: HitchFrontend = { address: socket.address, port: socket.port, certificates };
    const validation = socket.tls.clientValidation;
    if (validation) {
      const bundle: Buffer[] = [];
      for (const c of validation.caCertificates) {
        const cm = configMaps.get(`${c.namespace}/${c.name}`);
        const problem = cm ? caBundleProblem(cm) : 'ConfigMap not found';
        if (problem || !cm) {
          if (!missing.some((m) => m.startsWith(`${c.namespace}/${c.name}:`))) missing.push(`${c.namespace}/${c.name}: ${problem}`);
          continue;
        }
        bundle.push(caBundlePem(cm));
      }
      if (!bundle.length) continue;
      const pem = Buffer.concat(bundle);
      const id = `ca-${createHash('sha256').update(pem).digest('hex').slice(0, 32)}`;
      caBundles.set(id, pem);
      frontend.clientVerify = { mode: validation.mode === 'AllowValidOnly' ? 'required' : 'optional', ca: id };
    }
    const options = socket.tls.options;
    if (options?.minVersion) frontend.minVersion = options.minVersion;
    if (options?.ciphers) frontend.ciphers = options.ciphers;
    if (options?.cipherSuites) frontend.cipherSuites = options.cipherSuites;
    frontends.push(frontend);
  }
  return { frontends, pems, caBundles, missing };
}
