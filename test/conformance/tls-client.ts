// The TLS side of upstream's round tripper: SNI = the case's serverName, the one trusted root is
// the certificate of the named Secret (plus a client certificate when a case gives one), and the
// server name is checked against the certificate's DNS names as Go's crypto/x509 does. Failures
// describe the certificate the gateway served, so a wrong SNI choice is visible in the report.
import { X509Certificate } from 'node:crypto';
import tls from 'node:tls';

export interface ClientTls {
  /** SNI, and the name the server certificate must cover. */
  serverName: string;
  /** PEM of the only trusted root. */
  trusted: string;
  /** Presented when the server asks for one. */
  clientCert?: { cert: string; key: string };
  /** ALPN protocols offered, most preferred first; none when absent (Go's default with a custom TLS config). */
  alpn?: string[];
}

/**
 * Opens a verified TLS connection. Resolves once the handshake is done and the certificate is
 * accepted; rejects with what was served otherwise.
 */
export function connectTls(to: { ip: string; port: number }, opts: ClientTls, deadline: number): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: to.ip,
      port: to.port,
      servername: opts.serverName,
      ca: [opts.trusted],
      // Verified below, so that a refusal can say what the gateway served; node's own name check
      // refuses wildcards Go accepts (`*.org`), so Go's rule is applied instead.
      rejectUnauthorized: false,
      checkServerIdentity: () => undefined,
      ...(opts.clientCert ? { cert: opts.clientCert.cert, key: opts.clientCert.key } : {}),
      ...(opts.alpn ? { ALPNProtocols: opts.alpn } : {}),
    });
    const timer = setTimeout(() => fail(new Error('client timeout (10s) during the TLS handshake')), Math.max(1, deadline - Date.now()));
    const fail = (e: Error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(e);
    };
    socket.once('error', fail);
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      socket.off('error', fail);
      const peer = socket.getPeerX509Certificate();
      const problem = !socket.authorized
        ? `certificate not trusted (${String(socket.authorizationError)})`
        : peer && !certificateCoversName(peer, opts.serverName)
          ? `certificate is not valid for ${opts.serverName}`
          : undefined;
      if (problem) {
        socket.destroy();
        reject(new Error(`tls: ${problem}; served ${describeCertificate(peer)}`));
        return;
      }
      resolve(socket);
    });
  });
}

/** Go's VerifyHostname for a DNS name: the certificate's DNS SANs only (no CN fallback). */
export function certificateCoversName(cert: X509Certificate, name: string): boolean {
  const host = name.toLowerCase().replace(/\.$/, '');
  const dnsNames = (cert.subjectAltName ?? '')
    .split(', ')
    .filter((e) => e.startsWith('DNS:'))
    .map((e) => e.slice(4).toLowerCase());
  return dnsNames.some((pattern) => matchHostname(pattern.replace(/\.$/, ''), host));
}

/** A leading "*" label stands for exactly one non-empty label, as in Go's matchHostnames. */
export function matchHostname(pattern: string, host: string): boolean {
  if (pattern === '' || host === '') return false;
  const p = pattern.split('.');
  const h = host.split('.');
  if (p.length !== h.length) return false;
  return p.every((label, i) => (i === 0 && label === '*' ? h[0] !== '' : label === h[i]));
}

export function describeCertificate(cert: X509Certificate | undefined): string {
  if (!cert) return 'no certificate';
  return `certificate subject "${cert.subject.replace(/\n/g, ', ')}", SANs "${cert.subjectAltName ?? ''}", sha256 ${cert.fingerprint256.slice(0, 23)}…`;
}
