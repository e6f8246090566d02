// The request `vgw explain` is asked about, parsed from the command line with a schema so that
// every problem names the flag.
import { z } from 'zod';

export interface ExplainRequest {
  method: string;
  /** Host header as sent (may carry a port). */
  host: string;
  /** Request target as sent: path with query, or absolute-form. */
  path: string;
  /** Headers besides Host, in order; names as given. */
  headers: [string, string][];
  /** Pick the listener by name (`listener`, or `namespace/gateway/listener`) or by port. */
  listener?: string;
  port?: number;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
// Request targets go onto the wire as given: no whitespace or control characters.
const TARGET = /^[\x21-\x7e]+$/;

export const explainRequestSchema = z.object({
  method: z.string().regex(TOKEN, '--method must be an HTTP token (GET, POST, ...)').default('GET'),
  host: z.string({ error: '--host is required' }).min(1, '--host must not be empty').max(1024, '--host is longer than 1024 characters').regex(FIELD_VALUE, '--host holds a control character'),
  path: z
    .string({ error: '--path is required' })
    .max(8192, '--path is longer than 8192 characters')
    .regex(TARGET, '--path must be a request target without spaces or control characters')
    .refine((p) => p.startsWith('/') || /^https?:\/\//i.test(p), '--path must start with "/" (or be absolute-form http://host/...)'),
  headers: z
    .array(z.string())
    .max(64, 'at most 64 --header flags')
    .default([])
    .transform((list, ctx) =>
      list.flatMap((h, i): [string, string][] => {
        const at = h.indexOf(':');
        const name = at < 0 ? h : h.slice(0, at).trim();
        const value = at < 0 ? '' : h.slice(at + 1).trim();
        if (at < 0 || !TOKEN.test(name) || !FIELD_VALUE.test(value)) {
          ctx.addIssue({ code: 'custom', message: `--header ${i + 1} (${JSON.stringify(h)}) must be NAME:VALUE with a token name` });
          return [];
        }
        if (name.toLowerCase() === 'host') {
          ctx.addIssue({ code: 'custom', message: '--header Host: use --host' });
          return [];
        }
        return [[name, value]];
      }),
    ),
  listener: z.string().min(1).max(400).optional(),
  port: z.coerce.number().int('--port must be an integer').min(1, '--port must be 1-65535').max(65535, '--port must be 1-65535').optional(),
});

export function parseExplainRequest(input: unknown): { ok: true; request: ExplainRequest } | { ok: false; errors: string[] } {
  const r = explainRequestSchema.safeParse(input);
  if (!r.success) return { ok: false, errors: r.error.issues.map((i) => i.message) };
  const { listener, port, ...rest } = r.data;
  return { ok: true, request: { ...rest, ...(listener !== undefined ? { listener } : {}), ...(port !== undefined ? { port } : {}) } };
}
