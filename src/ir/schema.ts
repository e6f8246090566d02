// The routing IR as a schema: what the agent accepts from a routing ConfigMap. The IR crosses a
// trust boundary there (anyone able to write a ConfigMap in the Gateway's namespace can write
// one), so every field is checked as strictly as the translator produces it: integers are
// integers within the translator's ranges, names and paths pass the same validation the
// translator applies to Gateway API input, indexes point into the IR's own lists, lists are
// bounded, and unknown fields are refused. The VCL compiler's typed emitters check numbers once
// more; this schema is what turns a hostile config into a clear rejection naming the field.
import { isIP } from 'node:net';
import { z } from 'zod';
import {
  controlCharacterProblem,
  headerNameProblem,
  isReservedHeader,
  MAX_BACKOFF_MS,
  MAX_CORS_MAX_AGE,
  MAX_RETRY_ATTEMPTS,
  MAX_TIMEOUT_MS,
  MAX_VALUE_LENGTH,
  MAX_WEIGHT,
  METHODS,
  ORIGIN,
  PATH,
  QUERY_NAME,
  REDIRECT_CODES,
  RESERVED_HEADER_PROBLEM,
  TOKEN,
  validHostname,
} from './limits.ts';
import { regexProblem } from './regex-dialect.ts';
import { serviceTlsSchema } from './service-tls-schema.ts';
import { IR_VERSION, type IRAction, type IRMatch, type IRRoute, type IRService, type IRSocket, type IRSocketTLS, type IRVirtualHost, type RoutingIR } from './types.ts';

/** List bounds. Generous for anything the translator produces, small enough to bound work. */
export const IR_LIMITS = {
  sockets: 1024,
  vhostsPerSocket: 100_000,
  routesPerVhost: 10_000,
  services: 100_000,
  routeGenerations: 100_000,
  /** Headers / query params of one match, entries of one header modifier, filters of one rule. */
  perMatch: 64,
  perModifier: 256,
  corsEntries: 256,
  backendsPerRoute: 256,
  mirrorsPerRoute: 64,
  /** 64 listeners of 64 certificateRefs each (the Gateway API maxima). */
  certificatesPerSocket: 4096,
  /** Names of one certificate the IR lists (the translator keeps at most this many). */
  hostnamesPerCertificate: 100,
  /** Gateway API maximum of caCertificateRefs in one frontend validation. */
  caCertificatesPerSocket: 16,
  /** Entries of one cipher list in listener tls.options. */
  ciphers: 64,
  /** Every distinct status 400-599. */
  retryCodes: 200,
  /** Characters of a user string (header value, path, regex), as rules.ts checkString(). */
  string: MAX_VALUE_LENGTH,
} as const;

const FILTER_TYPES = ['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestRedirect', 'URLRewrite', 'RequestMirror', 'CORS'] as const;

// Kubernetes object names as the API server validates them: namespaces and Services are DNS
// labels, HTTPRoutes and Gateways DNS subdomains, listener names section names.
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const CIPHER_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
/** "namespace/name/rule/match", as the translator names routes. */
const ROUTE_ID = /^[a-z0-9-]{1,63}\/[a-z0-9.-]{1,253}\/[0-9]{1,5}\/[0-9]{1,5}$/;
/** "namespace/gateway/listener". */
const LISTENER_ID = /^[a-z0-9-]{1,63}\/[a-z0-9.-]{1,253}\/[a-z0-9.-]{1,253}$/;
/** "namespace/name" of an HTTPRoute. */
const ROUTE_KEY = /^[a-z0-9-]{1,63}\/[a-z0-9.-]{1,253}$/;
/** `a<address with non-hex characters as "_">_<port>`, "_"-suffixed when two collide (src/ir/merge.ts socketNames). */
const SOCKET_NAME = /^a[0-9A-Fa-f_]{1,64}_[0-9]{1,5}_{0,16}$/;

const int = (min: number, max: number) => z.int().min(min).max(max);
const port = int(1, 65535);

function checked(problem: (v: string) => string | null) {
  return z.string().superRefine((v, ctx) => {
    const p = problem(v);
    if (p) ctx.addIssue({ code: 'custom', message: p });
  });
}

/** A string the translator passed through checkString(): no control characters, bounded. */
const userString = z
  .string()
  .max(IR_LIMITS.string)
  .superRefine((v, ctx) => {
    const p = controlCharacterProblem(v);
    if (p) ctx.addIssue({ code: 'custom', message: p });
  });
