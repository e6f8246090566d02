// vgw operator: the in-cluster control plane (docs/operator.md). Probes on every address,
// metrics on the address given (loopback by default), as `vgw chaperone` serves them.
import { KubeConfig } from '@kubernetes/client-node';
import type { Server } from 'node:http';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { Operator } from '../operator/operator.ts';
import { IMAGE } from '../operator/parameters.ts';
import { startHttpEndpoint, startProbeServer } from '../standalone/admin.ts';
import { createLogger } from '../util/log.ts';
import { reportUsage, UsageError } from './args.ts';
import { addressFlag, flagErrors, portFlag } from '../util/flags.ts';

/**
 * Gateway pod image when neither --gateway-image nor a class's parameters name one: the image of
 * this version (`vgw:` and package.json's version; a unit test keeps the two equal).
 */
export const DEFAULT_GATEWAY_IMAGE = 'vgw:0.1.0';
/** Default period of the full resync (re-reading and putting back every object and status). */
export const DEFAULT_RESYNC_SECONDS = 300;
const MAX_RESYNC_SECONDS = 86_400;

const OPTIONS = {
  kubeconfig: { type: 'string' },
  'probe-port': { type: 'string', default: '9901' },
  'probe-address': { type: 'string', default: '0.0.0.0' },
  'metrics-port': { type: 'string', default: '9902' },
  'metrics-address': { type: 'string', default: '127.0.0.1' },
  namespace: { type: 'string' },
  'lease-name': { type: 'string', default: 'vgw-operator' },
  'gateway-image': { type: 'string', default: DEFAULT_GATEWAY_IMAGE },
  'resync-seconds': { type: 'string', default: String(DEFAULT_RESYNC_SECONDS) },
} as const;

const dnsLabel = (flag: string) => z.string().regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, `--${flag} must be a DNS label`);

const operatorArgs = z.object({
  kubeconfig: z.string().min(1, '--kubeconfig must not be empty').optional(),
  'probe-port': portFlag('probe-port'),
  'probe-address': addressFlag('probe-address'),
  'metrics-port': portFlag('metrics-port'),
  'metrics-address': addressFlag('metrics-address'),
  namespace: dnsLabel('namespace'),
  'lease-name': z.string().regex(/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/, '--lease-name must be a DNS subdomain'),
  // The same rule as GatewayClassParameters' image: it ends up in the Deployment as is.
  'gateway-image': z.string().max(512, '--gateway-image must be at most 512 characters').regex(IMAGE, '--gateway-image must be an image reference (registry/name:tag or @sha256:digest)'),
  'resync-seconds': z
    .string()
    .regex(/^[0-9]{1,6}$/, `--resync-seconds must be a whole number of seconds (0 turns resync off)`)
    .transform(Number)
    .refine((n) => n <= MAX_RESYNC_SECONDS, `--resync-seconds must be at most ${MAX_RESYNC_SECONDS}`),
});

export type OperatorArgs = z.infer<typeof operatorArgs>;

/** Flags (namespace defaulting to POD_NAMESPACE, then vgw-system) -> checked settings. */
export function parseOperatorArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): OperatorArgs {
  let values;
  try {
    ({ values } = parseArgs({ args: argv, options: OPTIONS, strict: true }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const parsed = operatorArgs.safeParse({ ...values, namespace: values.namespace ?? env.POD_NAMESPACE ?? 'vgw-system' });
  if (!parsed.success) throw new UsageError(flagErrors(parsed.error));
  const a = parsed.data;
  if (a['probe-port'] !== 0 && a['probe-port'] === a['metrics-port']) throw new UsageError('--probe-port and --metrics-port must differ');
  return a;
}

export async function runOperator(argv: string[]): Promise<number> {
  let args: OperatorArgs;
  try {
    args = parseOperatorArgs(argv);
  } catch (err) {
    return reportUsage(err);
  }
  const log = createLogger();
  const kubeConfig = new KubeConfig();
  if (args.kubeconfig) kubeConfig.loadFromFile(args.kubeconfig);
  else kubeConfig.loadFromDefault();
  const operator = new Operator({
    kubeConfig,
    logger: log,
    namespace: args.namespace,
    leaseName: args['lease-name'],
    identity: process.env.POD_NAME,
    defaultImage: args['gateway-image'],
    resyncMs: args['resync-seconds'] * 1000,
  });
  const ready = () => operator.ready;
  let probes: Server;
  let local: Server;
  try {
    probes = await startProbeServer(args['probe-address'], args['probe-port'], ready);
    local = await startHttpEndpoint(args['metrics-address'], args['metrics-port'], { ready, metrics: operator.metrics.registry });
  } catch (err) {
    process.stderr.write(`vgw: admin endpoint: ${(err as Error).message}\n`);
    return 2;
  }
  log.info({ event: 'probes-listening', address: probes.address() }, 'probe endpoint up (/healthz, /readyz)');
  log.info({ event: 'metrics-listening', address: local.address() }, 'metrics endpoint up (/metrics)');

  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    // Releasing the lease lets a follower take over at once instead of after its duration.
    void operator.stop().finally(() => {
      probes.close();
      local.close();
      log.info({ event: 'exit' }, 'operator stopped');
      process.exit(0);
    });
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  await operator.start();
  return 0;
}
