// The local cluster: Deployments run as local processes with real Pod objects, EndpointSlices
// follow the pods, the load-balancer stand-in forwards to ready pods, rolling updates keep every
// request served, deletion goes through SIGTERM and the grace period, and the garbage collector
// removes what a deleted owner owned.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { AppsV1Api, CoreV1Api, DiscoveryV1Api, PatchStrategy, setHeaderOptions, type V1Deployment, type V1Pod } from '@kubernetes/client-node';
import { startLocalCluster, type LocalCluster } from '../support/local-cluster/cluster.ts';
import { eventually } from './support/poll.ts';

const namespace = 'default';
const MERGE = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

// Serves its pod name and VERSION on POD_IP:8080; on SIGTERM it says so and keeps serving, so
// only the kubelet's SIGKILL at the end of the grace period stops it.
const SERVER = `
const http = require('node:http');
process.on('SIGTERM', () => console.log('SIGTERM received by ' + process.env.POD_NAME));
http.createServer((req, res) => {
  res.setHeader('connection', 'close');
  res.end(JSON.stringify({ pod: process.env.POD_NAME, version: process.env.VERSION, ns: process.env.POD_NAMESPACE }));
}).listen(8080, process.env.POD_IP, () => console.log('listening on ' + process.env.POD_IP));
`;

function deployment(version: string): V1Deployment {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'web', namespace },
    spec: {
      replicas: 2,
      selector: { matchLabels: { app: 'web' } },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
      template: {
        metadata: { labels: { app: 'web' } },
        spec: {
          terminationGracePeriodSeconds: 2,
          containers: [
            {
              name: 'server',
              image: 'node-test:1',
              command: [process.execPath, '-e', SERVER],
              env: [
                { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
                { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
                { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
                { name: 'VERSION', value: version },
              ],
              ports: [{ name: 'http', containerPort: 8080 }],
              readinessProbe: { httpGet: { path: '/healthz', port: 'http' }, periodSeconds: 1 },
            },
          ],
        },
      },
    },
  };
}

interface Answer {
  pod: string;
  version: string;
  ns: string;
}

function get(host: string, port: number): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path: '/', agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (s: string) => (body += s));
      res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(body) as Answer) : reject(new Error(`status ${res.statusCode}`))));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

const inRange = (ip: string | undefined, prefix: RegExp) => ip !== undefined && prefix.test(ip);
const isReady = (p: V1Pod) => !p.metadata?.deletionTimestamp && (p.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');

let cluster: LocalCluster;
let core: CoreV1Api;
let apps: AppsV1Api;
let discovery: DiscoveryV1Api;
let lbIP = '';

before(async () => {
  cluster = await startLocalCluster();
  const kc = cluster.kubeConfig();
  core = kc.makeApiClient(CoreV1Api);
  apps = kc.makeApiClient(AppsV1Api);
  discovery = kc.makeApiClient(DiscoveryV1Api);
});

after(async () => {
  await cluster?.stop();
});

const pods = async () => (await core.listNamespacedPod({ namespace, labelSelector: 'app=web' })).items;

test('a Deployment of two replicas runs two Ready pods, each on its own pod address', async () => {
  await apps.createNamespacedDeployment({ namespace, body: deployment('v1') });
  await core.createNamespacedService({
    namespace,
    body: { metadata: { name: 'web', namespace }, spec: { type: 'LoadBalancer', selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] } },
  });
  await eventually('deployment status readyReplicas 2', async () => {
    const d = await apps.readNamespacedDeployment({ namespace, name: 'web' });
    return d.status?.readyReplicas === 2 && d.status.availableReplicas === 2 && d.status.updatedReplicas === 2 && d.status.observedGeneration === d.metadata?.generation;
  });
  const running = await pods();
  assert.equal(running.length, 2);
  const deploymentUid = (await apps.readNamespacedDeployment({ namespace, name: 'web' })).metadata?.uid;
  for (const p of running) {
    assert.ok(isReady(p), `${p.metadata?.name} Ready`);
    assert.equal(p.status?.phase, 'Running');
    assert.ok(inRange(p.status?.podIP, /^127\.0\.4[0-3]\./), `pod IP ${p.status?.podIP}`);
    assert.equal(p.metadata?.ownerReferences?.[0]?.uid, deploymentUid);
    assert.equal(p.status?.containerStatuses?.[0]?.ready, true);
    assert.match(cluster.logs(p.metadata!.name!), new RegExp(`listening on ${p.status!.podIP!.replace(/\./g, '\\.')}`));
  }
  assert.notEqual(running[0].status?.podIP, running[1].status?.podIP);
});

