// HTTPRoute rules -> IR matches and actions. Validation happens here, once per route: a route
// with any value we cannot serve faithfully is rejected whole (Accepted=False, UnsupportedValue)
// instead of being served differently from what its author wrote.
import type { IRAction, IRCors, IRHeaderModifier, IRMatch, IRPathModifier, IRRedirect, IRRetry, IRRewrite, IRTimeouts, IRValueMatch } from '../ir/types.ts';
import {
  controlCharacterProblem,
  headerNameProblem,
  isReservedHeader,
  MAX_BACKOFF_MS,
  MAX_CORS_MAX_AGE,
  MAX_RETRY_ATTEMPTS,
  MAX_TIMEOUT_MS,
  MAX_VALUE_LENGTH,
  METHODS,
  ORIGIN,
  PATH,
  QUERY_NAME,
  REDIRECT_CODES,
  RESERVED_HEADER_PROBLEM,
  TOKEN,
  validHostname,
} from '../ir/limits.ts';
import { regexProblem } from '../ir/regex-dialect.ts';
import { parseDuration } from './duration.ts';
import type { HTTPBackendRef, HTTPCORSFilter, HTTPHeaderFilter, HTTPPathModifier, HTTPRoute, HTTPRouteFilter, HTTPRouteMatch, HTTPRouteRule } from './types.ts';

export class RouteValueError extends Error {
  override name = 'RouteValueError';
}

/** A mirror whose backendRef is resolved with the rule's backends (ReferenceGrant, Service). */
export interface ValidMirror {
  ref: HTTPBackendRef;
  percent: number;
}

/** Filters that apply only to requests sent to one backendRef. */
export interface BackendFilters {
  requestHeaders?: IRHeaderModifier;
  responseHeaders?: IRHeaderModifier;
  filters: string[];
}

/** A rule with its matches and filters validated; backends are resolved separately. */
export interface ValidRule {
  index: number;
  name?: string;
  matches: IRMatch[];
  /** Rule-level filter types in spec order, for metrics. */
  filters: string[];
  requestHeaders?: IRHeaderModifier;
  responseHeaders?: IRHeaderModifier;
  redirect?: ValidRedirect;
  rewrite?: { hostname?: string; path?: HTTPPathResult };
  cors?: IRCors;
  mirrors: ValidMirror[];
  timeouts?: IRTimeouts;
  retry?: IRRetry;
  /** Per backendRef index (aligned with rule.backendRefs). */
  backendFilters: (BackendFilters | undefined)[];
}

/** A path modifier before the matched prefix is known (it differs per match). */
type HTTPPathResult = { type: 'ReplaceFullPath'; value: string } | { type: 'ReplacePrefixMatch'; value: string };

/** A redirect before the listener port and the matched prefix are known. */
type ValidRedirect = Omit<IRRedirect, 'listenerPort' | 'path'> & { path?: HTTPPathResult };

const RULE_FIELDS = ['name', 'matches', 'filters', 'backendRefs', 'timeouts', 'retry', 'sessionPersistence'];

export function validateRoute(route: HTTPRoute): ValidRule[] {
  const rules = route.spec.rules ?? [];
  for (const h of route.spec.hostnames ?? []) {
    const problem = validHostname(h, true);
    if (problem) throw new RouteValueError(`spec.hostnames: ${JSON.stringify(h)} ${problem}`);
  }
  const out: ValidRule[] = [];
  const ruleList = rules.length ? rules : [{} as HTTPRouteRule];
  ruleList.forEach((rule, index) => {
    const where = `spec.rules[${index}]`;
    const matches = (rule.matches?.length ? rule.matches : [{}]).map((m, i) => validateMatch(m, `${where}.matches[${i}]`));
    const valid: ValidRule = { index, matches, filters: [], mirrors: [], backendFilters: [] };
    if (rule.name !== undefined) valid.name = rule.name;
    for (const key of Object.keys(rule)) {
      if (!RULE_FIELDS.includes(key)) throw new RouteValueError(`${where}.${key} is not supported`);
    }
    if ((rule as { sessionPersistence?: unknown }).sessionPersistence !== undefined) {
      throw new RouteValueError(`${where}.sessionPersistence is not supported`);
    }
    applyFilters(valid, rule.filters ?? [], where);
    if (rule.timeouts !== undefined) valid.timeouts = timeouts(rule.timeouts, `${where}.timeouts`);
    if (rule.retry !== undefined) valid.retry = retry(rule.retry, `${where}.retry`);
    valid.backendFilters = (rule.backendRefs ?? []).map((ref, i) => backendFilters(ref.filters ?? [], `${where}.backendRefs[${i}].filters`));
    const prefixOnly = matches.every((m) => m.path.type === 'PathPrefix');
    if (valid.redirect?.path?.type === 'ReplacePrefixMatch' && !prefixOnly) {
      throw new RouteValueError(`${where}: a ReplacePrefixMatch redirect needs PathPrefix matches`);
    }
    if (valid.rewrite?.path?.type === 'ReplacePrefixMatch' && !prefixOnly) {
      throw new RouteValueError(`${where}: a ReplacePrefixMatch URLRewrite needs PathPrefix matches`);
    }
    out.push(valid);
  });
  return out;
}

