// vgw chaperone: the in-pod agent of one Gateway. Runs as the data-plane container's main
// process; SIGTERM starts connection draining (see src/chaperone/drain.ts).
import { KubeConfig } from '@kubernetes/client-node';
import type { Server } from 'node:http';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { Chaperone } from '../chaperone/agent.ts';
import {
  MAX_EXTRA_ARGS,
  MAX_VARNISHD_PARAMS,
  splitVarnishdArgs,
  storageBytesProblem,
  varnishdArgsProblems,
  varnishdParamSettingProblem,
} from '../ir/varnishd-settings.ts';
import { startHttpEndpoint, startProbeServer } from '../standalone/admin.ts';
import { makeDir } from '../util/fs.ts';
import { createLogger } from '../util/log.ts';
import { reportUsage, UsageError } from './args.ts';
import { addressFlag, flagErrors, portFlag } from '../util/flags.ts';

/** `vgw chaperone` flags, as parsed strings; checked by chaperoneArgs below. */
const OPTIONS = {
  gateway: { type: 'string' },
  // varnishd's listen address for every socket of the routing config (see src/ir/bind-address.ts).
  'listen-address': { type: 'string', default: '0.0.0.0' },
  // The ports this pod listens on, comma-separated; other ports of the config are left out.
  'listen-ports': { type: 'string' },
  // The Gateway's certificate Secret (same namespace), the one Secret the pod reads.
  'certificate-secret': { type: 'string' },
  'probe-port': { type: 'string', default: '9901' },
  'probe-address': { type: 'string', default: '0.0.0.0' },
  'metrics-port': { type: 'string', default: '9902' },
  'metrics-address': { type: 'string', default: '127.0.0.1' },
  'work-dir': { type: 'string', default: '/var/lib/vgw' },
  kubeconfig: { type: 'string' },
  pod: { type: 'string' },
  storage: { type: 'string' },
  'varnishd-param': { type: 'string', multiple: true },
  // Values start with a dash: pass them as --varnishd-arg=-t.
  'varnishd-arg': { type: 'string', multiple: true },
  // HTTP/2 opt-in (GatewayClass parameters http2); off by default, see DataPlaneOptions.http2.
  http2: { type: 'boolean', default: false },
} as const;

/** `--storage BYTES` or `--storage malloc,BYTES` (the only storage the gateway runs). */
const STORAGE = /^(?:malloc,)?([0-9]{1,16})$/;

const storageFlag = z
  .string()
  .regex(STORAGE, '--storage must be BYTES or malloc,BYTES')
  .transform((s) => Number((STORAGE.exec(s) as RegExpExecArray)[1]))
  .superRefine((bytes, ctx) => {
    const problem = storageBytesProblem(bytes);
    if (problem) ctx.addIssue({ code: 'custom', message: `--storage: ${problem}` });
  });

const varnishdParamFlag = z
  .array(z.string())
  .max(MAX_VARNISHD_PARAMS, `--varnishd-param may be given at most ${MAX_VARNISHD_PARAMS} times`)
  .superRefine((settings, ctx) => {
    for (const setting of settings) {
      const problem = varnishdParamSettingProblem(setting);
      if (problem) ctx.addIssue({ code: 'custom', message: `--varnishd-param ${JSON.stringify(setting)}: ${problem}` });
    }
  });

// Option and value are separate flags (--varnishd-arg=-t --varnishd-arg=60), as varnishd reads them.
const varnishdArgFlag = z
  .array(z.string())
  .max(MAX_EXTRA_ARGS, `--varnishd-arg may be given at most ${MAX_EXTRA_ARGS} times`)
  .superRefine((args, ctx) => {
    for (const [index, message] of varnishdArgsProblems(args)) ctx.addIssue({ code: 'custom', message: `--varnishd-arg (${index + 1}. of ${args.length}): ${message}` });
  });

/** Most ports a pod listens on: a Gateway has at most 64 listeners. */
export const MAX_LISTEN_PORTS = 64;

const listenPortsFlag = z
  .string()
  .regex(/^([0-9]{1,5}(,[0-9]{1,5})*)?$/, '--listen-ports must be comma-separated port numbers')
  .transform((s) => (s === '' ? [] : [...new Set(s.split(',').map(Number))].sort((a, b) => a - b)))
  .refine((ports) => ports.every((p) => p >= 1 && p <= 65535), '--listen-ports: each port must be 1-65535')
  .refine((ports) => ports.length <= MAX_LISTEN_PORTS, `--listen-ports: at most ${MAX_LISTEN_PORTS} ports`);

