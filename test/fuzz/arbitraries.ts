// Generators of Kubernetes manifests for the fuzz properties. Every object is built in one of
// three modes: valid (what a careful user writes), wrong-typed (numbers where strings belong,
// objects where lists belong, nulls, huge and negative numbers, floats) and hostile (strings
// built to break out of VCL string literals, comments, regexes and inline C). Hostile strings
// carry MARKER, so a scan of the generated VCL can tell where user text ended up.
import fc from 'fast-check';
import { CONTROLLER_NAME } from '../../src/gatewayapi/features.ts';

/** Never written by the compiler itself; "~" cannot appear in a VCL identifier or a hostname. */
export const MARKER = '~FZMK~';
export const NS = 'fz';
export const GATEWAY = 'gw';
export const CLASS = 'vgw';
/** Loopback range of the fuzz tests. */
export const LOOPBACK = '127.0.27';

export type Mode = 'valid' | 'wrong' | 'hostile';

export interface Modes {
  /** Relative weights of the three modes, drawn once per object. */
  valid: number;
  wrong: number;
  hostile: number;
}

export const ALL_MODES: Modes = { valid: 6, wrong: 2, hostile: 3 };
export const NO_WRONG_TYPES: Modes = { valid: 6, wrong: 0, hostile: 3 };

// Pieces that break naive quoting, VCL structure, inline C, YAML or regex syntax.
export const HOSTILE_TOKENS = [
  '"', '"}', '{"', '}', '{', 'C{', '}C', '\\', '\\"', "'", '\n', '\r\n', '\u0000', '\t', '#', '//', '/*', '*/', ';',
  'sub vcl_recv {', '} sub vcl_recv { return (synth(200)); }', 'std.fileread("/etc/passwd")', 'std.fileread(', 'include "x";',
  'vcl 4.1;', 'return (pipe);', 'import std;', '${', '%s', '%n', '$(id)', '`', '\\Q', '\\E', '\\c)', '\\c', '(?', '(?i)', '(?#',
  '[[:foo:]]', '[[:alpha:]]', '\\k<a>', '\\1', '(?=a)', '(?<=a)', '(?P<n>a)', '\\x{41}', '\\p{L}', '\\', '.*', '.*.*.*.*=x',
  '(a+)+$', '[^"]', '|', '^', '$', '*', '+', '?', '(', ')', '[', ']', 'é', '💥', '\u202e', '\u00a0', '\ufeff', '\ud800',
  '---', '- x', ': x', '&a', '*a', '!!js', '~', '%00', '%2F', '%', 'é'.normalize('NFD'), ' ', 'x-vgw-route', 'X-Vgw-Host',
];

const token = fc.constantFrom(...HOSTILE_TOKENS);

/** A hostile string with the marker somewhere inside it (so shrinking keeps it traceable). */
export const hostileString: fc.Arbitrary<string> = fc.oneof(
  { weight: 8, arbitrary: fc.tuple(fc.array(token, { maxLength: 4 }), fc.array(token, { maxLength: 4 })).map(([a, b]) => `${a.join('')}${MARKER}${b.join('')}`) },
  { weight: 1, arbitrary: fc.constantFrom(`${'"}'.repeat(3000)}${MARKER}`, `${'a'.repeat(10_000)}${MARKER}"}`, `${MARKER}${'x'.repeat(70_000)}`) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 20 }).map((s) => `${s}${MARKER}${s}`) },
);

/** A value of the wrong type for almost any field. */
export const wrongValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(null, true, false, 0, -1, 1.5, -0.5, 1e308, -1e308, 2 ** 53 + 1, 65536, 99999999999, '80', '', '1e3', 'NaN'),
  fc.constant({}),
  fc.constant([]),
  fc.constant([null]),
  fc.constant({ a: 1 }),
  fc.constant([{}]),
  fc.constant([[1]]),
  fc.integer(),
  fc.double({ noNaN: true }),
);

/** Picks valid, wrong-typed or hostile per field, according to the object's mode. */
export function field<T>(mode: Mode, valid: fc.Arbitrary<T>, kind: 'string' | 'other' = 'string'): fc.Arbitrary<unknown> {
  if (mode === 'valid') return valid;
  if (mode === 'wrong') return fc.oneof({ weight: 6, arbitrary: valid }, { weight: 1, arbitrary: wrongValue });
  if (kind !== 'string') return valid;
  return fc.oneof({ weight: 3, arbitrary: valid }, { weight: 1, arbitrary: hostileString });
}

