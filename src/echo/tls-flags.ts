// `vgw echo`'s HTTPS mode from flags or upstream's environment variables (TLS_SERVER_CERT,
// TLS_SERVER_PRIVKEY, TLS_CLIENT_CACERTS), parsed by a schema so a bad value names its flag.
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { flagErrors, portFlag } from '../util/flags.ts';
import type { EchoTlsOptions } from './tls.ts';

export const ECHO_TLS_FLAGS = ['https-port', 'tls-cert', 'tls-key', 'tls-client-ca'];
/** upstream's HTTPS port when TLS files are given but no port. */
export const DEFAULT_ECHO_HTTPS_PORT = 8443;
/** Certificate files are PEM text; anything larger is not one. */
export const MAX_ECHO_TLS_FILE_BYTES = 1 << 20;

const file = (flag: string) => z.string().min(1, `--${flag} must name a file`).optional();
const echoTlsFlags = z
  .object({
    'https-port': portFlag('https-port').optional(),
    'tls-cert': file('tls-cert'),
    'tls-key': file('tls-key'),
    'tls-client-ca': file('tls-client-ca'),
  })
  .refine((f) => (f['tls-cert'] === undefined) === (f['tls-key'] === undefined), '--tls-cert and --tls-key (TLS_SERVER_CERT, TLS_SERVER_PRIVKEY) go together')
  .refine((f) => f['tls-cert'] !== undefined || (f['https-port'] === undefined && f['tls-client-ca'] === undefined), '--https-port and --tls-client-ca need --tls-cert and --tls-key');

/** The HTTPS options, or undefined when no certificate is given (plain HTTP only). */
export async function echoHttpsOptions(flags: Record<string, string>, env: NodeJS.ProcessEnv): Promise<EchoTlsOptions | undefined> {
  const parsed = echoTlsFlags.safeParse({
    'https-port': flags['https-port'],
    'tls-cert': flags['tls-cert'] ?? env.TLS_SERVER_CERT,
    'tls-key': flags['tls-key'] ?? env.TLS_SERVER_PRIVKEY,
    'tls-client-ca': flags['tls-client-ca'] ?? env.TLS_CLIENT_CACERTS,
  });
  if (!parsed.success) throw new Error(`echo: ${flagErrors(parsed.error)}`);
  const f = parsed.data;
  if (f['tls-cert'] === undefined || f['tls-key'] === undefined) return undefined;
  const clientCa = f['tls-client-ca'];
  return {
    port: f['https-port'] ?? DEFAULT_ECHO_HTTPS_PORT,
    cert: await readPem('tls-cert', f['tls-cert']),
    key: await readPem('tls-key', f['tls-key']),
    ...(clientCa !== undefined ? { clientCa: await readPem('tls-client-ca', clientCa) } : {}),
  };
}

async function readPem(flag: string, path: string): Promise<Buffer> {
  let data: Buffer;
  try {
    data = await readFile(path);
  } catch (err) {
    throw new Error(`echo: --${flag} ${path}: ${(err as Error).message}`, { cause: err });
  }
  if (data.length > MAX_ECHO_TLS_FILE_BYTES) throw new Error(`echo: --${flag} ${path}: larger than ${MAX_ECHO_TLS_FILE_BYTES} bytes`);
  if (!data.includes('-----BEGIN ')) throw new Error(`echo: --${flag} ${path}: not PEM`);
  return data;
}
