// What a gateway pod says it serves, as an annotation on its own Pod: the sha256 of the routing
// config that is live in it (the `sha256` of the head ConfigMap, src/ir/configmap.ts). The
// operator knows which route generations each config it published carries, so the hash alone is
// enough to tell which routes a pod serves; it stays the same few bytes whatever the number of
// routes, far under the 256 KiB the API allows for all of a Pod's annotations together.
import { z } from 'zod';

export const SERVED_ANNOTATION = 'gateway.vgw.dev/served';

/** Longest annotation value accepted when reading one back (the real one is ~80 bytes). */
export const SERVED_MAX_BYTES = 1024;

const servedSchema = z.strictObject({
  sha256: z.string().regex(/^[0-9a-f]{64}$/, 'a lowercase hex sha256'),
});

export type Served = z.infer<typeof servedSchema>;

export function encodeServed(served: Served): string {
  return JSON.stringify({ sha256: served.sha256 });
}

/** The annotation's value parsed, or why it is unusable (named by pod in the caller's log). */
export function parseServed(value: string | undefined): { ok: true; served: Served } | { ok: false; error: string } {
  if (value === undefined) return { ok: false, error: `no ${SERVED_ANNOTATION} annotation` };
  if (value.length > SERVED_MAX_BYTES) return { ok: false, error: `${SERVED_ANNOTATION}: longer than ${SERVED_MAX_BYTES} bytes` };
  let json: unknown;
  try {
    json = JSON.parse(value);
  } catch {
    return { ok: false, error: `${SERVED_ANNOTATION}: not JSON` };
  }
  const parsed = servedSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { ok: false, error: `${SERVED_ANNOTATION}: ${issue.path.join('.') || '(value)'}: ${issue.message}` };
  }
  return { ok: true, served: parsed.data };
}
