// discovery.k8s.io/v1 EndpointSlice. Its ports and addresses are written into VCL backend
// definitions, so they are checked here as the API server would: ports are integers 1-65535
// and every address is an IP address of the slice's addressType (a hostname would be resolved
// by varnishd at compile time, and one that does not resolve fails the whole compile).
import { isIPv4, isIPv6 } from 'node:net';
import { z } from 'zod';
import type { EndpointSlice } from '../types.ts';
import { dnsSubdomain, formatIssues, labelValue, objectMeta, port, withoutNulls } from './common.ts';

export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

const ADDRESS_CHECK = { IPv4: isIPv4, IPv6: isIPv6 } as const;

const conditions = z.looseObject({
  ready: z.boolean().optional(),
  serving: z.boolean().optional(),
  terminating: z.boolean().optional(),
});

const endpoint = z.looseObject({
  addresses: z.array(z.string().min(1).max(253)).min(1).max(100),
  conditions: conditions.optional(),
  hostname: z.string().max(63).optional(),
  nodeName: z.string().max(253).optional(),
  zone: z.string().max(253).optional(),
});

const slicePort = z.looseObject({
  name: z
    .string()
    .max(63)
    .regex(/^$|^[a-z0-9]+(?:-+[a-z0-9]+)*$/, 'must be "" or a lowercase RFC 1123 label')
    .optional(),
  port: port.optional(),
  protocol: z.enum(['TCP', 'UDP', 'SCTP']).optional(),
  appProtocol: z.string().max(253).optional(),
});

export const endpointSliceSchema = z
  .looseObject({
    apiVersion: z.string().min(1).max(253),
    kind: z.literal('EndpointSlice'),
    metadata: objectMeta(dnsSubdomain).and(z.looseObject({ labels: z.looseObject({ [SERVICE_NAME_LABEL]: labelValue.optional() }).optional() })),
    addressType: z.enum(['IPv4', 'IPv6', 'FQDN']),
    endpoints: z.array(endpoint).max(1000).optional(),
    ports: z.array(slicePort).max(100).optional(),
  })
  .superRefine((slice, ctx) => {
    if (slice.addressType === 'FQDN') return;
    const valid = ADDRESS_CHECK[slice.addressType];
    slice.endpoints?.forEach((ep, i) =>
      ep.addresses.forEach((a, j) => {
        if (!valid(a)) ctx.addIssue({ code: 'custom', path: ['endpoints', i, 'addresses', j], message: `must be an ${slice.addressType} address (addressType ${slice.addressType})` });
      }),
    );
  });

export type SliceResult = { ok: true; slice: EndpointSlice } | { ok: false; message: string };

/**
 * One EndpointSlice from any source (a manifest, the Kubernetes API). `null` values count as
 * absent, as the API server's decoder treats them; apiVersion and kind are implied when the
 * source (a typed list call) leaves them out.
 */
export function parseEndpointSlice(raw: unknown): SliceResult {
  const value = withoutNulls(raw);
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const v = value as Record<string, unknown>;
    v.apiVersion ??= 'discovery.k8s.io/v1';
    v.kind ??= 'EndpointSlice';
    const meta = v.metadata as Record<string, unknown> | undefined;
    if (meta?.creationTimestamp instanceof Date) meta.creationTimestamp = meta.creationTimestamp.toISOString();
  }
  const r = endpointSliceSchema.safeParse(value);
  if (r.success) return { ok: true, slice: r.data as unknown as EndpointSlice };
  return { ok: false, message: formatIssues(r.error).message };
}
