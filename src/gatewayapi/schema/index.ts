// The manifest kinds the pipeline reads, each with its schema and name format: one place that
// says which objects are ours to read and what a well-formed one looks like.
import type { z } from 'zod';
import type { ParentReference, RejectedObject, ResourceSnapshot } from '../types.ts';
import { dns1035Label, dnsLabel, dnsSubdomain, formatIssues, labelValue, objectName, quote } from './common.ts';
import { serviceSchema, namespaceSchema, secretSchema, configMapSchema } from './core.ts';
import { endpointSliceSchema, SERVICE_NAME_LABEL } from './endpointslice.ts';
import { gatewayClassSchema, gatewaySchema, referenceGrantSchema } from './gateway.ts';
import { httpRouteSchema, parentRefsSchema } from './httproute.ts';
import { backendTlsPolicySchema } from './backendtlspolicy.ts';

export { parseEndpointSlice } from './endpointslice.ts';
export { withoutNulls, quote } from './common.ts';

type ListField = Exclude<keyof ResourceSnapshot, 'rejected'>;

export interface ManifestKind {
  /** Where valid objects of this kind go in a snapshot. */
  field: ListField;
  namespaced: boolean;
  /** API groups (apiVersion without the version) read as this kind; others are not ours. */
  groups: string[];
  name: z.ZodType<string>;
  schema: z.ZodType;
}

const GATEWAY_API = ['gateway.networking.k8s.io'];

export const MANIFEST_KINDS: Record<string, ManifestKind> = {
  GatewayClass: { field: 'gatewayClasses', namespaced: false, groups: GATEWAY_API, name: dnsSubdomain, schema: gatewayClassSchema },
  Gateway: { field: 'gateways', namespaced: true, groups: GATEWAY_API, name: dnsSubdomain, schema: gatewaySchema },
  HTTPRoute: { field: 'httpRoutes', namespaced: true, groups: GATEWAY_API, name: dnsSubdomain, schema: httpRouteSchema },
  ReferenceGrant: { field: 'referenceGrants', namespaced: true, groups: GATEWAY_API, name: dnsSubdomain, schema: referenceGrantSchema },
  Service: { field: 'services', namespaced: true, groups: [''], name: dns1035Label, schema: serviceSchema },
  EndpointSlice: { field: 'endpointSlices', namespaced: true, groups: ['discovery.k8s.io'], name: dnsSubdomain, schema: endpointSliceSchema },
  Namespace: { field: 'namespaces', namespaced: false, groups: [''], name: dnsLabel, schema: namespaceSchema },
  Secret: { field: 'secrets', namespaced: true, groups: [''], name: dnsSubdomain, schema: secretSchema },
  ConfigMap: { field: 'configMaps', namespaced: true, groups: [''], name: dnsSubdomain, schema: configMapSchema },
  BackendTLSPolicy: { field: 'backendTLSPolicies', namespaced: true, groups: GATEWAY_API, name: dnsSubdomain, schema: backendTlsPolicySchema },
};

export type Validated = { ok: true; object: unknown } | { ok: false; rejected: Omit<RejectedObject, 'file' | 'line'> };

/**
 * Checks one object of a known kind. `obj` has its nulls removed and its namespace defaulted.
 * A failure carries the first offending field, and whatever identity and references can still
 * be read from the object, so status can be reported on it.
 */
export function validateManifestObject(kind: string, obj: Record<string, unknown>): Validated {
  const spec = MANIFEST_KINDS[kind];
  const r = spec.schema.safeParse(obj);
  if (r.success) return { ok: true, object: r.data };
  const meta = isRecord(obj.metadata) ? obj.metadata : {};
  const rejected: Omit<RejectedObject, 'file' | 'line'> = { kind, display: describeObject(spec, meta), ...formatIssues(r.error) };
  if (spec.name.safeParse(meta.name).success) rejected.name = meta.name as string;
  if (spec.namespaced && dnsLabel.safeParse(meta.namespace).success) rejected.namespace = meta.namespace as string;
  if (Number.isSafeInteger(meta.generation) && (meta.generation as number) >= 0) rejected.generation = meta.generation as number;
  const body = isRecord(obj.spec) ? obj.spec : {};
  if (kind === 'HTTPRoute') {
    const refs = parentRefsSchema.safeParse(body.parentRefs);
    if (refs.success) rejected.parentRefs = refs.data as ParentReference[];
  } else if (kind === 'Gateway') {
    if (objectName.safeParse(body.gatewayClassName).success) rejected.gatewayClassName = body.gatewayClassName as string;
  } else if (kind === 'EndpointSlice') {
    const service = isRecord(meta.labels) ? meta.labels[SERVICE_NAME_LABEL] : undefined;
    if (labelValue.safeParse(service).success && service !== '') rejected.serviceName = service as string;
  }
  return { ok: false, rejected };
}

/** "HTTPRoute default/web" as far as it can be read; a bad name is quoted, short and escaped. */
function describeObject(spec: ManifestKind, meta: Record<string, unknown>): string {
  const part = (v: unknown, valid: boolean) => (valid ? (v as string) : v === undefined ? '(none)' : quote(v));
  const name = part(meta.name, spec.name.safeParse(meta.name).success);
  if (!spec.namespaced) return name;
  return `${part(meta.namespace, dnsLabel.safeParse(meta.namespace).success)}/${name}`;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
