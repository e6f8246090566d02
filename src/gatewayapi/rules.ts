// HTTPRoute rules -> IR matches and actions. Validation happens here, once per route: a route
// with any value we cannot serve faithfully is rejected whole (Accepted=False, UnsupportedValue)
// instead of being served differently from what its author wrote.
import type { IRAction, IRHeaderModifier, IRMatch, IRRedirect, IRValueMatch } from '../ir/types.ts';
import { headerNameProblem, vclStringProblem } from '../vcl/escape.ts';
import { validHostname } from './hostnames.ts';
import { regexProblem } from './regex.ts';
import type { HTTPHeaderFilter, HTTPRoute, HTTPRouteFilter, HTTPRouteMatch, HTTPRouteRule } from './types.ts';

export class RouteValueError extends Error {
  override name = 'RouteValueError';
}

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH']);
const REDIRECT_CODES = new Set([301, 302, 303, 307, 308]);

/** A rule with its matches and filters validated; backends are resolved separately. */
export interface ValidRule {
  index: number;
  name?: string;
  matches: IRMatch[];
  requestHeaders?: IRHeaderModifier;
  redirect?: Omit<IRRedirect, 'listenerPort'>;
}

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
    const valid: ValidRule = { index, matches };
    if (rule.name !== undefined) valid.name = rule.name;
    if (rule.timeouts !== undefined) throw new RouteValueError(`${where}.timeouts is not supported yet`);
    for (const key of Object.keys(rule)) {
      if (!['name', 'matches', 'filters', 'backendRefs', 'timeouts'].includes(key)) {
        throw new RouteValueError(`${where}.${key} is not supported`);
      }
    }
    applyFilters(valid, rule.filters ?? [], where);
    (rule.backendRefs ?? []).forEach((ref, i) => {
      if (ref.filters?.length) throw new RouteValueError(`${where}.backendRefs[${i}].filters are not supported yet`);
    });
    if (valid.redirect?.path?.type === 'ReplacePrefixMatch' && !matches.every((m) => m.path.type === 'PathPrefix')) {
      throw new RouteValueError(`${where}: a ReplacePrefixMatch redirect needs PathPrefix matches`);
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
    } else if (!/^[A-Za-z0-9!#$%'*+.^_`|~-]{1,256}$/.test(h.name)) {
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
  filters.forEach((f, i) => {
    const at = `${where}.filters[${i}]`;
    switch (f.type) {
      case 'RequestHeaderModifier':
        if (rule.requestHeaders) throw new RouteValueError(`${at}: RequestHeaderModifier may appear only once per rule`);
        rule.requestHeaders = headerModifier(f.requestHeaderModifier, `${at}.requestHeaderModifier`);
        break;
      case 'RequestRedirect':
        if (rule.redirect) throw new RouteValueError(`${at}: RequestRedirect may appear only once per rule`);
        rule.redirect = redirect(f, at);
        break;
      default:
        throw new RouteValueError(`${at}: filter type ${JSON.stringify(f.type)} is not supported yet`);
    }
  });
}

function headerModifier(m: HTTPHeaderFilter | undefined, where: string): IRHeaderModifier {
  if (!m) throw new RouteValueError(`${where} is required`);
  const out: IRHeaderModifier = { set: [], add: [], remove: [] };
  const named = (name: string, at: string) => {
    const problem = headerNameProblem(name);
    if (problem) throw new RouteValueError(`${at}: ${problem}`);
  };
  for (const op of ['set', 'add'] as const) {
    (m[op] ?? []).forEach((h, i) => {
      named(h.name, `${where}.${op}[${i}]`);
      checkString(h.value, `${where}.${op}[${i}].value`);
      out[op].push({ name: h.name, value: h.value });
    });
  }
  (m.remove ?? []).forEach((name, i) => {
    named(name, `${where}.remove[${i}]`);
    out.remove.push(name);
  });
  return out;
}

function redirect(f: HTTPRouteFilter, at: string): Omit<IRRedirect, 'listenerPort'> {
  const r = f.requestRedirect;
  if (!r) throw new RouteValueError(`${at}.requestRedirect is required`);
  const out: Omit<IRRedirect, 'listenerPort'> = { statusCode: r.statusCode ?? 302 };
  if (!REDIRECT_CODES.has(out.statusCode)) throw new RouteValueError(`${at}.requestRedirect.statusCode ${r.statusCode} is not supported`);
  if (r.scheme !== undefined) {
    if (r.scheme !== 'http' && r.scheme !== 'https') throw new RouteValueError(`${at}.requestRedirect.scheme must be http or https`);
    out.scheme = r.scheme;
  }
  if (r.hostname !== undefined) {
    const problem = validHostname(r.hostname, false);
    if (problem) throw new RouteValueError(`${at}.requestRedirect.hostname ${JSON.stringify(r.hostname)} ${problem}`);
    out.hostname = r.hostname;
  }
  if (r.port !== undefined) {
    if (!Number.isInteger(r.port) || r.port < 1 || r.port > 65535) throw new RouteValueError(`${at}.requestRedirect.port is out of range`);
    out.port = r.port;
  }
  if (r.path !== undefined) {
    const value = r.path.type === 'ReplaceFullPath' ? r.path.replaceFullPath : r.path.type === 'ReplacePrefixMatch' ? r.path.replacePrefixMatch : undefined;
    if (value === undefined) throw new RouteValueError(`${at}.requestRedirect.path needs type ReplaceFullPath or ReplacePrefixMatch with its value`);
    checkString(value, `${at}.requestRedirect.path`);
    if (!value.startsWith('/')) throw new RouteValueError(`${at}.requestRedirect.path must start with "/"`);
    out.path = r.path.type === 'ReplaceFullPath' ? { type: 'ReplaceFullPath', value } : { type: 'ReplacePrefixMatch', prefix: '', value };
  }
  return out;
}

function checkString(value: string, where: string): void {
  if (typeof value !== 'string') throw new RouteValueError(`${where} must be a string`);
  const problem = vclStringProblem(value);
  if (problem) throw new RouteValueError(`${where} ${problem}`);
  if (value.length > 4096) throw new RouteValueError(`${where} is longer than 4096 characters`);
}

function checkRegex(value: string, where: string): void {
  const problem = regexProblem(value);
  if (problem) throw new RouteValueError(`${where}: invalid regular expression: ${problem}`);
}

/** Builds the IR action of one rule once its backends are known. */
export function ruleAction(rule: ValidRule, backends: IRAction['backends'], listenerPort: number, matchPrefix: string): IRAction {
  const action: IRAction = { backends };
  if (rule.requestHeaders) action.requestHeaders = rule.requestHeaders;
  if (rule.redirect) {
    const r: IRRedirect = { ...rule.redirect, listenerPort };
    if (r.path?.type === 'ReplacePrefixMatch') r.path = { ...r.path, prefix: matchPrefix };
    action.redirect = r;
  }
  return action;
}