/** A list field: sometimes an object or a list holding nulls in wrong-typed mode. */
function list<T>(mode: Mode, item: fc.Arbitrary<T>, max: number, min = 0): fc.Arbitrary<unknown> {
  return field(mode, fc.array(item, { minLength: min, maxLength: max }), 'other');
}

function optional<T>(a: fc.Arbitrary<T>, freq = 2): fc.Arbitrary<T | undefined> {
  return fc.option(a, { nil: undefined, freq });
}

/** Drops undefined fields, so the YAML holds only what was generated. */
export function clean<T>(value: T): T {
  if (Array.isArray(value)) return value.map(clean) as T;
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = clean(v);
    return out as T;
  }
  return value;
}

export const HOSTS = ['a.test', 'b.test', 'x.a.test', 'foo.l.test', '*.a.test', '*.l.test', '*.w.test', 'deep.x.w.test'];
export const PATHS = ['/', '/a', '/a/', '/a/b', '/api', '/api/v1', '/x%20y', '/b/', '/A', '/a.b', '/~u'];
export const REGEXES = ['/a/.*', '/[a-z]+', '/(a|b)/[0-9]+', '/v[0-9]/.*', '.*', '/a[.]b', '/x{1,3}', '/(api|b)(/.*)?'];
const HEADER_NAMES = ['X-A', 'x-b', 'Accept', 'X_C'];
const HEADER_VALUES = ['1', 'yes', 'a b', 'x"}y', 'Q', 'a{"b'];
const QUERY_NAMES = ['q', 'id', 'Q', 'a.b'];
const QUERY_VALUES = ['1', 'x', '%20', 'a=b', ''];
const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'];
const DURATIONS = ['1s', '500ms', '0s', '1m30s', '10ms', '25h', '1h'];

const pathMatch = (mode: Mode) =>
  fc.oneof(
    fc.record({ type: fc.constant('Exact'), value: field(mode, fc.constantFrom(...PATHS)) }),
    fc.record({ type: fc.constant('PathPrefix'), value: field(mode, fc.constantFrom(...PATHS)) }),
    fc.record({ type: fc.constant('RegularExpression'), value: field(mode, fc.constantFrom(...REGEXES)) }),
    fc.record({ type: field(mode, fc.constantFrom('Exact', 'Bogus'), 'string'), value: field(mode, fc.constantFrom(...PATHS)) }, { requiredKeys: [] }),
  );

const valueMatch = (mode: Mode, names: string[], values: string[], regexes: string[]) =>
  fc.oneof(
    fc.record({ type: optional(fc.constant('Exact')), name: field(mode, fc.constantFrom(...names)), value: field(mode, fc.constantFrom(...values)) }),
    fc.record({ type: fc.constant('RegularExpression'), name: field(mode, fc.constantFrom(...names)), value: field(mode, fc.constantFrom(...regexes)) }),
  );

const VALUE_REGEXES = ['[0-9]+', 'y.*', '(a|b) b', '.*', 'x"}.', '[[:alpha:]]+'];

export const matchArb = (mode: Mode) =>
  fc.record(
    {
      path: field(mode, pathMatch(mode), 'other'),
      headers: list(mode, valueMatch(mode, HEADER_NAMES, HEADER_VALUES, VALUE_REGEXES), 2),
      queryParams: list(mode, valueMatch(mode, QUERY_NAMES, QUERY_VALUES, VALUE_REGEXES), 2),
      method: field(mode, fc.constantFrom(...METHODS)),
    },
    { requiredKeys: [] },
  );

const headerList = (mode: Mode) => list(mode, fc.record({ name: field(mode, fc.constantFrom(...HEADER_NAMES, 'X-New', 'Set-Cookie')), value: field(mode, fc.constantFrom(...HEADER_VALUES)) }), 2);

const headerModifier = (mode: Mode) =>
  fc.record({ set: headerList(mode), add: headerList(mode), remove: list(mode, field(mode, fc.constantFrom(...HEADER_NAMES, 'X-Gone')), 2) }, { requiredKeys: [] });

