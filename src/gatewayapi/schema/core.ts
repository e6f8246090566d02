// Core Kubernetes kinds the pipeline reads: Service, Namespace, Secret, ConfigMap.
import { z } from 'zod';
import { dns1035Label, dnsLabel, dnsSubdomain, labels, objectMeta, port } from './common.ts';

const apiVersion = z.string().min(1).max(253);

/** IANA service name, as a named targetPort: at most 15 characters, at least one letter. */
const ianaServiceName = z
  .string()
  .min(1)
  .max(15)
  .regex(/^(?=.*[a-z])[a-z0-9]+(?:-+[a-z0-9]+)*$/, 'must be an IANA service name (a-z, 0-9 and "-", at most 15 characters)');

const servicePort = z.looseObject({
  name: dnsLabel.optional(),
  port,
  targetPort: z.union([port, ianaServiceName]).optional(),
  protocol: z.enum(['TCP', 'UDP', 'SCTP']).optional(),
  appProtocol: z.string().max(253).optional(),
  nodePort: z.int().min(0).max(65535).optional(),
});

export const serviceSchema = z.looseObject({
  apiVersion,
  kind: z.literal('Service'),
  metadata: objectMeta(dns1035Label),
  spec: z.looseObject({
    ports: z.array(servicePort).max(1024).optional(),
    type: z.string().max(64).optional(),
    clusterIP: z.string().max(64).optional(),
    selector: labels.optional(),
  }),
});

export const namespaceSchema = z.looseObject({
  apiVersion,
  kind: z.literal('Namespace'),
  metadata: objectMeta(dnsLabel),
});

const secretKey = z.string().min(1).max(253).regex(/^[-._a-zA-Z0-9]+$/, 'must be a Secret key (letters, digits, "-", "_" and ".")');

export const secretSchema = z.looseObject({
  apiVersion,
  kind: z.literal('Secret'),
  metadata: objectMeta(dnsSubdomain),
  type: z.string().max(253).optional(),
  data: z.record(secretKey, z.base64()).optional(),
  stringData: z.record(secretKey, z.string()).optional(),
});

// A ConfigMap's keys follow the same rule as a Secret's. Only `data` is read (CA bundles are
// text); binaryData is allowed and ignored.
export const configMapSchema = z.looseObject({
  apiVersion,
  kind: z.literal('ConfigMap'),
  metadata: objectMeta(dnsSubdomain),
  data: z.record(secretKey, z.string()).optional(),
});
