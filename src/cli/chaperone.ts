// vgw chaperone: the in-pod agent of one Gateway. Runs as the data-plane container's main
// process; SIGTERM starts connection draining (see src/chaperone/drain.ts).
import { KubeConfig } from '@kubernetes/client-node';
import { parseArgs } from 'node:util';
import { Chaperone } from '../chaperone/agent.ts';
import { startAdminServer } from '../standalone/admin.ts';
import { makeDir } from '../util/fs.ts';
import { createLogger } from '../util/log.ts';
import { reportUsage, UsageError } from './args.ts';

export async function runChaperone(argv: string[]): Promise<number> {
  let values;
  let namespace: string;
  let gateway: string;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        gateway: { type: 'string' },
        'admin-port': { type: 'string', default: '9901' },
        'admin-address': { type: 'string', default: '0.0.0.0' },
        'work-dir': { type: 'string', default: '/var/lib/vgw' },
        kubeconfig: { type: 'string' },
        pod: { type: 'string' },
      },
      strict: true,
    }));
    const ref = values.gateway ?? (process.env.GATEWAY_NAMESPACE && process.env.GATEWAY_NAME ? `${process.env.GATEWAY_NAMESPACE}/${process.env.GATEWAY_NAME}` : undefined);
    const m = ref ? /^([a-z0-9-]+)\/([a-z0-9.-]+)$/.exec(ref) : null;
    if (!m) throw new UsageError('--gateway NAMESPACE/NAME is required (or GATEWAY_NAMESPACE and GATEWAY_NAME)');
    [, namespace, gateway] = m;
    const port = Number(values['admin-port']);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError('--admin-port must be a port number');
  } catch (err) {
    return reportUsage(err);
  }
  const log = createLogger();
  const kubeConfig = new KubeConfig();
  if (values.kubeconfig) kubeConfig.loadFromFile(values.kubeconfig);
  else kubeConfig.loadFromDefault();
  const workDir = values['work-dir'] as string;
  await makeDir(workDir);
  const chaperone = new Chaperone({
    kubeConfig,
    namespace,
    gateway,
    podName: values.pod ?? process.env.POD_NAME ?? process.env.HOSTNAME ?? 'unknown',
    workDir,
    logger: log,
  });
  // Readiness is the agent's (a config live and not draining), not the data plane's flag alone:
  // a reload that completes during the drain sets that flag again.
  const admin = await startAdminServer(values['admin-address'] as string, Number(values['admin-port']), () => ({ ...chaperone.state, ready: chaperone.ready }), chaperone.metrics.registry);
  log.info({ event: 'admin-listening', address: admin.address() }, 'admin endpoint up');

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