const chaperoneArgs = z.object({
  gateway: z
    .string({ error: '--gateway NAMESPACE/NAME is required (or GATEWAY_NAMESPACE and GATEWAY_NAME)' })
    .regex(/^[a-z0-9-]{1,63}\/[a-z0-9.-]{1,253}$/, '--gateway must be NAMESPACE/NAME'),
  'listen-address': addressFlag('listen-address'),
  'listen-ports': listenPortsFlag.optional(),
  'certificate-secret': z.string().regex(/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/, '--certificate-secret must be a Secret name').optional(),
  'probe-port': portFlag('probe-port'),
  'probe-address': addressFlag('probe-address'),
  'metrics-port': portFlag('metrics-port'),
  'metrics-address': addressFlag('metrics-address'),
  'work-dir': z.string().min(1),
  kubeconfig: z.string().min(1).optional(),
  pod: z.string().min(1).max(253).optional(),
  storage: storageFlag.optional(),
  'varnishd-param': varnishdParamFlag,
  'varnishd-arg': varnishdArgFlag,
  http2: z.boolean(),
});

export type ChaperoneArgs = z.infer<typeof chaperoneArgs>;

/** Flags and environment -> checked settings; UsageError naming the flag otherwise. */
export function parseChaperoneArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): ChaperoneArgs {
  let values;
  try {
    ({ values } = parseArgs({ args: argv, options: OPTIONS, strict: true }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const gateway = values.gateway ?? (env.GATEWAY_NAMESPACE && env.GATEWAY_NAME ? `${env.GATEWAY_NAMESPACE}/${env.GATEWAY_NAME}` : undefined);
  const parsed = chaperoneArgs.safeParse({ ...values, gateway, 'varnishd-param': values['varnishd-param'] ?? [], 'varnishd-arg': values['varnishd-arg'] ?? [] });
  if (!parsed.success) throw new UsageError(flagErrors(parsed.error));
  const a = parsed.data;
  if (a['probe-port'] !== 0 && a['probe-port'] === a['metrics-port']) throw new UsageError('--probe-port and --metrics-port must differ');
  return a;
}

/** The varnishd settings of the flags, as the agent takes them (`-p` options become parameters). */
export function varnishdSettings(args: ChaperoneArgs): { params: Record<string, string>; varnishdArgs: string[]; storageBytes?: number } {
  const { params, args: varnishdArgs } = splitVarnishdArgs(args['varnishd-param'], args['varnishd-arg']);
  return { params, varnishdArgs, ...(args.storage !== undefined ? { storageBytes: args.storage } : {}) };
}

export async function runChaperone(argv: string[]): Promise<number> {
  let args: ChaperoneArgs;
  try {
    args = parseChaperoneArgs(argv);
  } catch (err) {
    return reportUsage(err);
  }
  const [namespace, gateway] = args.gateway.split('/');
  const log = createLogger();
  const kubeConfig = new KubeConfig();
  if (args.kubeconfig) kubeConfig.loadFromFile(args.kubeconfig);
  else kubeConfig.loadFromDefault();
  const workDir = args['work-dir'];
  await makeDir(workDir);
  const chaperone = new Chaperone({
    kubeConfig,
    namespace,
    gateway,
    podName: args.pod ?? process.env.POD_NAME ?? process.env.HOSTNAME ?? 'unknown',
    ...(process.env.POD_NAMESPACE ? { podNamespace: process.env.POD_NAMESPACE } : {}),
    workDir,
    logger: log,
    listenAddress: args['listen-address'],
    http2: args.http2,
    ...(args['listen-ports'] !== undefined ? { listenPorts: args['listen-ports'] } : {}),
    ...(args['certificate-secret'] !== undefined ? { certificateSecret: args['certificate-secret'] } : {}),
    ...varnishdSettings(args),
  });
  // Readiness is the agent's (a config live and not draining), not the data plane's flag alone:
  // a reload that completes during the drain sets that flag again.
  // Probes on every address (the kubelet probes the pod IP); what is served and why a config
  // was rejected only on the metrics address, pod-local by default.
  const ready = () => chaperone.ready;
  let probes: Server;
  let local: Server;
  try {
    probes = await startProbeServer(args['probe-address'], args['probe-port'], ready);
    local = await startHttpEndpoint(args['metrics-address'], args['metrics-port'], { ready, status: () => chaperone.publicState(), metrics: chaperone.metrics.registry });
  } catch (err) {
    process.stderr.write(`vgw: admin endpoint: ${(err as Error).message}\n`);
    return 2;
  }
  log.info({ event: 'probes-listening', address: probes.address() }, 'probe endpoint up (/healthz, /readyz)');
  log.info({ event: 'metrics-listening', address: local.address() }, 'status endpoint up (/status, /metrics)');
  const admin = { close: () => (probes.close(), local.close()) };

  let terminating = false;
  process.on('SIGTERM', () => {
    if (terminating) return;
    terminating = true;
    void (async () => {
      await chaperone.drain();
      admin.close();
      log.info({ event: 'exit' }, 'varnishd stopped, exiting');
      process.exit(0);
    })();
  });
  process.on('SIGINT', () => {
    void chaperone.stop().then(() => process.exit(0));
  });
  await chaperone.start();
  return 0;
}
