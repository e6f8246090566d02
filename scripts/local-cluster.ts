// `npm run local-cluster`: a local stand-in for a cluster (docs/testing.md "Local cluster") that
// stays up until SIGINT or SIGTERM. Pods of the project's image (`vgw:*`) run this checkout's
// bin/vgw.js. On the way out every pod gets SIGTERM and its grace period.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startLocalCluster } from '../test/support/local-cluster/cluster.ts';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');

const cluster = await startLocalCluster({
  images: { 'vgw:*': { executables: { vgw: [process.execPath, join(repo, 'bin', 'vgw.js')] } } },
  onError: (what, err) => process.stderr.write(`local-cluster: ${what}: ${(err as Error)?.message ?? String(err)}\n`),
});

process.stdout.write(
  [
    `local cluster up: API server ${cluster.api.url}`,
    `kubeconfig: ${cluster.kubeconfigPath}`,
    '',
    'Use it with any client that reads a kubeconfig, for example:',
    `  export KUBECONFIG=${cluster.kubeconfigPath}`,
    '  node src/cli/main.ts operator          # the operator against this cluster',
    `  kubectl --kubeconfig ${cluster.kubeconfigPath} get pods   # if kubectl is installed`,
    '',
    'Pods get addresses from 127.0.40.0/22, LoadBalancer Services from 127.0.44.0/24, cluster IPs from 127.0.45.0/24.',
    `Pod working directories are under ${cluster.stateDir}/pods. Ctrl-C stops every pod and the cluster.`,
    '',
  ].join('\n'),
);

let stopping = false;
const stop = async (signal: string) => {
  if (stopping) return;
  stopping = true;
  process.stdout.write(`${signal}: stopping every pod (SIGTERM, then SIGKILL after its grace period)\n`);
  await cluster.stop({ graceful: true });
  process.exit(0);
};
process.on('SIGINT', () => void stop('SIGINT'));
process.on('SIGTERM', () => void stop('SIGTERM'));
