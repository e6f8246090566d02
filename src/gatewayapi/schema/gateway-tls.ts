// Gateway spec.tls as the Gateway API v1 CRD validates it: `frontend` (client certificate
// validation) and `backend` (the client certificate presented to TLS backends); other fields
// pass through untouched.
import { z } from 'zod';
import { dnsLabel, group, kind, objectName, port } from './common.ts';

const objectReference = z.looseObject({ group, kind, name: objectName, namespace: dnsLabel.optional() });

const frontendTlsConfig = z.looseObject({
  validation: z
    .looseObject({
      caCertificateRefs: z.array(objectReference).min(1).max(16),
      mode: z.enum(['AllowValidOnly', 'AllowInsecureFallback']).optional(),
    })
    .optional(),
});

const frontend = z.looseObject({
  default: frontendTlsConfig,
  perPort: z
    .array(z.looseObject({ port, tls: frontendTlsConfig }))
    .max(64)
    .refine((list) => new Set(list.map((p) => p.port)).size === list.length, 'Port for TLS configuration must be unique within the Gateway')
    .optional(),
});

const backend = z.looseObject({
  clientCertificateRef: z.looseObject({ group: group.optional(), kind: kind.optional(), name: objectName, namespace: dnsLabel.optional() }).optional(),
});

export const gatewayTls = z.looseObject({ frontend: frontend.optional(), backend: backend.optional() });