function validateMatch(m: HTTPRouteMatch, where: string): IRMatch {
  const type = m.path?.type ?? 'PathPrefix';
  const value = m.path?.value ?? '/';
  if (type !== 'Exact' && type !== 'PathPrefix' && type !== 'RegularExpression') {
    throw new RouteValueError(`${where}.path.type ${JSON.stringify(type)} is not supported`);
  }
  checkString(value, `${where}.path.value`);
  if (type === 'RegularExpression') {
    checkRegex(value, `${where}.path.value`);
  } else {
    if (!value.startsWith('/')) throw new RouteValueError(`${where}.path.value must start with "/"`);
    if (/[?#]/.test(value)) throw new RouteValueError(`${where}.path.value must not contain "?" or "#"`);
  }
  const match: IRMatch = {
    path: { type, value: type === 'PathPrefix' ? normalizePrefix(value) : value },
    headers: valueMatches(m.headers, `${where}.headers`, true),
    queryParams: valueMatches(m.queryParams, `${where}.queryParams`, false),
  };
  if (m.method !== undefined) {
    if (!METHODS.has(m.method)) throw new RouteValueError(`${where}.method ${JSON.stringify(m.method)} is not supported`);
    match.method = m.method;
  }
  return match;
}

/** "/foo/" and "/foo" are the same segment prefix; only "/" keeps its slash. */
function normalizePrefix(p: string): string {
  const trimmed = p.replace(/\/+$/, '');
  return trimmed === '' ? '/' : trimmed;
}

function valueMatches(
  list: { type?: string; name: string; value: string }[] | undefined,
  where: string,
  isHeader: boolean,
): IRValueMatch[] {
  const out: IRValueMatch[] = [];
  const seen = new Set<string>();
  (list ?? []).forEach((h, i) => {
    const at = `${where}[${i}]`;
    const type = h.type ?? 'Exact';
    if (type !== 'Exact' && type !== 'RegularExpression') throw new RouteValueError(`${at}.type ${JSON.stringify(type)} is not supported`);
    if (typeof h.name !== 'string' || h.name === '') throw new RouteValueError(`${at}.name is required`);
    if (typeof h.value !== 'string') throw new RouteValueError(`${at}.value must be a string`);
    if (isHeader) {
      const problem = headerNameProblem(h.name);
      if (problem) throw new RouteValueError(`${at}: ${problem}`);
    } else if (!QUERY_NAME.test(h.name)) {
      throw new RouteValueError(`${at}.name ${JSON.stringify(h.name.slice(0, 80))} must be an HTTP token of at most 256 characters`);
    }
    checkString(h.value, `${at}.value`);
    if (type === 'RegularExpression') checkRegex(h.value, `${at}.value`);
    // Spec: header names are case-insensitive, query names are not; only the first entry counts.
    const key = isHeader ? h.name.toLowerCase() : h.name;
    if (seen.has(key)) return;
    seen.add(key);
    out.push({ name: h.name, type, value: h.value });
  });
  return out;
}

function applyFilters(rule: ValidRule, filters: HTTPRouteFilter[], where: string): void {
  const once = new Set<string>();
  filters.forEach((f, i) => {
    const at = `${where}.filters[${i}]`;
    if (f.type !== 'RequestMirror') {
      if (once.has(f.type)) throw new RouteValueError(`${at}: ${f.type} may appear only once per rule`);
      once.add(f.type);
    }
    switch (f.type) {
      case 'RequestHeaderModifier':
        rule.requestHeaders = headerModifier(f.requestHeaderModifier, `${at}.requestHeaderModifier`);
        break;
      case 'ResponseHeaderModifier':
        rule.responseHeaders = headerModifier(f.responseHeaderModifier, `${at}.responseHeaderModifier`);
        break;
      case 'RequestRedirect':
        rule.redirect = redirect(f, at);
        break;
      case 'URLRewrite':
        rule.rewrite = urlRewrite(f, at);
        break;
      case 'RequestMirror':
        rule.mirrors.push(mirror(f, at));
        break;
      case 'CORS':
        rule.cors = cors(f.cors, `${at}.cors`);
        break;
      default:
        throw new RouteValueError(`${at}: filter type ${JSON.stringify(f.type)} is not supported`);
    }
    rule.filters.push(f.type);
  });
  if (rule.redirect && rule.rewrite) throw new RouteValueError(`${where}.filters: RequestRedirect and URLRewrite cannot be used together`);
}

const BACKEND_FILTERS = ['RequestHeaderModifier', 'ResponseHeaderModifier'];

function backendFilters(filters: HTTPRouteFilter[], where: string): BackendFilters | undefined {
  if (filters.length === 0) return undefined;
  const out: BackendFilters = { filters: [] };
  filters.forEach((f, i) => {
    const at = `${where}[${i}]`;
    if (!BACKEND_FILTERS.includes(f.type)) {
      throw new RouteValueError(`${at}: filter type ${JSON.stringify(f.type)} is not supported on a backendRef (supported: ${BACKEND_FILTERS.join(', ')})`);
    }
    if (out.filters.includes(f.type)) throw new RouteValueError(`${at}: ${f.type} may appear only once per backendRef`);
    out.filters.push(f.type);
    if (f.type === 'RequestHeaderModifier') out.requestHeaders = headerModifier(f.requestHeaderModifier, `${at}.requestHeaderModifier`);
    else out.responseHeaders = headerModifier(f.responseHeaderModifier, `${at}.responseHeaderModifier`);
  });
  return out;
}

function headerModifier(m: HTTPHeaderFilter | undefined, where: string): IRHeaderModifier {
  if (!m) throw new RouteValueError(`${where} is required`);
  const out: IRHeaderModifier = { set: [], add: [], remove: [] };
  const named = (name: string, at: string, seen: Set<string>) => {
    const problem = headerNameProblem(name);
    if (problem) throw new RouteValueError(`${at}: ${problem}`);
    // The router keeps its per-request state in x-vgw-* headers; a route must not forge it.
    if (isReservedHeader(name)) throw new RouteValueError(`${at}: ${RESERVED_HEADER_PROBLEM}`);
    const lower = name.toLowerCase();
    if (seen.has(lower)) throw new RouteValueError(`${at}: header ${JSON.stringify(name)} is listed twice (names are case-insensitive)`);
    seen.add(lower);
  };
  for (const op of ['set', 'add'] as const) {
    const seen = new Set<string>();
    (m[op] ?? []).forEach((h, i) => {
      named(h.name, `${where}.${op}[${i}]`, seen);
      checkString(h.value, `${where}.${op}[${i}].value`);
      out[op].push({ name: h.name, value: h.value });
    });
  }
  const seen = new Set<string>();
  (m.remove ?? []).forEach((name, i) => {
    named(name, `${where}.remove[${i}]`, seen);
    out.remove.push(name);
  });
  if (!out.set.length && !out.add.length && !out.remove.length) throw new RouteValueError(`${where} needs at least one of set, add or remove`);
  return out;
}

function redirect(f: HTTPRouteFilter, at: string): ValidRedirect {
  const r = f.requestRedirect;
  if (!r) throw new RouteValueError(`${at}.requestRedirect is required`);
  const out: ValidRedirect = { statusCode: r.statusCode ?? 302 };
  if (!REDIRECT_CODES.has(out.statusCode)) throw new RouteValueError(`${at}.requestRedirect.statusCode ${r.statusCode} is not supported`);
  if (r.scheme !== undefined) {
    if (r.scheme !== 'http' && r.scheme !== 'https') throw new RouteValueError(`${at}.requestRedirect.scheme must be http or https`);
    out.scheme = r.scheme;
  }
  if (r.hostname !== undefined) out.hostname = preciseHostname(r.hostname, `${at}.requestRedirect.hostname`);
  if (r.port !== undefined) {
    if (!Number.isInteger(r.port) || r.port < 1 || r.port > 65535) throw new RouteValueError(`${at}.requestRedirect.port is out of range`);
    out.port = r.port;
  }
  if (r.path !== undefined) {
    const p = pathModifier(r.path, `${at}.requestRedirect.path`);
    out.path = p;
  }
  return out;
}

function urlRewrite(f: HTTPRouteFilter, at: string): NonNullable<ValidRule['rewrite']> {
  const r = f.urlRewrite;
  if (!r) throw new RouteValueError(`${at}.urlRewrite is required`);
  const out: NonNullable<ValidRule['rewrite']> = {};
  if (r.hostname !== undefined) out.hostname = preciseHostname(r.hostname, `${at}.urlRewrite.hostname`);
  if (r.path !== undefined) out.path = pathModifier(r.path, `${at}.urlRewrite.path`);
  if (out.hostname === undefined && out.path === undefined) throw new RouteValueError(`${at}.urlRewrite needs hostname or path`);
  return out;
}

function preciseHostname(value: string, where: string): string {
  const problem = validHostname(value, false);
  if (problem) throw new RouteValueError(`${where} ${JSON.stringify(value)} ${problem}`);
  return value;
}

function pathModifier(p: HTTPPathModifier, where: string): HTTPPathResult {
  const value = p.type === 'ReplaceFullPath' ? p.replaceFullPath : p.type === 'ReplacePrefixMatch' ? p.replacePrefixMatch : undefined;
  if (value === undefined) throw new RouteValueError(`${where} needs type ReplaceFullPath or ReplacePrefixMatch with its value`);
  checkString(value, where);
  // The spec's table allows an empty ReplacePrefixMatch: the prefix is simply removed.
  if (p.type === 'ReplacePrefixMatch' && value === '') return { type: 'ReplacePrefixMatch', value };
  if (!PATH.test(value)) throw new RouteValueError(`${where} must start with "/" and hold only URL path characters (percent-encode others; no "?" or "#")`);
  return p.type === 'ReplaceFullPath' ? { type: 'ReplaceFullPath', value } : { type: 'ReplacePrefixMatch', value };
}

function mirror(f: HTTPRouteFilter, at: string): ValidMirror {
  const m = f.requestMirror;
  if (!m?.backendRef) throw new RouteValueError(`${at}.requestMirror.backendRef is required`);
  if (m.percent !== undefined && m.fraction !== undefined) throw new RouteValueError(`${at}.requestMirror: percent and fraction cannot both be set`);
  let percent = 100;
  if (m.percent !== undefined) {
    if (!Number.isInteger(m.percent) || m.percent < 0 || m.percent > 100) throw new RouteValueError(`${at}.requestMirror.percent must be an integer 0-100`);
    percent = m.percent;
  } else if (m.fraction !== undefined) {
    const num = m.fraction.numerator;
    const den = m.fraction.denominator ?? 100;
    if (!Number.isInteger(num) || !Number.isInteger(den) || (num as number) < 0 || den < 1 || (num as number) > den) {
      throw new RouteValueError(`${at}.requestMirror.fraction needs integers 0 <= numerator <= denominator, denominator >= 1`);
    }
    percent = ((num as number) / den) * 100;
  }
  return { ref: m.backendRef, percent };
}

function cors(c: HTTPCORSFilter | undefined, where: string): IRCors {
  if (!c) throw new RouteValueError(`${where} is required`);
  const list = (values: string[] | undefined, field: string, check: (v: string, at: string) => string) => {
    const out: string[] = [];
    (values ?? []).forEach((v, i) => {
      const at = `${where}.${field}[${i}]`;
      if (typeof v !== 'string') throw new RouteValueError(`${at} must be a string`);
      const value = check(v, at);
      if (!out.includes(value)) out.push(value);
    });
    if (out.includes('*') && out.length > 1) throw new RouteValueError(`${where}.${field}: "*" must be the only entry`);
    return out;
  };
  const origin = (v: string, at: string) => {
    const lower = v.toLowerCase();
    if (!ORIGIN.test(lower)) throw new RouteValueError(`${at} ${JSON.stringify(v.slice(0, 80))} must be "*" or scheme://host[:port], host optionally starting with "*."`);
    return lower;
  };
  const method = (v: string, at: string) => {
    if (v !== '*' && !TOKEN.test(v)) throw new RouteValueError(`${at} ${JSON.stringify(v.slice(0, 80))} is not an HTTP method`);
    return v;
  };
  const header = (v: string, at: string) => {
    if (v === '*') return v;
    const problem = headerNameProblem(v);
    if (problem) throw new RouteValueError(`${at}: ${problem}`);
    return v;
  };
  const out: IRCors = {
    allowOrigins: list(c.allowOrigins, 'allowOrigins', origin),
    allowMethods: list(c.allowMethods, 'allowMethods', method),
    allowHeaders: list(c.allowHeaders, 'allowHeaders', header),
    exposeHeaders: list(c.exposeHeaders, 'exposeHeaders', header),
    allowCredentials: c.allowCredentials === true,
  };
  if (c.maxAge !== undefined) {
    if (!Number.isInteger(c.maxAge) || c.maxAge < 1 || c.maxAge > MAX_CORS_MAX_AGE) throw new RouteValueError(`${where}.maxAge must be a positive number of seconds`);
    out.maxAge = c.maxAge;
  }
  return out;
}

function timeouts(t: NonNullable<HTTPRouteRule['timeouts']>, where: string): IRTimeouts {
  const out: IRTimeouts = {};
  for (const field of ['request', 'backendRequest'] as const) {
    if (t[field] === undefined) continue;
    const ms = parseDuration(t[field]);
    if (ms === null) throw new RouteValueError(`${where}.${field} ${JSON.stringify(t[field])} is not a duration like "500ms", "10s" or "1m30s"`);
    if (ms > MAX_TIMEOUT_MS) throw new RouteValueError(`${where}.${field} is longer than 24h`);
    out[field] = ms;
  }
  if (out.request && out.backendRequest && out.backendRequest > out.request) {
    throw new RouteValueError(`${where}.backendRequest must not be longer than ${where}.request`);
  }
  return out;
}

function retry(r: NonNullable<HTTPRouteRule['retry']>, where: string): IRRetry {
  const attempts = r.attempts ?? 1;
  if (!Number.isInteger(attempts) || attempts < 0 || attempts > MAX_RETRY_ATTEMPTS) {
    throw new RouteValueError(`${where}.attempts must be an integer 0-${MAX_RETRY_ATTEMPTS}`);
  }
  const codes: number[] = [];
  (r.codes ?? []).forEach((code, i) => {
    if (!Number.isInteger(code) || code < 400 || code > 599) throw new RouteValueError(`${where}.codes[${i}] must be a status code 400-599`);
    if (!codes.includes(code)) codes.push(code);
  });
  const out: IRRetry = { attempts, codes };
  if (r.backoff !== undefined) {
    const ms = parseDuration(r.backoff);
    if (ms === null) throw new RouteValueError(`${where}.backoff ${JSON.stringify(r.backoff)} is not a duration like "100ms"`);
    if (ms > MAX_BACKOFF_MS) throw new RouteValueError(`${where}.backoff is longer than 1m`);
    if (ms > 0) out.backoffMs = ms;
  }
  return out;
}

function checkString(value: string, where: string): void {
  if (typeof value !== 'string') throw new RouteValueError(`${where} must be a string`);
  const problem = controlCharacterProblem(value);
  if (problem) throw new RouteValueError(`${where} ${problem}`);
  if (value.length > MAX_VALUE_LENGTH) throw new RouteValueError(`${where} is longer than ${MAX_VALUE_LENGTH} characters`);
}

function checkRegex(value: string, where: string): void {
  const problem = regexProblem(value);
  if (problem) throw new RouteValueError(`${where}: invalid regular expression: ${problem}`);
}

/** Builds the IR action of one rule once its backends are known. */
export function ruleAction(
  rule: ValidRule,
  backends: IRAction['backends'],
  mirrors: IRAction['mirrors'],
  listenerPort: number,
  matchPrefix: string,
): IRAction {
  const action: IRAction = { backends };
  const withPrefix = (p: HTTPPathResult): IRPathModifier => (p.type === 'ReplacePrefixMatch' ? { ...p, prefix: matchPrefix } : p);
  if (rule.filters.length) action.filters = rule.filters;
  if (rule.requestHeaders) action.requestHeaders = rule.requestHeaders;
  if (rule.responseHeaders) action.responseHeaders = rule.responseHeaders;
  if (rule.redirect) {
    const { path, ...rest } = rule.redirect;
    const r: IRRedirect = { ...rest, listenerPort };
    if (path) r.path = withPrefix(path);
    action.redirect = r;
  }
  if (rule.rewrite) {
    const rw: IRRewrite = {};
    if (rule.rewrite.hostname !== undefined) rw.hostname = rule.rewrite.hostname;
    if (rule.rewrite.path) rw.path = withPrefix(rule.rewrite.path);
    action.rewrite = rw;
  }
  if (rule.cors) action.cors = rule.cors;
  if (mirrors?.length) action.mirrors = mirrors;
  if (rule.timeouts && (rule.timeouts.request !== undefined || rule.timeouts.backendRequest !== undefined)) action.timeouts = rule.timeouts;
  if (rule.retry) action.retry = rule.retry;
  return action;
}