const pathModifier = (mode: Mode) =>
  fc.oneof(
    fc.record({ type: fc.constant('ReplaceFullPath'), replaceFullPath: field(mode, fc.constantFrom('/new', '/', '/a/b', '/%2e')) }),
    fc.record({ type: fc.constant('ReplacePrefixMatch'), replacePrefixMatch: field(mode, fc.constantFrom('/new', '/', '', '/p/')) }),
    fc.record({ type: field(mode, fc.constantFrom('ReplaceFullPath', 'Other')) }),
  );

const backendRefBase = (mode: Mode, services: number) => ({
  name: field(mode, fc.constantFrom(...Array.from({ length: services }, (_, i) => `svc-${i}`), 'missing')),
  port: field(mode, fc.constantFrom(80, 81), 'other'),
});

export const filterArb = (mode: Mode, services: number): fc.Arbitrary<unknown> =>
  fc.oneof(
    fc.record({ type: fc.constant('RequestHeaderModifier'), requestHeaderModifier: field(mode, headerModifier(mode), 'other') }),
    fc.record({ type: fc.constant('ResponseHeaderModifier'), responseHeaderModifier: field(mode, headerModifier(mode), 'other') }),
    fc.record({
      type: fc.constant('RequestRedirect'),
      requestRedirect: fc.record(
        {
          scheme: field(mode, fc.constantFrom('http', 'https')),
          hostname: field(mode, fc.constantFrom('r.test', 'a.test')),
          port: field(mode, fc.constantFrom(8443, 80, 443), 'other'),
          statusCode: field(mode, fc.constantFrom(301, 302, 303, 307, 308), 'other'),
          path: field(mode, pathModifier(mode), 'other'),
        },
        { requiredKeys: [] },
      ),
    }),
    fc.record({
      type: fc.constant('URLRewrite'),
      urlRewrite: fc.record({ hostname: field(mode, fc.constantFrom('rw.test', 'b.test')), path: field(mode, pathModifier(mode), 'other') }, { requiredKeys: [] }),
    }),
    fc.record({
      type: fc.constant('RequestMirror'),
      requestMirror: fc.record(
        {
          backendRef: fc.record(backendRefBase(mode, services)),
          percent: optional(field(mode, fc.integer({ min: 0, max: 100 }), 'other')),
          fraction: optional(fc.record({ numerator: field(mode, fc.integer({ min: 0, max: 10 }), 'other'), denominator: field(mode, fc.integer({ min: 1, max: 10 }), 'other') }), 1),
        },
        { requiredKeys: ['backendRef'] },
      ),
    }),
    fc.record({
      type: fc.constant('CORS'),
      cors: fc.record(
        {
          allowOrigins: list(mode, field(mode, fc.constantFrom('*', 'https://a.test', 'https://*.a.test', 'http://b.test:8080')), 2),
          allowMethods: list(mode, field(mode, fc.constantFrom('GET', 'POST', '*')), 2),
          allowHeaders: list(mode, field(mode, fc.constantFrom('X-A', '*', 'Content-Type')), 2),
          exposeHeaders: list(mode, field(mode, fc.constantFrom('X-A', 'X-B')), 2),
          allowCredentials: field(mode, fc.boolean(), 'other'),
          maxAge: field(mode, fc.integer({ min: 1, max: 86400 }), 'other'),
        },
        { requiredKeys: [] },
      ),
    }),
    fc.record({ type: field(mode, fc.constantFrom('ExtensionRef', 'Nonsense')), extensionRef: fc.constant({ group: 'x', kind: 'Y', name: 'z' }) }),
  );

const backendRefArb = (mode: Mode, services: number) =>
  fc.record(
    {
      ...backendRefBase(mode, services),
      weight: optional(field(mode, fc.integer({ min: 0, max: 100 }), 'other')),
      filters: optional(list(mode, fc.oneof(
        fc.record({ type: fc.constant('RequestHeaderModifier'), requestHeaderModifier: headerModifier(mode) }),
        fc.record({ type: fc.constant('ResponseHeaderModifier'), responseHeaderModifier: headerModifier(mode) }),
        fc.record({ type: fc.constant('URLRewrite'), urlRewrite: fc.record({ hostname: fc.constant('x.test') }) }),
      ), 2), 1),
    },
    { requiredKeys: ['name'] },
  );