test("the Service's EndpointSlice lists both pods and its load-balancer address serves from both", async () => {
  const ips = (await pods()).map((p) => p.status!.podIP!).sort();
  await eventually('slice with both pod IPs, ready', async () => {
    const slices = (await discovery.listNamespacedEndpointSlice({ namespace, labelSelector: 'kubernetes.io/service-name=web' })).items;
    if (slices.length !== 1) return false;
    const s = slices[0];
    const listed = (s.endpoints ?? []).filter((e) => e.conditions?.ready).flatMap((e) => e.addresses).sort();
    return s.addressType === 'IPv4' && s.ports?.[0]?.port === 8080 && s.ports[0].name === 'http' && JSON.stringify(listed) === JSON.stringify(ips);
  });
  await eventually('load-balancer address and cluster IP', async () => {
    const svc = await core.readNamespacedService({ namespace, name: 'web' });
    lbIP = svc.status?.loadBalancer?.ingress?.[0]?.ip ?? '';
    return inRange(lbIP, /^127\.0\.44\./) && inRange(svc.spec?.clusterIP, /^127\.0\.45\./);
  });
  const seen = new Set<string>();
  await eventually('answers from both pods through the load balancer', async () => {
    const a = await get(lbIP, 80);
    assert.equal(a.ns, namespace);
    seen.add(a.pod);
    return seen.size === 2;
  });
  assert.deepEqual([...seen].sort(), (await pods()).map((p) => p.metadata!.name!).sort());
});

test('a template change rolls the pods one by one, SIGTERM then the grace period, and no request fails', async () => {
  const before = (await pods()).map((p) => p.metadata!.name!);
  let failures = 0;
  const failureMessages: string[] = [];
  let served = 0;
  let minReady = Infinity;
  let maxLive = 0;
  let rolling = true;
  const loop = (async () => {
    while (rolling) {
      const live = cluster.api.list('v1', 'Pod', namespace).filter((p) => !p.metadata.deletionTimestamp);
      minReady = Math.min(minReady, live.filter((p) => isReady(p as V1Pod)).length);
      maxLive = Math.max(maxLive, live.length);
      try {
        await get(lbIP, 80);
        served++;
      } catch (err) {
        failures++;
        failureMessages.push((err as Error).message);
      }
    }
  })();
  await apps.patchNamespacedDeployment({ namespace, name: 'web', body: { spec: { template: deployment('v2').spec!.template } } }, MERGE);
  try {
    await eventually('rollout complete', async () => {
      const d = await apps.readNamespacedDeployment({ namespace, name: 'web' });
      const now = await pods();
      return (
        d.status?.observedGeneration === d.metadata?.generation &&
        d.status?.updatedReplicas === 2 &&
        d.status.readyReplicas === 2 &&
        now.length === 2 &&
        now.every((p) => !before.includes(p.metadata!.name!))
      );
    }, 60_000);
    await eventually('load balancer serves v2 only', async () => (await get(lbIP, 80)).version === 'v2' && (await get(lbIP, 80)).version === 'v2');
  } finally {
    rolling = false;
    await loop;
  }
  assert.equal(failures, 0, `${failures} of ${served + failures} requests through the load balancer failed: ${failureMessages.join('; ')}`);
  assert.ok(served > 0);
  assert.ok(minReady >= 2, `ready pods dropped to ${minReady} during the rollout`);
  assert.ok(maxLive <= 3, `${maxLive} pods at once with maxSurge 1`);
  for (const name of before) {
    assert.match(cluster.logs(name), new RegExp(`SIGTERM received by ${name}`));
    const exits = cluster.exits(name);
    assert.equal(exits.length, 1, `${name} exited once`);
    assert.equal(exits[0].signal, 'SIGKILL');
    assert.equal(exits[0].killedAfterGrace, true);
  }
});

test("deleting a Service removes its EndpointSlice and its load-balancer listener", async () => {
  await core.deleteNamespacedService({ namespace, name: 'web' });
  await eventually('slice gone', async () => (await discovery.listNamespacedEndpointSlice({ namespace, labelSelector: 'kubernetes.io/service-name=web' })).items.length === 0);
  await eventually('load-balancer address closed', async () => {
    try {
      await get(lbIP, 80);
      return false;
    } catch {
      return true;
    }
  });
});

test('deleting the Deployment stops its pods and the collector removes the Pod objects', async () => {
  const names = (await pods()).map((p) => p.metadata!.name!);
  assert.equal(names.length, 2);
  await apps.deleteNamespacedDeployment({ namespace, name: 'web' });
  await eventually('pods gone', async () => (await pods()).length === 0, 30_000);
  for (const name of names) {
    assert.match(cluster.logs(name), /SIGTERM received/);
    assert.equal(cluster.exits(name).length, 1);
  }
  assert.deepEqual(cluster.errors.filter((e) => !/409|Conflict/.test(e)), []);
});
