// HTTPRoute as the Gateway API v1 CRD validates it: types, list sizes, ranges and name
// formats. Which filter types, path values, regexes and header names can be served is decided
// by the translator (src/gatewayapi/rules.ts), which reports them with precise conditions, so
// strings that are well-formed for the API server are passed through here untouched.
import { z } from 'zod';
import { dnsLabel, dnsSubdomain, group, hostname, int, kind, objectMeta, objectName, port, preciseHostname, sectionName } from './common.ts';

/** An HTTP header name as the CRD allows it (an RFC 7230 token). */
const headerName = z
  .string()
  .min(1)
  .max(256)
  .regex(/^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/, 'must be an HTTP header name (an RFC 7230 token)');

export const parentRefSchema = z.looseObject({
  group: group.optional(),
  kind: kind.optional(),
  namespace: dnsLabel.optional(),
  name: objectName,
  sectionName: sectionName.optional(),
  port: port.optional(),
});

export const parentRefsSchema = z.array(parentRefSchema).max(32);

const valueMatch = (valueMax: number) =>
  z.looseObject({
    type: z.string().max(64).optional(),
    name: headerName,
    value: z.string().max(valueMax),
  });

const match = z.looseObject({
  path: z.looseObject({ type: z.string().max(64).optional(), value: z.string().max(1024).optional() }).optional(),
  headers: z.array(valueMatch(4096)).max(16).optional(),
  queryParams: z.array(valueMatch(1024)).max(16).optional(),
  method: z.string().max(64).optional(),
});

const header = z.looseObject({ name: headerName, value: z.string().max(4096) });
const headerFilter = z.looseObject({
  set: z.array(header).max(16).optional(),
  add: z.array(header).max(16).optional(),
  remove: z.array(headerName).max(16).optional(),
});

const pathModifier = z.looseObject({
  type: z.string().max(64),
  replaceFullPath: z.string().max(1024).optional(),
  replacePrefixMatch: z.string().max(1024).optional(),
});

const backendObjectRef = {
  group: group.optional(),
  kind: kind.optional(),
  name: objectName,
  namespace: dnsLabel.optional(),
  port: port.optional(),
};

const corsList = z.array(z.string().max(253)).max(64);

const filter = z.looseObject({
  // Unknown or unsupported types are reported by the translator (UnsupportedValue).
  type: z.string().min(1).max(64),
  requestHeaderModifier: headerFilter.optional(),
  responseHeaderModifier: headerFilter.optional(),
  requestRedirect: z
    .looseObject({
      scheme: z.string().max(64).optional(),
      hostname: preciseHostname.optional(),
      path: pathModifier.optional(),
      port: port.optional(),
      statusCode: z.int().optional(),
    })
    .optional(),
  urlRewrite: z.looseObject({ hostname: preciseHostname.optional(), path: pathModifier.optional() }).optional(),
  requestMirror: z
    .looseObject({
      backendRef: z.looseObject(backendObjectRef),
      percent: z.int().optional(),
      fraction: z.looseObject({ numerator: z.int(), denominator: z.int().optional() }).optional(),
    })
    .optional(),
  cors: z
    .looseObject({
      allowOrigins: corsList.optional(),
      allowCredentials: z.boolean().optional(),
      allowMethods: z.array(z.string().max(64)).max(9).optional(),
      allowHeaders: corsList.optional(),
      exposeHeaders: corsList.optional(),
      maxAge: z.int().optional(),
    })
    .optional(),
  extensionRef: z.looseObject({ group, kind, name: objectName }).optional(),
});

const backendRef = z.looseObject({
  ...backendObjectRef,
  weight: int(0, 1_000_000).optional(),
  filters: z.array(filter).max(16).optional(),
});

const rule = z.looseObject({
  name: sectionName.optional(),
  matches: z.array(match).max(64).optional(),
  filters: z.array(filter).max(16).optional(),
  backendRefs: z.array(backendRef).max(16).optional(),
  // Durations are parsed and bounded by the translator.
  timeouts: z.looseObject({ request: z.string().max(64).optional(), backendRequest: z.string().max(64).optional() }).optional(),
  retry: z
    .looseObject({
      attempts: z.int().optional(),
      codes: z.array(z.int()).max(200).optional(),
      backoff: z.string().max(64).optional(),
    })
    .optional(),
});

export const httpRouteSchema = z.looseObject({
  apiVersion: z.string().min(1).max(253),
  kind: z.literal('HTTPRoute'),
  metadata: objectMeta(dnsSubdomain),
  spec: z.looseObject({
    parentRefs: parentRefsSchema.optional(),
    hostnames: z.array(hostname).max(16).optional(),
    rules: z.array(rule).max(16).optional(),
  }),
});
