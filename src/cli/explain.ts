// vgw explain: what happens to one request. From a manifest directory (as `vgw serve` would
// serve it) or from a Gateway's published routing config in a cluster (as its pods serve it).
// The IR's answer (src/explain/predict.ts) is checked against the real generated VCL in a
// throwaway varnishd (src/explain/replay.ts); exit 3 when they disagree.
import { parseArgs } from 'node:util';
import { CoreV1Api, DiscoveryV1Api, KubeConfig } from '@kubernetes/client-node';
import { z } from 'zod';
import { resolveEndpoints } from '../gatewayapi/endpoints.ts';
import { parseEndpointSlice } from '../gatewayapi/schema/endpointslice.ts';
import { decodeRoutingConfig, GATEWAY_LABEL } from '../ir/configmap.ts';
import type { EndpointMap, RoutingIR } from '../ir/types.ts';
import { chooseSocket, onlyGateway, predict } from '../explain/predict.ts';
import { Replayer } from '../explain/replay.ts';
import { disagreements, formatExplanation } from '../explain/report.ts';
import { parseExplainRequest, type ExplainRequest } from '../explain/request.ts';
import { renderDirCommand } from './args.ts';

export const EXPLAIN_USAGE = `usage: vgw explain DIR --host H --path P [--method M] [--header K:V]... [--listener NAME | --port N] [--json]
       vgw explain --kubeconfig FILE --gateway NS/NAME --host H --path P [...]`;

const OPTIONS = {
  host: { type: 'string' },
  path: { type: 'string' },
  method: { type: 'string' },
  header: { type: 'string', multiple: true },
  listener: { type: 'string' },
  port: { type: 'string' },
  json: { type: 'boolean', default: false },
  kubeconfig: { type: 'string' },
  gateway: { type: 'string' },
  address: { type: 'string' },
  'path-normalization': { type: 'string' },
} as const;

const gatewayFlag = z.string().regex(/^[a-z0-9-]{1,63}\/[a-z0-9.-]{1,253}$/, '--gateway must be NAMESPACE/NAME');

export async function runExplain(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    return usage((err as Error).message);
  }
  const v = parsed.values;
  const request = parseExplainRequest({ host: v.host, path: v.path, ...(v.method ? { method: v.method } : {}), headers: v.header ?? [], listener: v.listener, port: v.port });
  if (!request.ok) return usage(request.errors.join('; '));
  const cluster = v.kubeconfig !== undefined || (parsed.positionals.length === 0 && v.gateway !== undefined);
  if (cluster ? parsed.positionals.length !== 0 : parsed.positionals.length !== 1) return usage(cluster ? 'give either DIR or --kubeconfig/--gateway, not both' : 'expected one manifest directory (or --kubeconfig and --gateway)');
  let gateway: string | undefined;
  if (v.gateway !== undefined) {
    const g = gatewayFlag.safeParse(v.gateway);
    if (!g.success) return usage(g.error.issues[0].message);
    gateway = g.data;
  }

  let source: { ir: RoutingIR; endpoints: EndpointMap };
  if (cluster) {
    if (!gateway) return usage('--kubeconfig needs --gateway NS/NAME');
    const loaded = await loadFromCluster(v.kubeconfig, gateway);
    if (typeof loaded === 'string') {
      process.stderr.write(`vgw explain: ${loaded}\n`);
      return 2;
    }
    source = loaded;
  } else {
    const dirArgs = [parsed.positionals[0], ...(v.address ? ['--address', v.address] : []), ...(v['path-normalization'] ? ['--path-normalization', v['path-normalization']] : [])];
    const config = await renderDirCommand(dirArgs);
    if (typeof config === 'number') return config;
    source = { ir: gateway ? onlyGateway(config.ir, gateway) : config.ir, endpoints: config.endpoints };
  }
  return explainAndReport(source.ir, source.endpoints, request.request, v.json);
}

async function explainAndReport(ir: RoutingIR, endpoints: EndpointMap, req: ExplainRequest, json: boolean): Promise<number> {
  const socket = chooseSocket(ir, req);
  if (!socket.ok) {
    process.stderr.write(`vgw explain: ${socket.why}\n`);
    return 2;
  }
  const prediction = predict(ir, endpoints, req, socket.socket);
  const replayer = new Replayer(ir, endpoints);
  try {
    await replayer.start();
    const observation = await replayer.send(req, socket.socket.name);
    const problems = disagreements(prediction, observation);
    process.stdout.write(json ? `${JSON.stringify({ prediction, observation, disagreements: problems }, null, 2)}\n` : formatExplanation(prediction, observation, problems));
    return problems.length ? 3 : 0;
  } finally {
    await replayer.stop();
  }
}

async function loadFromCluster(kubeconfig: string | undefined, gateway: string): Promise<{ ir: RoutingIR; endpoints: EndpointMap } | string> {
  const kc = new KubeConfig();
  if (kubeconfig) kc.loadFromFile(kubeconfig);
  else kc.loadFromDefault();
  const [namespace, name] = gateway.split('/');
  const core = kc.makeApiClient(CoreV1Api);
  const discovery = kc.makeApiClient(DiscoveryV1Api);
  const configMaps = (await core.listNamespacedConfigMap({ namespace, labelSelector: `${GATEWAY_LABEL}=${name}` })).items;
  const decoded = decodeRoutingConfig(configMaps, name);
  if (decoded.state !== 'ok') return `the routing config of ${gateway} is ${decoded.state}: ${decoded.reason}`;
  const slices = [];
  for (const ns of new Set(decoded.ir.services.map((s) => s.namespace))) {
    for (const raw of (await discovery.listNamespacedEndpointSlice({ namespace: ns })).items) {
      const r = parseEndpointSlice(raw);
      if (r.ok) slices.push(r.slice);
    }
  }
  return { ir: decoded.ir, endpoints: resolveEndpoints(decoded.ir.services, slices) };
}

function usage(problem: string): number {
  process.stderr.write(`vgw explain: ${problem}\n${EXPLAIN_USAGE}\n`);
  return 2;
}
