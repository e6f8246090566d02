// `vgw` as the local cluster runs it in a pod. In a cluster each pod has its own network
// namespace, so `vgw operator` and `vgw chaperone` bind their probe endpoint on 0.0.0.0 and
// their metrics endpoint on 127.0.0.1 at fixed ports (9901, 9902). Here every pod shares this
// machine's network: two such pods would collide on those ports, and on ports other tests use.
// So this entry point binds both endpoints on the pod's own address (the last occurrence of a
// flag wins), which is what the pod's probes reach anyway, then runs the CLI (src/cli/main.ts) as bin/vgw.js does.
// `vgw echo` listens on the pod's address. Other commands run unchanged. Image table: `{ 'vgw:*': { executables: { vgw: VGW_IN_POD } } }`.
import { fileURLToPath } from 'node:url';
import { POD_ADDRESS_ENV } from './pod-spec.ts';

export const VGW_IN_POD = [process.execPath, fileURLToPath(import.meta.url)];

const isMain = process.argv[1] === fileURLToPath(import.meta.url);
if (isMain) {
  const command = process.argv[2];
  const podIP = process.env[POD_ADDRESS_ENV];
  if (podIP && (command === 'operator' || command === 'chaperone')) {
    process.argv.push(`--probe-address=${podIP}`, `--metrics-address=${podIP}`);
  }
  // An echo backend would listen on every address of its own pod; here, on its pod's address.
  if (podIP && command === 'echo') process.argv.push(`--address=${podIP}`);
  await import('../../../src/cli/main.ts');
}