const matchPath = userString.regex(/^\/[^?#]*$/, 'must start with "/" and hold no "?" or "#"');
const modifierPath = userString.regex(PATH, 'must start with "/" and hold only URL path characters');
const headerName = checked(headerNameProblem);
/** Header names a route may set or remove: the router's own x-vgw-* state is not among them. */
const modifiedHeaderName = checked((v) => headerNameProblem(v) ?? (isReservedHeader(v) ? RESERVED_HEADER_PROBLEM : null));
const exactHostname = checked((v) => validHostname(v, false));
const vhostHostname = checked((v) => (v === '*' ? null : validHostname(v, true)));
const ipAddress = z.string().refine((v) => isIP(v) !== 0, 'must be an IP address');
const bounded = <T extends z.ZodType>(item: T, max: number) => z.array(item).max(max);

const valueMatch = z
  .strictObject({ name: z.string(), type: z.enum(['Exact', 'RegularExpression']), value: userString })
  .superRefine((m, ctx) => {
    if (m.type !== 'RegularExpression') return;
    const p = regexProblem(m.value);
    if (p) ctx.addIssue({ code: 'custom', path: ['value'], message: `invalid regular expression: ${p}` });
  });
const headerMatch = valueMatch.superRefine((m, ctx) => {
  const p = headerNameProblem(m.name);
  if (p) ctx.addIssue({ code: 'custom', path: ['name'], message: p });
});
const queryMatch = valueMatch.superRefine((m, ctx) => {
  if (!QUERY_NAME.test(m.name)) ctx.addIssue({ code: 'custom', path: ['name'], message: 'must be an HTTP token of at most 256 characters' });
});

const match = z.strictObject({
  path: z.strictObject({ type: z.enum(['Exact', 'PathPrefix', 'RegularExpression']), value: userString }).superRefine((p, ctx) => {
    const problem = p.type === 'RegularExpression' ? regexProblem(p.value) : /^\/[^?#]*$/.test(p.value) ? null : 'must start with "/" and hold no "?" or "#"';
    if (problem) ctx.addIssue({ code: 'custom', path: ['value'], message: p.type === 'RegularExpression' ? `invalid regular expression: ${problem}` : problem });
  }),
  method: z
    .string()
    .refine((m) => METHODS.has(m), 'is not a supported HTTP method')
    .optional(),
  headers: bounded(headerMatch, IR_LIMITS.perMatch),
  queryParams: bounded(queryMatch, IR_LIMITS.perMatch),
});

const headerModifier = z.strictObject({
  set: bounded(z.strictObject({ name: modifiedHeaderName, value: userString }), IR_LIMITS.perModifier),
  add: bounded(z.strictObject({ name: modifiedHeaderName, value: userString }), IR_LIMITS.perModifier),
  remove: bounded(modifiedHeaderName, IR_LIMITS.perModifier),
});

const pathModifier = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('ReplaceFullPath'), value: modifierPath }),
  z.strictObject({ type: z.literal('ReplacePrefixMatch'), prefix: matchPath, value: z.union([z.literal(''), modifierPath]) }),
]);

const redirect = z.strictObject({
  statusCode: z.int().refine((c) => REDIRECT_CODES.has(c), `must be one of ${[...REDIRECT_CODES].join(', ')}`),
  scheme: z
    .string()
    .refine((v) => ['http', 'https'].includes(v), 'must be http or https')
    .optional(),
  hostname: exactHostname.optional(),
  port: port.optional(),
  listenerPort: port,
  path: pathModifier.optional(),
});

const corsHeader = checked((v) => (v === '*' ? null : headerNameProblem(v)));
const cors = z.strictObject({
  allowOrigins: bounded(z.string().regex(ORIGIN, 'must be "*" or scheme://host[:port], lowercase'), IR_LIMITS.corsEntries),
  allowMethods: bounded(z.string().refine((v) => v === '*' || TOKEN.test(v), 'is not an HTTP method'), IR_LIMITS.corsEntries),
  allowHeaders: bounded(corsHeader, IR_LIMITS.corsEntries),
  exposeHeaders: bounded(corsHeader, IR_LIMITS.corsEntries),
  allowCredentials: z.boolean(),
  maxAge: int(1, MAX_CORS_MAX_AGE).optional(),
});

const serviceIndex = int(0, IR_LIMITS.services - 1);

