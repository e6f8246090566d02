// Label and field selectors with the apiserver's grammar. A selector that does not parse is a 400,
// as on a real cluster, so client code with a malformed selector fails here too.
import { fieldValue, type KubeObject } from './objects.ts';
import { badRequest } from './status.ts';

export type Matcher = (obj: KubeObject) => boolean;

const KEY = String.raw`[A-Za-z0-9](?:[-A-Za-z0-9_./]*[A-Za-z0-9])?`;
const VALUE = String.raw`(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?`;
const RE_NOT_EXISTS = new RegExp(`^!\\s*(${KEY})$`);
const RE_EXISTS = new RegExp(`^(${KEY})$`);
const RE_SET = new RegExp(`^(${KEY})\\s+(in|notin)\\s*\\((.*)\\)$`);
const RE_EQ = new RegExp(`^(${KEY})\\s*(==|=|!=)\\s*(${VALUE})$`);
const RE_CMP = new RegExp(`^(${KEY})\\s*(>|<)\\s*(-?\\d+)$`);
const RE_VALUE = new RegExp(`^${VALUE}$`);

/** Splits on commas outside parentheses (`a in (x,y),b` is two requirements). */
function splitTop(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out.map((x) => x.trim());
}

type LabelTest = (labels: Record<string, string>) => boolean;

function requirement(req: string): LabelTest {
  const fail = () => badRequest(`unable to parse requirement: ${JSON.stringify(req)}`);
  let m = RE_NOT_EXISTS.exec(req);
  if (m) {
    const key = m[1];
    return (l) => !Object.hasOwn(l, key);
  }
  m = RE_SET.exec(req);
  if (m) {
    const [key, op] = [m[1], m[2]];
    const values = m[3].split(',').map((v) => v.trim());
    if (values.some((v) => !RE_VALUE.test(v))) throw fail();
    return op === 'in' ? (l) => Object.hasOwn(l, key) && values.includes(l[key]) : (l) => !Object.hasOwn(l, key) || !values.includes(l[key]);
  }
  m = RE_EQ.exec(req);
  if (m) {
    const [key, op, value] = [m[1], m[2], m[3]];
    return op === '!=' ? (l) => l[key] !== value : (l) => Object.hasOwn(l, key) && l[key] === value;
  }
  m = RE_CMP.exec(req);
  if (m) {
    const [key, op, n] = [m[1], m[2], Number(m[3])];
    return (l) => Object.hasOwn(l, key) && /^-?\d+$/.test(l[key]) && (op === '>' ? Number(l[key]) > n : Number(l[key]) < n);
  }
  m = RE_EXISTS.exec(req);
  if (m) {
    const key = m[1];
    return (l) => Object.hasOwn(l, key);
  }
  throw fail();
}

/** `labelSelector` query value to a predicate; empty or absent matches everything. */
export function parseLabelSelector(selector: string | null | undefined): Matcher {
  if (!selector || !selector.trim()) return () => true;
  const tests = splitTop(selector).map(requirement);
  return (obj) => {
    const labels = obj.metadata?.labels ?? {};
    return tests.every((t) => t(labels));
  };
}

const ALWAYS_FIELDS = ['metadata.name', 'metadata.namespace'];

/** `fieldSelector` query value to a predicate; only `allowed` fields (and metadata name/namespace). */
export function parseFieldSelector(selector: string | null | undefined, allowed: readonly string[] = []): Matcher {
  if (!selector || !selector.trim()) return () => true;
  const fields = new Set([...ALWAYS_FIELDS, ...allowed]);
  const tests = selector.split(',').map((term): Matcher => {
    const m = /^\s*([^=!\s]+)\s*(==|=|!=)\s*(.*?)\s*$/.exec(term);
    if (!m) throw badRequest(`invalid selector: '${selector}'; can't understand '${term}'`);
    const [field, op, value] = [m[1], m[2], m[3]];
    if (!fields.has(field)) throw badRequest(`field label not supported: ${field}`);
    // An absent field compares as the empty string, as the apiserver's field sets do.
    const get = (o: KubeObject) => fieldValue(o, field) ?? '';
    return op === '!=' ? (o) => get(o) !== value : (o) => get(o) === value;
  });
  return (obj) => tests.every((t) => t(obj));
}
