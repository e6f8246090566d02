// GatewayClass, Gateway and ReferenceGrant as the Gateway API v1 CRDs validate them.
import { z } from 'zod';
import { gatewayTlsSchema } from './backendtlspolicy.ts';
import { dnsLabel, dnsSubdomain, group, hostname, kind, labelKey, labelSelector, labelValue, objectMeta, objectName, port, sectionName } from './common.ts';

const apiVersion = z.string().min(1).max(253);

/** Gateway API GatewayInfrastructure bounds: at most 8 labels and 8 annotations. */
const MAX_INFRASTRUCTURE_ENTRIES = 8;
const atMost = (n: number) => (r: Record<string, string>) => Object.keys(r).length <= n;
// Copied onto the objects the operator creates for the Gateway, so they must be valid there.
const infrastructure = z.looseObject({
  labels: z.record(labelKey, labelValue).refine(atMost(MAX_INFRASTRUCTURE_ENTRIES), `at most ${MAX_INFRASTRUCTURE_ENTRIES} labels`).optional(),
  annotations: z
    .record(labelKey, z.string().max(4096))
    .refine(atMost(MAX_INFRASTRUCTURE_ENTRIES), `at most ${MAX_INFRASTRUCTURE_ENTRIES} annotations`)
    .optional(),
});

const parametersRef = z.looseObject({ group, kind, name: z.string().min(1).max(253), namespace: dnsLabel.optional() });

export const gatewayClassSchema = z.looseObject({
  apiVersion,
  kind: z.literal('GatewayClass'),
  metadata: objectMeta(dnsSubdomain),
  spec: z.looseObject({
    controllerName: z
      .string()
      .min(1)
      .max(253)
      .regex(/^[a-z0-9]+(?:-+[a-z0-9]+)*(\.[a-z0-9]+(?:-+[a-z0-9]+)*)*\/[A-Za-z0-9/\-._~%!$&'()*+,;=:]+$/, 'must be a domain-prefixed path such as example.com/controller'),
    description: z.string().max(64).optional(),
    parametersRef: parametersRef.optional(),
  }),
});

/** A listener protocol: a Gateway API protocol name or a domain-prefixed one. */
const protocol = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[a-zA-Z0-9]+(?:-+[a-zA-Z0-9]+)*$|^[a-z0-9]+(?:-+[a-z0-9]+)*(\.[a-z0-9]+(?:-+[a-z0-9]+)*)*\/[A-Za-z0-9]+$/, 'must be a protocol name such as HTTP');

const listener = z.looseObject({
  name: sectionName,
  hostname: hostname.optional(),
  port,
  protocol,
  // Gateway API GatewayTLSConfig: at most 64 certificateRefs, 16 options.
  tls: z
    .looseObject({
      mode: z.enum(['Terminate', 'Passthrough']).optional(),
      certificateRefs: z
        .array(z.looseObject({ group: group.optional(), kind: kind.optional(), name: objectName, namespace: dnsLabel.optional() }))
        .max(64)
        .optional(),
      options: z.record(z.string().min(1).max(253), z.string().max(4096)).refine(atMost(16), 'at most 16 options').optional(),
    })
    .optional(),
  allowedRoutes: z
    .looseObject({
      namespaces: z
        .looseObject({
          from: z.enum(['All', 'Same', 'Selector', 'None']).optional(),
          selector: labelSelector.optional(),
        })
        .optional(),
      kinds: z.array(z.looseObject({ group: group.optional(), kind })).max(8).optional(),
    })
    .optional(),
});

export const gatewaySchema = z.looseObject({
  apiVersion,
  kind: z.literal('Gateway'),
  metadata: objectMeta(dnsSubdomain),
  spec: z.looseObject({
    gatewayClassName: objectName,
    // The CRD requires at least one listener; an empty list is still read so the translator
    // reports the Gateway instead of the loader hiding it.
    listeners: z.array(listener).max(64),
    addresses: z
      .array(
        z.looseObject({
          type: z.string().min(1).max(253).optional(),
          // Optional since v1.3: the implementation then picks the address.
          value: z.string().min(1).max(253).optional(),
        }),
      )
      .max(16)
      .optional(),
    infrastructure: infrastructure.optional(),
    tls: gatewayTlsSchema.optional(),
  }),
});

const grantFrom = z.looseObject({ group, kind, namespace: dnsLabel });
const grantTo = z.looseObject({ group, kind, name: objectName.optional() });

export const referenceGrantSchema = z.looseObject({
  apiVersion,
  kind: z.literal('ReferenceGrant'),
  metadata: objectMeta(dnsSubdomain),
  spec: z.looseObject({
    from: z.array(grantFrom).min(1).max(16),
    to: z.array(grantTo).min(1).max(16),
  }),
});