const action = z.strictObject({
  filters: bounded(z.string().refine((f) => (FILTER_TYPES as readonly string[]).includes(f), `must be one of ${FILTER_TYPES.join(', ')}`), IR_LIMITS.perMatch).optional(),
  requestHeaders: headerModifier.optional(),
  responseHeaders: headerModifier.optional(),
  rewrite: z.strictObject({ hostname: exactHostname.optional(), path: pathModifier.optional() }).optional(),
  redirect: redirect.optional(),
  cors: cors.optional(),
  mirrors: bounded(z.strictObject({ service: serviceIndex, percent: z.number().min(0).max(100) }), IR_LIMITS.mirrorsPerRoute).optional(),
  timeouts: z.strictObject({ request: int(0, MAX_TIMEOUT_MS).optional(), backendRequest: int(0, MAX_TIMEOUT_MS).optional() }).optional(),
  retry: z
    .strictObject({
      attempts: int(0, MAX_RETRY_ATTEMPTS),
      codes: bounded(int(400, 599), IR_LIMITS.retryCodes),
      backoffMs: int(0, MAX_BACKOFF_MS).optional(),
    })
    .optional(),
  backends: bounded(
    z.strictObject({
      weight: int(0, MAX_WEIGHT),
      service: serviceIndex.nullable(),
      requestHeaders: headerModifier.optional(),
      responseHeaders: headerModifier.optional(),
    }),
    IR_LIMITS.backendsPerRoute,
  ),
});

const route = z.strictObject({ id: z.string().regex(ROUTE_ID, 'must be "namespace/name/rule/match"'), match, action });

const vhost = z.strictObject({
  hostname: vhostHostname,
  listener: z.string().regex(LISTENER_ID, 'must be "namespace/gateway/listener"'),
  routes: bounded(route, IR_LIMITS.routesPerVhost),
});

const certificateRef = z.strictObject({
  namespace: z.string().regex(DNS_LABEL, 'must be a DNS label'),
  name: z.string().regex(DNS_SUBDOMAIN, 'must be a DNS subdomain'),
  hostnames: bounded(
    checked((v) => (v === '*' ? 'must be a hostname or *.suffix' : validHostname(v, true))),
    IR_LIMITS.hostnamesPerCertificate,
  ),
});

const clientValidation = z.strictObject({
  mode: z.enum(['AllowValidOnly', 'AllowInsecureFallback']),
  caCertificates: bounded(
    z.strictObject({ namespace: z.string().regex(DNS_LABEL, 'must be a DNS label'), name: z.string().regex(DNS_SUBDOMAIN, 'must be a DNS subdomain') }),
    IR_LIMITS.caCertificatesPerSocket,
  ).min(1, 'at least one CA certificate reference'),
});

const cipherName = z.string().regex(CIPHER_NAME, 'must be a cipher name (letters, digits, "-" and "_")');
const tlsOptions = z.strictObject({
  minVersion: z.enum(['TLSv1.2', 'TLSv1.3']).optional(),
  ciphers: bounded(cipherName, IR_LIMITS.ciphers).min(1).optional(),
  cipherSuites: bounded(cipherName, IR_LIMITS.ciphers).min(1).optional(),
});

const socketTls = z.strictObject({
  certificates: bounded(certificateRef, IR_LIMITS.certificatesPerSocket).min(1, 'at least one certificate'),
  clientValidation: clientValidation.optional(),
  options: tlsOptions.optional(),
  listeners: bounded(
    checked((v) => (v === '*' ? null : validHostname(v, true))),
    IR_LIMITS.vhostsPerSocket,
  ).optional(),
});

const socket = z.strictObject({
  name: z.string().regex(SOCKET_NAME, 'must be a generated socket name like a127_0_0_1_80'),
  address: ipAddress,
  port,
  vhosts: bounded(vhost, IR_LIMITS.vhostsPerSocket),
  tls: socketTls.optional(),
});

const service = z.strictObject({
  namespace: z.string().regex(DNS_LABEL, 'must be a DNS label'),
  name: z.string().regex(DNS_LABEL, 'must be a DNS label'),
  port,
  portName: z.union([z.literal(''), z.string().regex(DNS_LABEL, 'must be a port name')]),
  targetPort: z.union([port, z.string().regex(DNS_LABEL, 'must be a port number or name')]).optional(),
  tls: serviceTlsSchema.optional(),
});

