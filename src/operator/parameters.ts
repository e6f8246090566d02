// GatewayClassParameters: the cluster admin's settings for every Gateway of a class (image,
// varnishd tuning, Service shape, logging). Defined once here with zod; the CRD schema in
// deploy/ is generated from this definition (scripts/manifests.ts), so what the apiserver
// accepts and what the operator parses cannot drift apart.
//
// Everything in here ends up on a varnishd or varnishncsa command line inside the gateway pod,
// so values are checked against allow-lists, not merely typed: a parameters object must not be
// able to turn on inline C, change the C compiler, load VMODs or VCL from elsewhere, or replace
// the sockets, admin port and secret the agent relies on.
import { z } from 'zod';
// The varnishd rules are shared with the agent's flags.
import {
  ALLOWED_VARNISHD_ARGS,
  FORBIDDEN_VARNISHD_PARAMS,
  MAX_EXTRA_ARGS,
  MAX_VARNISHD_PARAMS,
  MIN_STORAGE_BYTES,
  VARNISHD_PARAM_NAME,
  VARNISHD_PARAM_VALUE,
  varnishdArgsProblems,
  varnishdParamNameProblem,
  varnishdParamValueProblem,
} from '../ir/varnishd-settings.ts';

export const PARAMETERS_GROUP = 'gateway.vgw.dev';
export const PARAMETERS_VERSION = 'v1alpha1';
export const PARAMETERS_KIND = 'GatewayClassParameters';
export const PARAMETERS_PLURAL = 'gatewayclassparameters';
export const PARAMETERS_API_VERSION = `${PARAMETERS_GROUP}/${PARAMETERS_VERSION}`;

/** varnishncsa/varnishlog options accepted in `logging.extraArgs`; true = takes a value. */
export const ALLOWED_LOGGING_ARGS: Readonly<Record<string, boolean>> = {
  '-b': false,
  '-c': false,
  '-E': false,
  '-g': true,
  '-q': true,
  '-i': true,
  '-I': true,
  '-x': true,
  '-X': true,
  '-L': true,
  '-T': true,
};