const ruleArb = (mode: Mode, services: number) =>
  fc.record(
    {
      name: field(mode, fc.constantFrom('main', 'r-1', 'Upper')),
      matches: list(mode, field(mode, matchArb(mode), 'other'), 3),
      filters: list(mode, filterArb(mode, services), 3),
      backendRefs: list(mode, backendRefArb(mode, services), 3),
      timeouts: fc.record({ request: field(mode, fc.constantFrom(...DURATIONS)), backendRequest: field(mode, fc.constantFrom(...DURATIONS)) }, { requiredKeys: [] }),
      retry: fc.record(
        {
          attempts: field(mode, fc.integer({ min: 0, max: 20 }), 'other'),
          codes: list(mode, field(mode, fc.constantFrom(500, 502, 503, 504, 404, 200), 'other'), 3),
          backoff: field(mode, fc.constantFrom('100ms', '0s', '2m')),
        },
        { requiredKeys: [] },
      ),
    },
    { requiredKeys: [] },
  );

const modeArb = (m: Modes) =>
  fc.oneof(
    ...([['valid', m.valid], ['wrong', m.wrong], ['hostile', m.hostile]] as const)
      .filter(([, w]) => w > 0)
      .map(([mode, weight]) => ({ weight, arbitrary: fc.constant(mode as Mode) })),
  );

/** An object built in a mode drawn per object. */
function perObject<T>(modes: Modes, build: (mode: Mode) => fc.Arbitrary<T>): fc.Arbitrary<T> {
  return modeArb(modes).chain(build);
}

const objectName = (mode: Mode, base: string, i: number) => field(mode, fc.constant(`${base}-${i}`)).map((n) => (typeof n === 'string' && n !== `${base}-${i}` ? `${n}${i}` : n));

export const routeArb = (modes: Modes, i: number, services: number) =>
  perObject(modes, (mode) =>
    fc.record({
      apiVersion: fc.constant('gateway.networking.k8s.io/v1'),
      kind: fc.constant('HTTPRoute'),
      metadata: fc.record({ name: objectName(mode, 'route', i), namespace: fc.constant(NS) }),
      spec: fc.record(
        {
          parentRefs: list(mode, parentRefArb(mode), 2, 1),
          hostnames: list(mode, field(mode, fc.constantFrom(...HOSTS)), 3),
          rules: list(mode, ruleArb(mode, services), 3),
        },
        { requiredKeys: ['parentRefs'] },
      ),
    }),
  );

// Mostly the plain reference a user writes; sometimes a section, a port or a missing parent.
const parentRefArb = (mode: Mode) =>
  fc.oneof(
    { weight: 4, arbitrary: fc.record({ name: field(mode, fc.constant(GATEWAY)) }) },
    {
      weight: 1,
      arbitrary: fc.record(
        {
          name: field(mode, fc.constantFrom(GATEWAY, 'gw-2', 'absent')),
          sectionName: field(mode, fc.constantFrom('http', 'wild', 'other', 'nope')),
          port: field(mode, fc.constantFrom(27080, 27081, 1), 'other'),
        },
        { requiredKeys: ['name'] },
      ),
    },
  );

/** Listeners named http (port 27080, any host), wild (27080, *.l.test) and other (27081). */
const listenerArb = (mode: Mode, name: string, port: number, hostname?: string) =>
  fc.record(
    {
      name: field(mode, fc.constant(name)),
      port: field(mode, fc.constant(port), 'other'),
      protocol: field(mode, fc.oneof({ weight: 8, arbitrary: fc.constant('HTTP') }, { weight: 1, arbitrary: fc.constantFrom('HTTPS', 'UDP') })),
      hostname: field(mode, fc.constantFrom(hostname ?? 'a.test', '*.w.test', 'a.test')),
      allowedRoutes: optional(fc.record({ namespaces: fc.record({ from: field(mode, fc.constantFrom('All', 'Same', 'Same', 'Selector')) }) }), 3),
    },
    { requiredKeys: hostname ? ['name', 'port', 'protocol', 'hostname'] : ['name', 'port', 'protocol'] },
  );

