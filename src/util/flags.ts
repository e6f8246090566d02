// Typed command-line flags: every value a command reads from its flags is parsed by a zod
// schema first, and a bad value is a UsageError naming the flag (exit code 2).
import { isIP } from 'node:net';
import { z } from 'zod';

export const portFlag = (flag: string) =>
  z
    .string()
    .regex(/^[0-9]{1,5}$/, `--${flag} must be a port number`)
    .transform(Number)
    .refine((p) => p <= 65535, `--${flag} must be a port number`);

export const addressFlag = (flag: string) => z.string().refine((a) => isIP(a) !== 0, `--${flag} must be an IP address`);

export const pathNormalizationFlag = z
  .enum(['on', 'off'], { error: '--path-normalization must be on or off' })
  .transform((v): 'On' | 'Off' => (v === 'on' ? 'On' : 'Off'));

/** `vgw check` and `vgw vcl`. */
export const dirCommandFlags = z.object({
  address: addressFlag('address'),
  'path-normalization': pathNormalizationFlag,
});

/** The compiler's MAX_SHARDS (src/vcl/shards.ts; util imports nothing, a unit test keeps them equal). */
export const SHARDS_FLAG_MAX = 256;

/** `vgw serve`. */
export const serveFlags = dirCommandFlags.extend({
  'admin-port': portFlag('admin-port'),
  'admin-address': addressFlag('admin-address'),
  'work-dir': z.string().min(1, '--work-dir must not be empty').optional(),
  shards: z
    .string()
    .regex(/^[1-9][0-9]{0,2}$/, `--shards must be 1-${SHARDS_FLAG_MAX}`)
    .transform(Number)
    .refine((n) => n <= SHARDS_FLAG_MAX, `--shards must be 1-${SHARDS_FLAG_MAX}`)
    .optional(),
  http2: z.boolean().default(false),
});

/** The messages of a failed parse, joined: each already names its flag. */
export function flagErrors(error: z.ZodError): string {
  return error.issues.map((i) => i.message).join('; ');
}