/** Kubernetes resource quantity (the canonical forms: 500m, 1.5, 256Mi, 1G, 2e3). */
const QUANTITY = /^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?$/;
/** An image reference: registry/path:tag or @sha256:digest, no spaces or shell characters. */
export const IMAGE = /^[a-z0-9]([a-z0-9._:/-]*[a-z0-9])?(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$/;
/** A qualified label/annotation key: optional DNS prefix, then a name of at most 63 characters. */
const QUALIFIED_KEY = /^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$/;
/** Logging arguments and formats go to argv as one element (no shell): only control characters are refused. */
// \xNN escapes: the pattern is copied into the CRD, where the apiserver reads it as RE2.
const NO_CONTROL = /^[^\x00-\x1f\x7f]*$/;

const UNITS: Record<string, number> = {
  '': 1, n: 1e-9, u: 1e-6, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18,
  Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60,
};

/** A quantity as whole bytes (rounded down), or null when it is not a quantity. */
export function quantityToBytes(q: string): number | null {
  const m = QUANTITY.exec(q);
  if (!m) return null;
  const suffix = m[3] ?? '';
  const number = Number(q.slice(q.startsWith('+') ? 1 : 0, q.length - (/^[eE]/.test(suffix) ? 0 : suffix.length)));
  const bytes = /^[eE]/.test(suffix) ? number : number * UNITS[suffix];
  return Number.isFinite(bytes) ? Math.floor(bytes) : null;
}

const quantity = z.string().regex(QUANTITY, 'must be a Kubernetes quantity such as 500m, 256Mi or 2');

const labelMap = z
  .record(z.string().regex(QUALIFIED_KEY, 'must be a qualified label key'), z.string().max(63).regex(LABEL_VALUE, 'must be a label value'))
  .meta({ maxProperties: 64 });

const annotationMap = z
  .record(z.string().regex(QUALIFIED_KEY, 'must be a qualified annotation key'), z.string().max(4096))
  .meta({ maxProperties: 64 });

const resourceList = z.object({
  cpu: quantity.optional(),
  memory: quantity.optional(),
  'ephemeral-storage': quantity.optional(),
});

const celList = (xs: readonly string[]) => `[${xs.map((x) => `'${x}'`).join(', ')}]`;

const varnishdParams = z
  .record(z.string(), z.string())
  .superRefine((params, ctx) => {
    const names = Object.keys(params);
    if (names.length > MAX_VARNISHD_PARAMS) ctx.addIssue({ code: 'custom', message: `at most ${MAX_VARNISHD_PARAMS} parameters` });
    for (const name of names) {
      const problem = varnishdParamNameProblem(name) ?? varnishdParamValueProblem(params[name]);
      if (problem) ctx.addIssue({ code: 'custom', path: [name], message: problem });
    }
  })
  .meta({
    maxProperties: MAX_VARNISHD_PARAMS,
    additionalProperties: { type: 'string', pattern: VARNISHD_PARAM_VALUE.source, maxLength: 256 },
    'x-kubernetes-validations': [
      {
        rule: `self.all(k, k.matches('${VARNISHD_PARAM_NAME.source}') && !(k in ${celList(FORBIDDEN_VARNISHD_PARAMS)}))`,
        message: `parameter names must match ${VARNISHD_PARAM_NAME.source} and not be one of ${FORBIDDEN_VARNISHD_PARAMS.join(', ')}`,
      },
    ],
  });

/** The problems of a varnishncsa/varnishlog extra argument list, as [index, message]. */
export function loggingArgsProblems(args: readonly string[]): [number, string][] {
  const out: [number, string][] = [];
  for (let i = 0; i < args.length; i++) {
    const flag = args[i];
    if (!(flag in ALLOWED_LOGGING_ARGS)) {
      out.push([i, `option ${JSON.stringify(flag)} is not allowed (allowed: ${Object.keys(ALLOWED_LOGGING_ARGS).join(' ')})`]);
      continue;
    }
    if (ALLOWED_LOGGING_ARGS[flag]) {
      if (args[i + 1] === undefined) out.push([i, `option ${flag} needs a value`]);
      i++;
    }
  }
  return out;
}

const argList = (max: number, check: (args: readonly string[]) => [number, string][]) =>
  z
    .array(z.string().min(1).max(1024).regex(NO_CONTROL, 'must not contain control characters'))
    .max(max)
    .superRefine((args, ctx) => {
      for (const [index, message] of check(args)) ctx.addIssue({ code: 'custom', path: [index], message });
    });

export const gatewayClassParametersSpec = z
  .object({
    image: z.string().max(512).regex(IMAGE, 'must be an image reference (registry/name:tag or @sha256:digest)').optional().describe('Gateway pod image; default: the image matching the operator version.'),
    varnish: z
      .object({
        parameters: varnishdParams.prefault({}).describe('varnishd -p parameters (name -> value).'),
        extraArgs: argList(MAX_EXTRA_ARGS, varnishdArgsProblems).prefault([]).describe(`Extra varnishd options, each followed by its value; allowed: ${ALLOWED_VARNISHD_ARGS.join(' ')}.`),
        storageSize: quantity
          .refine((q) => (quantityToBytes(q) ?? 0) >= MIN_STORAGE_BYTES, 'must be at least 1Mi')
          .default('256Mi').describe('Size of the malloc cache storage (varnishd -s malloc,SIZE).'),
      })
      .prefault({}),
    // Optional rather than defaulted: unset keeps every existing pod template (and its hash) as it was.
    http2: z
      .boolean()
      .optional()
      .describe(
        'Offer HTTP/2 on HTTPS listeners (ALPN h2, varnishd feature http2). WARNING: varnishd 7.1.1 lacks the HTTP/2 Rapid Reset fix (VSV00013, CVE-2023-44487); unset or false: off.',
      ),
    resources: z
      .object({ requests: resourceList.optional(), limits: resourceList.optional() })
      .optional()
      .describe('Resources of the gateway container.'),
    replicas: z.int().min(0).max(1000).optional().describe('Gateway pods; unset leaves the count to whoever scales the Deployment (an HPA).'),
    service: z
      .object({
        type: z.enum(['ClusterIP', 'NodePort', 'LoadBalancer']).default('LoadBalancer'),
        annotations: annotationMap.prefault({}),
        labels: labelMap.prefault({}),
        loadBalancerClass: z.string().min(1).max(253).regex(QUALIFIED_KEY, 'must be a qualified name').optional(),
        externalTrafficPolicy: z.enum(['Cluster', 'Local']).optional(),
      })
      .prefault({}),
    logging: z
      .object({
        mode: z.enum(['none', 'varnishncsa', 'varnishlog']).default('none'),
        format: z.string().min(1).max(1024).regex(NO_CONTROL, 'must not contain control characters').optional().describe('varnishncsa -F format (varnishncsa only).'),
        extraArgs: argList(MAX_EXTRA_ARGS, loggingArgsProblems).prefault([]).describe(`Extra options of the logging tool; allowed: ${Object.keys(ALLOWED_LOGGING_ARGS).join(' ')}.`),
      })
      .meta({ 'x-kubernetes-validations': [{ rule: "!has(self.format) || self.mode == 'varnishncsa'", message: 'format applies only to mode varnishncsa' }] })
      .prefault({})
      .superRefine((logging, ctx) => {
        if (logging.format !== undefined && logging.mode !== 'varnishncsa') ctx.addIssue({ code: 'custom', path: ['format'], message: 'format applies only to mode varnishncsa' });
      }),
    metrics: z
      .object({
        exposed: z
          .boolean()
          .default(true)
          .describe('Serve the agent\'s /status and /metrics on the pod IP (container port "metrics", 9902) for a Prometheus scrape; false keeps them on 127.0.0.1 inside the pod (reachable with port-forward only).'),
      })
      .prefault({}),
    terminationGracePeriodSeconds: z.int().min(0).max(3600).default(300).describe('Bounds the drain of a gateway pod (open connections end on their own until then).'),
    labels: labelMap.prefault({}).describe('Extra labels on every per-Gateway object.'),
    annotations: annotationMap.prefault({}).describe('Extra annotations on every per-Gateway object.'),
  })
  .strict();

export type GatewayClassParametersSpec = z.output<typeof gatewayClassParametersSpec>;
export type GatewayClassParametersInput = z.input<typeof gatewayClassParametersSpec>;

const gatewayClassParameters = z.object({
  apiVersion: z.literal(PARAMETERS_API_VERSION),
  kind: z.literal(PARAMETERS_KIND),
  metadata: z.object({ name: z.string().min(1).max(253) }).loose(),
  spec: gatewayClassParametersSpec.prefault({}),
});

export interface ParsedParameters {
  name: string;
  spec: GatewayClassParametersSpec;
}

export type ParseParametersResult = { ok: true; value: ParsedParameters } | { ok: false; error: string };

/** The defaults every Gateway of a class gets when its class names no parameters. */
export function defaultParameters(): GatewayClassParametersSpec {
  return gatewayClassParametersSpec.parse({});
}

/** A GatewayClassParameters object -> typed spec with defaults, or an error naming the object and field. */
export function parseParameters(obj: unknown): ParseParametersResult {
  const parsed = gatewayClassParameters.safeParse(obj);
  if (parsed.success) return { ok: true, value: { name: parsed.data.metadata.name, spec: parsed.data.spec } };
  const name = (obj as { metadata?: { name?: unknown } } | null)?.metadata?.name;
  const what = `${PARAMETERS_KIND} ${typeof name === 'string' ? name : '(unnamed)'}`;
  const problems = parsed.error.issues.map((issue) => `${issue.path.length ? issue.path.map(String).join('.') : '(object)'}: ${issue.message}`);
  return { ok: false, error: `${what}: ${problems.join('; ')}` };
}