const routeGenerations = z
  .record(z.string().regex(ROUTE_KEY, 'must be "namespace/name"'), z.int().min(0))
  .refine((r) => Object.keys(r).length <= IR_LIMITS.routeGenerations, `at most ${IR_LIMITS.routeGenerations} entries`);

export const routingIRSchema = z
  .strictObject({
    version: z.literal(IR_VERSION),
    routeGenerations: routeGenerations.optional(),
    sockets: bounded(socket, IR_LIMITS.sockets),
    services: bounded(service, IR_LIMITS.services),
    pathNormalization: z.enum(['On', 'Off']).optional(),
  })
  .superRefine((ir, ctx) => {
    // Indexes must point into this IR's services: they name VCL directors and select endpoints.
    const n = ir.services.length;
    const check = (index: number | null, path: (string | number)[]) => {
      if (index !== null && index >= n) ctx.addIssue({ code: 'custom', path, message: `service index ${index} is out of range (${n} services)` });
    };
    ir.sockets.forEach((s, si) =>
      s.vhosts.forEach((v, vi) =>
        v.routes.forEach((r, ri) => {
          const at = ['sockets', si, 'vhosts', vi, 'routes', ri, 'action'];
          r.action.backends.forEach((b, bi) => check(b.service, [...at, 'backends', bi, 'service']));
          r.action.mirrors?.forEach((m, mi) => check(m.service, [...at, 'mirrors', mi, 'service']));
        }),
      ),
    );
  });

// tsc checks the schema against the hand-written types both ways: a field added to RoutingIR
// without the schema (or the other way round) fails the type check. Checked level by level:
// TypeScript stops comparing deeply nested types and would let a difference far down pass.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Parsed = z.infer<typeof routingIRSchema>;
type ParsedSocket = Parsed['sockets'][number];
type ParsedVhost = ParsedSocket['vhosts'][number];
type ParsedRoute = ParsedVhost['routes'][number];
const schemaMatchesTypes: [
  Same<Parsed['version'] | Parsed['routeGenerations'], RoutingIR['version'] | RoutingIR['routeGenerations']>,
  Same<keyof Parsed, keyof RoutingIR>,
  Same<Parsed['services'][number], IRService>,
  Same<Omit<ParsedSocket, 'vhosts' | 'tls'>, Omit<IRSocket, 'vhosts' | 'tls'>>,
  Same<keyof ParsedSocket, keyof IRSocket>,
  Same<NonNullable<ParsedSocket['tls']>['certificates'][number], IRSocketTLS['certificates'][number]>,
  Same<NonNullable<ParsedSocket['tls']>, IRSocketTLS>,
  Same<Omit<ParsedVhost, 'routes'>, Omit<IRVirtualHost, 'routes'>>,
  Same<Omit<ParsedRoute, 'match' | 'action'>, Omit<IRRoute, 'match' | 'action'>>,
  Same<ParsedRoute['match'], IRMatch>,
  Same<ParsedRoute['action'], IRAction>,
  Same<NonNullable<ParsedRoute['action']['redirect']>, NonNullable<IRAction['redirect']>>,
  Same<NonNullable<ParsedRoute['action']['cors']>, NonNullable<IRAction['cors']>>,
  Same<NonNullable<ParsedRoute['action']['retry']>, NonNullable<IRAction['retry']>>,
  Same<ParsedRoute['action']['backends'][number], IRAction['backends'][number]>,
] = [true, true, true, true, true, true, true, true, true, true, true, true, true, true, true];
void schemaMatchesTypes;

/** "sockets[0].vhosts[3].routes[1].action.redirect.statusCode" */
export function issuePath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out === '' ? String(p) : `.${String(p)}`;
  return out || '(root)';
}

/** The first problems of an IR that fails the schema, each naming its JSON path. */
export function describeIssues(error: z.ZodError, max = 3): string {
  const shown = error.issues.slice(0, max).map((i) => `${issuePath(i.path)}: ${i.message}`);
  const more = error.issues.length > max ? ` (and ${error.issues.length - max} more)` : '';
  return `${shown.join('; ')}${more}`;
}

export type ParseIRResult = { ok: true; ir: RoutingIR } | { ok: false; reason: string };

/** Parses untrusted JSON (already JSON.parse'd) as a routing IR. */
export function parseRoutingIR(value: unknown): ParseIRResult {
  const r = routingIRSchema.safeParse(value);
  if (!r.success) return { ok: false, reason: describeIssues(r.error) };
  return { ok: true, ir: r.data };
}
