// `vgw` as the local cluster runs it in a pod. In a cluster each pod has its own network
// namespace, so `vgw operator` and `vgw chaperone` bind their probe endpoint on 0.0.0.0 and,
// unless their manifests say otherwise, their metrics endpoint on the pod-local 127.0.0.1, at
// fixed ports (9901, 9902). Here every pod shares this machine's network: two such pods would
// collide on those ports, and on ports other tests use. So this entry point binds the probe
// endpoint on the pod's own address (the last occurrence of a flag wins), which is what the
// pod's probes reach anyway. The metrics endpoint is bound where the manifest puts it
// (`--metrics-address=$(POD_IP)` is the pod's address here too); left at its pod-local default,
// it gets an ephemeral port on 127.0.0.1, so pods do not collide and, as in a cluster, nothing
// from outside the pod finds it at 9902. Then it runs the CLI (src/cli/main.ts) as bin/vgw.js does.
// `vgw echo` listens on the pod's address. Other commands run unchanged. Image table: `{ 'vgw:*': { executables: { vgw: VGW_IN_POD } } }`.
import { fileURLToPath } from 'node:url';
import { POD_ADDRESS_ENV } from './pod-spec.ts';

export const VGW_IN_POD = [process.execPath, fileURLToPath(import.meta.url)];

const isMain = process.argv[1] === fileURLToPath(import.meta.url);
if (isMain) {
  const command = process.argv[2];
  const podIP = process.env[POD_ADDRESS_ENV];
  if (podIP && (command === 'operator' || command === 'chaperone')) {
    process.argv.push(`--probe-address=${podIP}`);
    const metricsAddressGiven = process.argv.slice(3).some((a) => a === '--metrics-address' || a.startsWith('--metrics-address='));
    if (!metricsAddressGiven) process.argv.push('--metrics-port=0');
  }
  // An echo backend would listen on every address of its own pod; here, on its pod's address.
  if (podIP && command === 'echo') process.argv.push(`--address=${podIP}`);
  await import('../../../src/cli/main.ts');
}
