// The backend TLS settings of an IR service as a schema (see IRServiceTLS): checked as strictly
// as the rest of the IR, since they become the TLS proxy's configuration.
import { z } from 'zod';
import { validHostname } from './limits.ts';
import type { IRServiceTLS } from './types.ts';

/** Bounds of the lists, as the Gateway API bounds them (8 CA refs, 5 subjectAltNames). */
export const SERVICE_TLS_LIMITS = { caCertificates: 8, hostnames: 5 } as const;

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

const objectRef = z.strictObject({
  namespace: z.string().regex(DNS_LABEL, 'must be a DNS label'),
  name: z.string().regex(DNS_SUBDOMAIN, 'must be a DNS subdomain'),
});

const exactHostname = z.string().superRefine((v, ctx) => {
  const p = validHostname(v, false);
  if (p) ctx.addIssue({ code: 'custom', message: p });
});

export const serviceTlsSchema = z.strictObject({
  sni: exactHostname,
  verify: z.union([
    z.strictObject({ caCertificates: z.array(objectRef).min(1).max(SERVICE_TLS_LIMITS.caCertificates) }),
    z.strictObject({ system: z.literal(true) }),
  ]),
  hostnames: z.array(exactHostname).min(1).max(SERVICE_TLS_LIMITS.hostnames),
  clientCertificate: objectRef.optional(),
});

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const schemaMatchesType: Same<z.infer<typeof serviceTlsSchema>, IRServiceTLS> = true;
void schemaMatchesType;