const listenersArb = (mode: Mode) =>
  fc
    .tuple(listenerArb(mode, 'http', 27080), optional(listenerArb(mode, 'wild', 27080, '*.l.test')), optional(listenerArb(mode, 'other', 27081)))
    .map((ls) => ls.filter((l) => l !== undefined));

export const gatewayArb = (modes: Modes, name: string) =>
  perObject(modes, (mode) =>
    fc.record({
      apiVersion: fc.constant('gateway.networking.k8s.io/v1'),
      kind: fc.constant('Gateway'),
      metadata: fc.record({ name: fc.constant(name), namespace: fc.constant(NS) }),
      spec: fc.record(
        {
          gatewayClassName: field(mode, fc.constant(CLASS)),
          addresses: optional(list(mode, fc.record({ type: field(mode, fc.constantFrom('IPAddress', 'Hostname')), value: field(mode, fc.constant(`${LOOPBACK}.1`)) }), 1), 1),
          listeners: field(mode, listenersArb(mode), 'other'),
        },
        { requiredKeys: ['gatewayClassName', 'listeners'] },
      ),
    }),
  );

/** Service svc-i (port 80) and its EndpointSlice on a 127.0.27.x loopback address. */
export const serviceArb = (modes: Modes, i: number) =>
  perObject(modes, (mode) =>
    fc.tuple(
      fc.record({
        apiVersion: fc.constant('v1'),
        kind: fc.constant('Service'),
        metadata: fc.record({ name: fc.constant(`svc-${i}`), namespace: fc.constant(NS) }),
        spec: fc.record({ ports: list(mode, fc.record({ name: field(mode, fc.constant('http')), port: field(mode, fc.constant(80), 'other'), targetPort: field(mode, fc.constant(8080 + i), 'other') }), 2, 1) }),
      }),
      fc.record({
        apiVersion: fc.constant('discovery.k8s.io/v1'),
        kind: fc.constant('EndpointSlice'),
        metadata: fc.record({ name: fc.constant(`svc-${i}-1`), namespace: fc.constant(NS), labels: fc.record({ 'kubernetes.io/service-name': field(mode, fc.constant(`svc-${i}`)) }) }),
        addressType: field(mode, fc.constantFrom('IPv4', 'IPv6', 'FQDN')),
        ports: list(mode, fc.record({ name: field(mode, fc.constant('http')), port: field(mode, fc.constant(8080 + i), 'other') }), 2),
        endpoints: list(mode, fc.record({
          addresses: list(mode, field(mode, fc.constantFrom(`${LOOPBACK}.${10 + i}`, '::1', '127.0.27.300')), 2, 1),
          conditions: fc.record({ ready: field(mode, fc.boolean(), 'other') }, { requiredKeys: [] }),
        }, { requiredKeys: ['addresses'] }), 2),
      }),
    ),
  );

export const gatewayClassArb = (modes: Modes) =>
  perObject(modes, (mode) =>
    fc.record({
      apiVersion: fc.constant('gateway.networking.k8s.io/v1'),
      kind: fc.constant('GatewayClass'),
      metadata: fc.record({ name: fc.constant(CLASS) }),
      spec: fc.record({ controllerName: field(mode, fc.constant(CONTROLLER_NAME)), description: optional(field(mode, fc.constant('fuzz'))) }),
    }),
  );

const SERVICES = 4;

/** A whole directory's worth of objects: a GatewayClass, one or two Gateways, Services, routes. */
export const snapshotArb = (modes: Modes = ALL_MODES): fc.Arbitrary<object[]> =>
  fc
    .tuple(
      gatewayClassArb(modes),
      gatewayArb(modes, GATEWAY),
      optional(gatewayArb(modes, 'gw-2'), 1),
      fc.tuple(...Array.from({ length: SERVICES }, (_, i) => serviceArb(modes, i))),
      fc.integer({ min: 1, max: 6 }).chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => routeArb(modes, i, SERVICES)))),
    )
    .map(([gc, gw, gw2, services, routes]) => clean([gc, gw, ...(gw2 ? [gw2] : []), ...services.flat(), ...routes]) as object[]);
