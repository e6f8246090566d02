// From a Pod's spec to the local process that stands in for each container: the argv (image
// mapping, `tini --` dropped, `$(VAR)` expansion, emptyDir mount paths rewritten to the pod's
// temp dirs) and the environment (literal values and downward-API fields). Pure functions.
import { createHash } from 'node:crypto';
import { basename } from 'node:path';
import type { V1Container, V1Pod, V1PodTemplateSpec } from '@kubernetes/client-node';

/** How the local cluster runs an image: there are no images, only executables on this machine. */
export interface ImageRule {
  /** argv prefixes for a command's first word (by basename), e.g. `{ vgw: [node, '<repo>/bin/vgw.js'] }`. */
  executables?: Record<string, string[]>;
  /** The image's ENTRYPOINT, for containers that give no `command`. */
  entrypoint?: string[];
  /** Environment the image would set. */
  env?: Record<string, string>;
}

/** Image patterns (`*` matches any run of characters, e.g. `vgw:*`) to rules; the first match wins. */
export type ImageTable = Record<string, ImageRule>;

export function imageRule(images: ImageTable, image: string | undefined): ImageRule | undefined {
  if (!image) return undefined;
  for (const [pattern, rule] of Object.entries(images)) {
    const re = new RegExp(`^${pattern.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
    if (re.test(image)) return rule;
  }
  return undefined;
}

/** Stable hash of a pod template: what a Deployment's `pod-template-hash` label carries. */
export function templateHash(template: V1PodTemplateSpec | undefined): string {
  return createHash('sha256').update(canonicalJson(template ?? {})).digest('hex').slice(0, 10);
}

export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v && typeof v === 'object') {
    const entries = Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined);
    return `{${entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, x]) => `${JSON.stringify(k)}:${canonicalJson(x)}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/** `$(NAME)` is replaced by an earlier-defined variable, `$$(NAME)` is a literal `$(NAME)`; unknown names stay as written (as the kubelet does). */
export function expandVars(text: string, vars: ReadonlyMap<string, string>): string {
  return text.replace(/\$\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (whole, escaped: string | undefined, name: string | undefined) => {
    if (escaped !== undefined) return `$(${escaped})`;
    return vars.get(name!) ?? whole;
  });
}

/** The downward-API fields the local kubelet resolves. */
export function fieldValue(pod: V1Pod, fieldPath: string, podIP: string, nodeName: string): string {
  const labelOrAnnotation = /^metadata\.(labels|annotations)\['([^']+)'\]$/.exec(fieldPath);
  if (labelOrAnnotation) {
    const map = labelOrAnnotation[1] === 'labels' ? pod.metadata?.labels : pod.metadata?.annotations;
    return map?.[labelOrAnnotation[2]] ?? '';
  }
  switch (fieldPath) {
    case 'metadata.name':
      return pod.metadata?.name ?? '';
    case 'metadata.namespace':
      return pod.metadata?.namespace ?? '';
    case 'metadata.uid':
      return pod.metadata?.uid ?? '';
    case 'status.podIP':
    case 'status.podIPs':
    case 'status.hostIP':
      return podIP;
    case 'spec.nodeName':
      return pod.spec?.nodeName ?? nodeName;
    case 'spec.serviceAccountName':
      return pod.spec?.serviceAccountName ?? 'default';
    default:
      throw new Error(`downward API field ${fieldPath} is not supported by the local kubelet`);
  }
}

/**
 * Every container process gets its pod's address in this variable: pods share this machine's
 * network, so a program that would bind 0.0.0.0 or 127.0.0.1 inside its own pod needs to know
 * which address is its pod's (see vgw-in-pod.ts).
 */
export const POD_ADDRESS_ENV = 'LOCAL_CLUSTER_POD_IP';

export interface ProcessSpec {
  argv: string[];
  env: Record<string, string>;
}

export interface ProcessContext {
  pod: V1Pod;
  container: V1Container;
  podIP: string;
  nodeName: string;
  images: ImageTable;
  /** Volume name (emptyDir, Secret, ConfigMap) to its directory on this machine. */
  volumeDirs: ReadonlyMap<string, string>;
  /** Variables every process gets first (PATH, HOME, KUBECONFIG...). */
  baseEnv: Record<string, string>;
}

/** Mount paths of the container's volumes, longest first, with their local directories. */
function mounts(ctx: ProcessContext): [string, string][] {
  const out: [string, string][] = [];
  for (const m of ctx.container.volumeMounts ?? []) {
    const dir = ctx.volumeDirs.get(m.name);
    if (dir) out.push([m.mountPath.replace(/\/+$/, '') || '/', m.subPath ? `${dir}/${m.subPath}` : dir]);
  }
  return out.sort((a, b) => b[0].length - a[0].length);
}

/** Rewrites a mount path appearing as a whole word, a path prefix, or after `=` (as in `--dir=/work`). */
function rewritePaths(text: string, table: [string, string][]): string {
  for (const [mountPath, dir] of table) {
    const escaped = mountPath.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const re = new RegExp(`(^|=|:)${escaped}(?=/|$|:)`, 'g');
    if (re.test(text)) return text.replace(re, (_m, lead: string) => `${lead}${dir}`);
  }
  return text;
}

export function processSpec(ctx: ProcessContext): ProcessSpec {
  const { container } = ctx;
  const rule = imageRule(ctx.images, container.image);
  const table = mounts(ctx);
  const vars = new Map<string, string>();
  const env: Record<string, string> = { ...ctx.baseEnv, ...(rule?.env ?? {}) };
  const tmp = table.find(([p]) => p === '/tmp');
  if (tmp) env.TMPDIR = tmp[1];
  for (const e of container.env ?? []) {
    let value: string;
    if (e.valueFrom?.fieldRef) value = fieldValue(ctx.pod, e.valueFrom.fieldRef.fieldPath, ctx.podIP, ctx.nodeName);
    else if (e.valueFrom) throw new Error(`env ${e.name}: only literal values and fieldRef are supported by the local kubelet`);
    else value = expandVars(e.value ?? '', vars);
    value = rewritePaths(value, table);
    vars.set(e.name, value);
    env[e.name] = value;
  }
  const command = container.command ?? rule?.entrypoint;
  if (!command || command.length === 0) throw new Error(`image ${container.image ?? '(none)'} has no command and no entrypoint in the image table`);
  let argv = [...command, ...(container.args ?? [])].map((a) => rewritePaths(expandVars(a, vars), table));
  // tini is PID 1 in the image; here every container is its own process group already.
  if (basename(argv[0]) === 'tini') argv = argv[1] === '--' ? argv.slice(2) : argv.slice(1);
  if (argv.length === 0) throw new Error('container command is empty after removing tini');
  const prefix = rule?.executables?.[basename(argv[0])];
  if (prefix) argv = [...prefix, ...argv.slice(1)];
  return { argv, env };
}

/** A container port given by number or by name. */
export function resolvePort(container: V1Container, port: number | string | undefined): number | undefined {
  if (port === undefined) return undefined;
  if (typeof port === 'number') return port;
  if (/^\d+$/.test(port)) return Number(port);
  return container.ports?.find((p) => p.name === port)?.containerPort;
}
