// The echo's HTTPS port, as upstream's TLS mode serves it to the backend-TLS tests: what the
// gateway's TLS handshake looked like (version, SNI, cipher, the client certificates it
// presented), reported in the echo body's `tls` object.
import type http from 'node:http';
import https from 'node:https';
import type { TLSSocket } from 'node:tls';

export interface EchoTlsOptions {
  port: number;
  cert: Buffer;
  key: Buffer;
  /**
   * Client CAs: a client certificate is asked for; a connection without one is served, one
   * whose certificate does not verify is closed before any request is read.
   */
  clientCa?: Buffer;
}

export interface EchoTlsInfo {
  version: string;
  serverName: string;
  cipherSuite: string;
  peerCertificates?: string[];
}

/** An HTTPS server for `handler` with the options above (not listening yet). */
export function createEchoTlsServer(opts: EchoTlsOptions, handler: (req: http.IncomingMessage, res: http.ServerResponse) => void): https.Server {
  const server = https.createServer(
    {
      cert: opts.cert,
      key: opts.key,
      ALPNProtocols: ['http/1.1'],
      ...(opts.clientCa ? { ca: opts.clientCa, requestCert: true, rejectUnauthorized: false } : {}),
    },
    handler,
  );
  if (opts.clientCa) {
    server.on('secureConnection', (socket: TLSSocket) => {
      // Given but not verified: refused, as upstream's VerifyClientCertIfGiven does.
      const presented = Object.keys(socket.getPeerCertificate()).length > 0;
      if (presented && !socket.authorized) socket.destroy();
    });
  }
  server.keepAliveTimeout = 0;
  return server;
}

/** The `tls` object of an echo over TLS, or undefined on a plain connection. */
export function echoTlsInfo(socket: unknown): EchoTlsInfo | undefined {
  const s = socket as TLSSocket | undefined;
  if (!s || !s.encrypted) return undefined;
  const info: EchoTlsInfo = {
    version: s.getProtocol() ?? '',
    serverName: typeof (s as { servername?: unknown }).servername === 'string' ? ((s as { servername: string }).servername) : '',
    cipherSuite: s.getCipher()?.standardName ?? '',
  };
  // The certificate the peer presented (Node does not expose the rest of what it sent; the
  // chain it builds from its own trust store is not what the peer presented).
  const peer = s.getPeerX509Certificate();
  if (peer) info.peerCertificates = [pem(peer.raw)];
  return info;
}

/** DER as one PEM block: 64-column base64 lines and a trailing newline (Go's pem.Encode). */
function pem(der: Buffer): string {
  const b64 = der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '');
  return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`;
}
