// Structured logs: one JSON object per line. Events about a Kubernetes object carry it as
// `object: "namespace/name"` (plus `kind`), so logs can be filtered per object.
import { pino, type Logger } from 'pino';

export type { Logger };

/** Level: `options.level`, else LOG_LEVEL (VGW_LOG_LEVEL also read), else info. */
export function createLogger(options: { level?: string; fd?: 1 | 2 } = {}): Logger {
  return pino(
    { level: options.level ?? process.env.LOG_LEVEL ?? process.env.VGW_LOG_LEVEL ?? 'info', base: { app: 'vgw' }, timestamp: pino.stdTimeFunctions.isoTime },
    pino.destination({ fd: options.fd ?? 1, sync: true }),
  );
}

export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
