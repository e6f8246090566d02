// A throwaway certificate authority for TLS tests: a CA and leaf certificates it signs, made by
// openssl in a temporary directory (PEM, as Secrets and the TLS terminator hold them).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface LeafPem {
  crt: string;
  key: string;
  /** The serial as node reports a peer certificate's (uppercase hex, two digits at least). */
  serial: string;
}

export class TestPki {
  readonly dir = mkdtempSync(join(tmpdir(), 'vgw-test-pki-'));
  private serial = 1;

  constructor() {
    this.openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=vgw test CA');
  }

  get ca(): string {
    return readFileSync(join(this.dir, 'ca.crt'), 'utf8');
  }

  /** A new leaf for `host` (its CN and only DNS name), with the next serial number. */
  leaf(file: string, host: string): LeafPem {
    const serial = this.serial++;
    this.openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${file}.key`, '-out', `${file}.csr`, '-subj', `/CN=${host}`);
    this.openssl('x509', '-req', '-in', `${file}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-set_serial', String(serial), '-days', '2', '-out', `${file}.crt`);
    return {
      crt: readFileSync(join(this.dir, `${file}.crt`), 'utf8'),
      key: readFileSync(join(this.dir, `${file}.key`), 'utf8'),
      serial: serial.toString(16).toUpperCase().padStart(2, '0'),
    };
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }

  private openssl(...args: string[]): void {
    execFileSync('openssl', args, { cwd: this.dir, stdio: 'pipe' });
  }
}

/** A kubernetes.io/tls Secret of a leaf, as a user creates it (stringData). */
export function tlsSecret(namespace: string, name: string, pem: { crt: string; key: string }) {
  return { apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace }, type: 'kubernetes.io/tls', stringData: { 'tls.crt': pem.crt, 'tls.key': pem.key } };
}
