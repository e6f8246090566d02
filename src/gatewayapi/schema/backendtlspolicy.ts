// BackendTLSPolicy (Gateway API v1, also read as v1alpha3) and the Gateway's backend TLS
// settings (spec.tls.backend), as the CRDs validate them.
import { z } from 'zod';
import { dnsLabel, dnsSubdomain, group, hostname, kind, objectMeta, objectName, preciseHostname, sectionName } from './common.ts';

const apiVersion = z.string().min(1).max(253);

const targetRef = z.looseObject({ group, kind, name: objectName, sectionName: sectionName.optional() });

const subjectAltName = z
  .looseObject({
    type: z.enum(['Hostname', 'URI']),
    hostname: hostname.optional(),
    uri: z.string().min(1).max(253).optional(),
  })
  .superRefine((s, ctx) => {
    if (s.type === 'Hostname' && !s.hostname) ctx.addIssue({ code: 'custom', path: ['hostname'], message: 'is required when type is Hostname' });
    if (s.type === 'URI' && !s.uri) ctx.addIssue({ code: 'custom', path: ['uri'], message: 'is required when type is URI' });
    if (s.type !== 'Hostname' && s.hostname) ctx.addIssue({ code: 'custom', path: ['hostname'], message: 'must be empty unless type is Hostname' });
    if (s.type !== 'URI' && s.uri) ctx.addIssue({ code: 'custom', path: ['uri'], message: 'must be empty unless type is URI' });
  });

const validation = z
  .looseObject({
    caCertificateRefs: z.array(z.looseObject({ group, kind, name: objectName })).max(8).optional(),
    wellKnownCACertificates: z.enum(['System', '']).optional(),
    hostname: preciseHostname,
    subjectAltNames: z.array(subjectAltName).max(5).optional(),
  })
  .superRefine((v, ctx) => {
    const refs = (v.caCertificateRefs ?? []).length > 0;
    const wellKnown = (v.wellKnownCACertificates ?? '') !== '';
    if (refs && wellKnown) ctx.addIssue({ code: 'custom', message: 'must not contain both caCertificateRefs and wellKnownCACertificates' });
    if (!refs && !wellKnown) ctx.addIssue({ code: 'custom', message: 'must specify either caCertificateRefs or wellKnownCACertificates' });
  });

export const backendTlsPolicySchema = z.looseObject({
  apiVersion,
  kind: z.literal('BackendTLSPolicy'),
  metadata: objectMeta(dnsSubdomain),
  spec: z.looseObject({
    targetRefs: z
      .array(targetRef)
      .min(1)
      .max(16)
      .superRefine((refs, ctx) => {
        const seen = new Set<string>();
        for (const r of refs) {
          const k = `${r.group}/${r.kind}/${r.name}/${r.sectionName ?? ''}`;
          if (seen.has(k)) ctx.addIssue({ code: 'custom', message: 'targetRefs must be distinct (group, kind, name and sectionName)' });
          seen.add(k);
        }
      }),
    validation,
    options: z.record(z.string().min(1).max(253), z.string().max(4096)).optional(),
  }),
});
