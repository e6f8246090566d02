// Building blocks shared by the manifest schemas: Kubernetes names, object metadata, label
// maps, and the one formatter that turns a schema failure into "field.path: problem".
//
// These schemas check what a kube-apiserver's OpenAPI validation would check (shape, types,
// lengths, list sizes, integer ranges, name formats). Semantics (which filter types, regexes or
// header names we can serve) stay in the translator, which reports them with precise status
// conditions. Unknown fields are kept (loose objects): newer API versions add fields, and the
// translator decides whether an unknown field matters.
import { z } from 'zod';

export const int = (min: number, max: number) => z.int().min(min).max(max);
export const port = int(1, 65535);

const SUBDOMAIN = /^[a-z0-9]+(?:-+[a-z0-9]+)*(\.[a-z0-9]+(?:-+[a-z0-9]+)*)*$/;
const LABEL = /^[a-z0-9]+(?:-+[a-z0-9]+)*$/;
const DNS1035_LABEL = /^[a-z][a-z0-9]*(?:-+[a-z0-9]+)*$/;

/** RFC 1123 subdomain: the name of most objects. */
export const dnsSubdomain = z
  .string()
  .min(1)
  .max(253)
  .regex(SUBDOMAIN, 'must be a lowercase RFC 1123 subdomain (a-z, 0-9, "-" and ".", starting and ending alphanumeric)');

/** RFC 1123 label: Namespace names, namespace references. */
export const dnsLabel = z
  .string()
  .min(1)
  .max(63)
  .regex(LABEL, 'must be a lowercase RFC 1123 label (a-z, 0-9 and "-", starting and ending alphanumeric)');

/** RFC 1035 label: Service names (they become DNS names, so they start with a letter). */
export const dns1035Label = z
  .string()
  .min(1)
  .max(63)
  .regex(DNS1035_LABEL, 'must be a lowercase RFC 1035 label (a-z, 0-9 and "-", starting with a letter, ending alphanumeric)');

const LABEL_KEY = /^([a-z0-9]+(?:-+[a-z0-9]+)*(\.[a-z0-9]+(?:-+[a-z0-9]+)*)*\/)?[A-Za-z0-9]+(?:[-_.]+[A-Za-z0-9]+)*$/;
const LABEL_VALUE = /^(?:[A-Za-z0-9]+(?:[-_.]+[A-Za-z0-9]+)*)?$/;

export const labelKey = z.string().min(1).max(317).regex(LABEL_KEY, 'must be a label key ([prefix/]name)');
export const labelValue = z.string().max(63).regex(LABEL_VALUE, 'must be a label value (alphanumeric, "-", "_", ".")');
export const labels = z.record(labelKey, labelValue);

/** Annotations are free text; the API server bounds their total size at 256 KiB. */
const annotations = z.record(z.string().max(317), z.string()).refine((a) => JSON.stringify(a).length <= 256 * 1024, 'annotations must total at most 256 KiB');

export const labelSelector = z.looseObject({
  matchLabels: labels.optional(),
  matchExpressions: z
    .array(
      z.looseObject({
        key: labelKey,
        operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist']),
        values: z.array(labelValue).max(256).optional(),
      }),
    )
    .max(64)
    .optional(),
});

/** metadata of a namespaced or cluster-scoped object; `name` is the kind's name format. */
export function objectMeta(name: z.ZodType<string>) {
  return z.looseObject({
    name,
    namespace: dnsLabel.optional(),
    generation: z.int().min(0).optional(),
    creationTimestamp: z.string().max(64).optional(),
    labels: labels.optional(),
    annotations: annotations.optional(),
  });
}

/** Gateway API `Group`: "" (core) or a DNS subdomain. */
export const group = z.string().max(253).regex(/^$|^[a-z0-9]+(?:-+[a-z0-9]+)*(\.[a-z0-9]+(?:-+[a-z0-9]+)*)*$/, 'must be "" or a DNS subdomain');
/** Gateway API `Kind`. */
export const kind = z.string().min(1).max(63).regex(/^[a-zA-Z][a-zA-Z0-9]*(?:-+[a-zA-Z0-9]+)*$/, 'must be a Kind (letters, digits and "-", starting with a letter)');
/** Gateway API `ObjectName`: any non-empty string up to 253 characters. */
export const objectName = z.string().min(1).max(253);
/** Gateway API `SectionName` (listener and rule names). */
export const sectionName = dnsSubdomain;
/** Gateway API `Hostname`: a DNS name, optionally with a leading "*." label. */
export const hostname = z
  .string()
  .min(1)
  .max(253)
  .regex(/^(\*\.)?[a-z0-9]+(?:-+[a-z0-9]+)*(\.[a-z0-9]+(?:-+[a-z0-9]+)*)*$/, 'must be a lowercase DNS name, optionally prefixed with "*."');
/** Gateway API `PreciseHostname`: no wildcard. */
export const preciseHostname = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[a-z0-9]+(?:-+[a-z0-9]+)*(\.[a-z0-9]+(?:-+[a-z0-9]+)*)*$/, 'must be a lowercase DNS name');

/** The most characters of a rejected value quoted back in a message. */
const QUOTE_MAX = 64;

/** A value for an error message: short, one line, never the megabyte an attacker sent. */
export function quote(v: unknown): string {
  const s = typeof v === 'string' ? v : String(v);
  return JSON.stringify(s.length > QUOTE_MAX ? `${s.slice(0, QUOTE_MAX)}…` : s) + (s.length > QUOTE_MAX ? ` (${s.length} characters)` : '');
}

/** "spec.rules[0].matches[1].path" for a schema issue path. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else if (typeof p === 'string' && /^[A-Za-z_][A-Za-z0-9_]*$/.test(p)) out += out ? `.${p}` : p;
    else out += `[${quote(String(p))}]`;
  }
  return out;
}

/** The first issue of a failed parse as "field.path: problem" (plus how many more there are). */
export function formatIssues(error: z.ZodError): { path: (string | number)[]; message: string } {
  const [first] = error.issues;
  const path = first.path.filter((p): p is string | number => typeof p !== 'symbol');
  const problem = first.message.replace(/^Invalid input: /, '');
  const more = error.issues.length > 1 ? ` (and ${error.issues.length - 1} more)` : '';
  const at = formatPath(path);
  return { path, message: `${at ? `${at}: ` : ''}${problem}${more}` };
}

/**
 * A copy of `value` without null-valued object fields (Kubernetes decodes `field: null` as an
 * absent field). Nulls inside lists are kept, so the schema rejects them.
 */
export function withoutNulls(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutNulls);
  if (value instanceof Date) return value;
  if (typeof value !== 'object' || value === null) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    // defineProperty: a "__proto__" key from JSON stays a plain field instead of a prototype.
    if (v !== null && v !== undefined) Object.defineProperty(out, k, { value: withoutNulls(v), enumerable: true, writable: true, configurable: true });
  }
  return out;
}
