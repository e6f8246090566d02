// HTTPS listeners on the local cluster, end to end: deploy/install.yaml runs the operator; a
// Gateway with an HTTPS listener, its kubernetes.io/tls Secret and an HTTPRoute are created
// through the API server. The operator copies the referenced certificate (and only it) into
// the Gateway's certificate Secret, the one Secret its pods may read; the gateway pod runs
// hitch in front of varnishd with it. A rotated Secret reaches new connections through a hitch
// reload while an open connection keeps working, and nothing is restarted. A Gateway that
// validates client certificates gets its CA bundle ConfigMap published beside its certificate,
// and its pod refuses clients without a certificate of that CA, also after a CA rotation. A
// BackendTLSPolicy makes the pod originate TLS to its backend (stunnel), with the CA and the
// Gateway's backend client certificate published in that same Secret.
// Addresses: pods 127.0.104.0/24, load balancers 127.0.106.0/24, cluster IPs 127.0.107.0/24.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, statSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { CoreV1Api, KubernetesObjectApi, RbacAuthorizationV1Api, type KubernetesObject, type V1Pod } from '@kubernetes/client-node';
import { startLocalCluster, type LocalCluster } from '../support/local-cluster/cluster.ts';
import { ClusterProbe, get, isReady, sample, stopCluster, withDiagnostics as withDiagnosticsOf } from '../support/local-cluster/e2e-helpers.ts';
import { applyInstallManifest, echoBackend } from '../support/local-cluster/install.ts';
import { VGW_IN_POD } from '../support/local-cluster/vgw-in-pod.ts';
import { TestPki, tlsSecret as tlsSecretIn, type LeafPem } from '../support/test-pki.ts';
import { certificateSecretName, infraName, INSTANCE_LABEL, MANAGED_BY, MANAGED_BY_LABEL } from '../../src/operator/infrastructure.ts';
import { eventually } from './support/poll.ts';

const NS = 'tls-e2e';
const GATEWAY = 'secure';
const HOST = 'secure.example.com';
const HTTPS_PORT = 8443;
// Starting varnishd and compiling the first VCL on a loaded 2-core machine takes a while.
const SLOW = 120_000;

const GW_API = 'gateway.networking.k8s.io/v1';
const gatewayRef = { apiVersion: GW_API, kind: 'Gateway', metadata: { name: GATEWAY, namespace: NS } };
const routeRef = { apiVersion: GW_API, kind: 'HTTPRoute', metadata: { name: 'echo', namespace: NS } };
const infra = infraName(NS, GATEWAY);
const gatewayPodSelector = `${INSTANCE_LABEL}=${infra},${MANAGED_BY_LABEL}=${MANAGED_BY}`;

const tlsSecret = (name: string, pem: { crt: string; key: string }) => tlsSecretIn(NS, name, pem);

interface HttpsReply {
  status: number;
  body: string;
  serial: string;
  reused: boolean;
}

function httpsGet(address: string, ca: string, agent: Agent | false): Promise<HttpsReply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: address, port: HTTPS_PORT, path: '/', servername: HOST, headers: { host: HOST }, ca, agent, timeout: 5000 }, (res) => {
      let body = '';
      const serial = (res.socket as TLSSocket).getPeerCertificate().serialNumber ?? '';
      res.setEncoding('utf8').on('data', (s: string) => (body += s));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, serial, reused: req.reusedSocket }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

let cluster: LocalCluster;
let probe: ClusterProbe;
let objects: KubernetesObjectApi;
let core: CoreV1Api;
let rbac: RbacAuthorizationV1Api;
let pki: TestPki;
let first: LeafPem;
let second: LeafPem;
let pod: V1Pod | undefined;

const withDiagnostics = (body: () => Promise<void>) =>
  withDiagnosticsOf(() => probe.diagnostics([{ namespace: NS, selector: gatewayPodSelector }, { namespace: NS, selector: 'app=echo' }], [gatewayRef, routeRef]), body);
const gatewayPods = () => probe.pods(NS, gatewayPodSelector);
const podSummary = (p: V1Pod) => ({ uid: p.metadata?.uid, restarts: p.status?.containerStatuses?.[0]?.restartCount ?? 0 });

before(async () => {
  pki = new TestPki();
  first = pki.leaf('first', HOST);
  second = pki.leaf('second', HOST);
  cluster = await startLocalCluster({
    images: { 'vgw:*': { executables: { vgw: VGW_IN_POD } } },
    podCidr: '127.0.104.0/24',
    loadBalancerCidr: '127.0.106.0/24',
    clusterIPCidr: '127.0.107.0/24',
  });
  const kc = cluster.kubeConfig();
  probe = new ClusterProbe(cluster);
  objects = KubernetesObjectApi.makeApiClient(kc);
  core = kc.makeApiClient(CoreV1Api);
  rbac = kc.makeApiClient(RbacAuthorizationV1Api);
  await applyInstallManifest(cluster, objects);
});

after(async () => {
  await stopCluster(cluster);
  pki?.remove();
});

test('an HTTPS Gateway serves its route with its certificate through the gateway pod; the pod holds only that certificate', { timeout: 4 * SLOW }, () =>
  withDiagnostics(async () => {
    const gateway = {
      ...gatewayRef,
      spec: { gatewayClassName: 'vgw', listeners: [{ name: 'https', protocol: 'HTTPS', port: HTTPS_PORT, tls: { mode: 'Terminate', certificateRefs: [{ name: 'site' }] } }] },
    };
    const route = { ...routeRef, spec: { parentRefs: [{ name: GATEWAY }], hostnames: [HOST], rules: [{ backendRefs: [{ name: 'echo', port: 8080 }] }] } };
    // A TLS Secret no listener names: neither published nor readable by the pod.
    const other = pki.leaf('other', 'other.example.com');
    for (const obj of [...echoBackend(NS), tlsSecret('site', first), tlsSecret('unreferenced', other), gateway, route]) await objects.create(obj as KubernetesObject);

    await eventually('Gateway Programmed=True, listener https ResolvedRefs=True', async () => {
      const status = (await probe.read(gatewayRef)).status as { conditions?: { type: string; status: string }[]; listeners?: { name: string; conditions: { type: string; status: string }[] }[] } | undefined;
      const programmed = status?.conditions?.some((c) => c.type === 'Programmed' && c.status === 'True');
      const resolved = status?.listeners?.find((l) => l.name === 'https')?.conditions.some((c) => c.type === 'ResolvedRefs' && c.status === 'True');
      return programmed === true && resolved === true;
    }, SLOW, 200);
    await eventually('the gateway pod is Ready', async () => {
      const pods = await gatewayPods();
      pod = pods.length === 1 && isReady(pods[0]) ? pods[0] : undefined;
      return pod !== undefined;
    }, SLOW, 200);
    const address = pod?.status?.podIP as string;

    let reply: HttpsReply = { status: 0, body: '', serial: '', reused: false };
    await eventually(`GET https://${HOST}:${HTTPS_PORT}/ through ${address} answers 200`, async () => {
      reply = await httpsGet(address, pki.ca, false).catch(() => reply);
      return reply.status === 200;
    }, SLOW, 200);
    assert.equal(reply.serial, first.serial, 'the listener\'s certificate, verified against the test CA');
    assert.equal((JSON.parse(reply.body) as { host: string }).host, HOST);

    // The certificate Secret: exactly the referenced certificate; the pod may read that Secret only.
    const name = certificateSecretName(NS, GATEWAY);
    const published = await core.readNamespacedSecret({ namespace: NS, name });
    assert.equal(published.type, 'Opaque');
    assert.deepEqual(Object.keys(published.data ?? {}), [`${NS}_site`]);
    assert.equal(Buffer.from(published.data?.[`${NS}_site`] ?? '', 'base64').toString('utf8'), `${first.crt}${first.key}`);
    assert.equal(published.metadata?.ownerReferences?.[0]?.kind, 'Gateway');
    const role = await rbac.readNamespacedRole({ namespace: NS, name: infra });
    assert.deepEqual(JSON.parse(JSON.stringify(role.rules)), [{ apiGroups: [''], resources: ['secrets'], resourceNames: [name], verbs: ['get', 'list', 'watch'] }]);

    // In the pod's work directory: one PEM file per referenced certificate, readable by its owner only.
    const certs = join(cluster.stateDir, 'pods', `${NS}_${pod?.metadata?.name}_${pod?.metadata?.uid?.slice(0, 8)}`, 'volumes', 'work', 'tls', 'certs');
    assert.deepEqual(readdirSync(certs), [`${NS}_site.pem`]);
    assert.equal(statSync(certs).mode & 0o777, 0o700);
    assert.equal(statSync(join(certs, `${NS}_site.pem`)).mode & 0o777, 0o600);
  }),
);

/** One HTTPS request on a new connection, presenting `client` when given; rejects when the handshake fails. */
function httpsGetAs(address: string, ca: string, client: LeafPem | undefined): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: address, port: HTTPS_PORT, path: '/', servername: HOST, headers: { host: HOST }, ca, agent: false, timeout: 5000, ...(client ? { cert: client.crt, key: client.key } : {}) },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

test('client certificate validation: the pod refuses clients without a certificate of the named CA, also after the CA rotates', { timeout: 4 * SLOW }, async () => {
  const name = 'validated';
  const ref = { apiVersion: GW_API, kind: 'Gateway', metadata: { name, namespace: NS } };
  const selector = `${INSTANCE_LABEL}=${infraName(NS, name)},${MANAGED_BY_LABEL}=${MANAGED_BY}`;
  const otherPki = new TestPki();
  try {
    const trusted = pki.leaf('client', 'client.example.com');
    const untrusted = otherPki.leaf('client', 'client.example.com');
    const caMap = (ca: string) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'client-ca', namespace: NS }, data: { 'ca.crt': ca } });
    const gateway = {
      ...ref,
      spec: {
        gatewayClassName: 'vgw',
        tls: { frontend: { default: { validation: { caCertificateRefs: [{ group: '', kind: 'ConfigMap', name: 'client-ca' }] } } } },
        listeners: [{ name: 'https', protocol: 'HTTPS', port: HTTPS_PORT, tls: { mode: 'Terminate', certificateRefs: [{ name: 'site' }] } }],
      },
    };
    const route = { apiVersion: GW_API, kind: 'HTTPRoute', metadata: { name: 'validated', namespace: NS }, spec: { parentRefs: [{ name }], hostnames: [HOST], rules: [{ backendRefs: [{ name: 'echo', port: 8080 }] }] } };
    for (const obj of [caMap(pki.ca), gateway, route]) await objects.create(obj as KubernetesObject);
    await withDiagnosticsOf(() => probe.diagnostics([{ namespace: NS, selector }], [ref]), async () => {
      let address = '';
      await eventually('the validating gateway pod is Ready', async () => {
        const pods = await probe.pods(NS, selector);
        address = pods.length === 1 && isReady(pods[0]) ? (pods[0].status?.podIP ?? '') : '';
        return address !== '';
      }, SLOW, 200);
      await eventually('a client with a certificate of the named CA gets 200', async () => (await httpsGetAs(address, pki.ca, trusted).catch(() => 0)) === 200, SLOW, 200);
      await assert.rejects(httpsGetAs(address, pki.ca, undefined), 'no client certificate: the handshake is refused');
      await assert.rejects(httpsGetAs(address, pki.ca, untrusted), 'a client certificate of another CA: the handshake is refused');
      const published = await core.readNamespacedSecret({ namespace: NS, name: certificateSecretName(NS, name) });
      assert.deepEqual(Object.keys(published.data ?? {}).sort(), [`ca.${NS}_client-ca`, `${NS}_site`]);

      // The CA rotates: the other CA's clients get in, the first CA's no longer do.
      const live = await core.readNamespacedConfigMap({ namespace: NS, name: 'client-ca' });
      await core.replaceNamespacedConfigMap({ namespace: NS, name: 'client-ca', body: { ...caMap(otherPki.ca), metadata: { name: 'client-ca', namespace: NS, resourceVersion: live.metadata?.resourceVersion } } });
      // The change is a hand-over between two hitch instances (docs/tls.md): until the old one has
      // stopped accepting, a connection may still meet the old CA, so both are waited for.
      await eventually('a client of the new CA gets 200 and a client of the old CA is refused', async () => {
        const ok = (await httpsGetAs(address, pki.ca, untrusted).catch(() => 0)) === 200;
        const refused = await httpsGetAs(address, pki.ca, trusted).then(() => false, () => true);
        return ok && refused;
      }, SLOW, 200);
    });
  } finally {
    otherPki.remove();
  }
});

test('a rotated certificate reaches new connections; an open connection keeps working; nothing restarts', { timeout: 2 * SLOW }, () =>
  withDiagnostics(async () => {
    assert.ok(pod, 'the first test got traffic through the Gateway');
    const before = podSummary(pod);
    const address = pod.status?.podIP as string;
    const kept = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const opened = await httpsGet(address, pki.ca, kept);
      assert.equal(opened.status, 200);
      assert.equal(opened.serial, first.serial);

      const live = await core.readNamespacedSecret({ namespace: NS, name: 'site' });
      await core.replaceNamespacedSecret({ namespace: NS, name: 'site', body: { ...tlsSecret('site', second), metadata: { name: 'site', namespace: NS, resourceVersion: live.metadata?.resourceVersion } } });

      // Requests on the open connection all along (varnishd closes an idle one after timeout_idle).
      await eventually('a new connection gets the new certificate', async () => {
        const onOpen = await httpsGet(address, pki.ca, kept);
        assert.equal(onOpen.status, 200);
        assert.ok(onOpen.reused, 'the open connection is reused');
        assert.equal(onOpen.serial, first.serial, 'the open connection keeps the certificate it started with');
        return (await httpsGet(address, pki.ca, false)).serial === second.serial;
      }, SLOW, 200);
      const onOpen = await httpsGet(address, pki.ca, kept);
      assert.deepEqual([onOpen.status, onOpen.reused, onOpen.serial], [200, true, first.serial], 'the open connection still works after the reload');
    } finally {
      kept.destroy();
    }

    const pods = await gatewayPods();
    assert.deepEqual(pods.map(podSummary), [before], 'the same gateway pod, not restarted');
    const metrics = await probe.metrics(pods[0]);
    assert.ok(sample(metrics, 'vgw_hitch_reloads_total') >= 1, 'hitch reloaded its certificates');
    assert.equal(sample(metrics, 'vgw_hitch_restarts_total'), 0, 'hitch was not restarted');
    const status = JSON.parse((await get(address, 'status', '/status', 9902)).body) as { varnishdStarts?: number };
    assert.equal(status.varnishdStarts, 1, 'varnishd was started once, never restarted');
  }),
);

test('backend TLS: a BackendTLSPolicy makes the gateway pod speak TLS to its backend, verified by the named CA, presenting the Gateway\'s client certificate', { timeout: 4 * SLOW }, async () => {
  const name = 'to-backend';
  const backendHost = 'api.backend.example';
  const ref = { apiVersion: GW_API, kind: 'Gateway', metadata: { name, namespace: NS } };
  const policyRef = { apiVersion: GW_API, kind: 'BackendTLSPolicy', metadata: { name: 'tls-echo', namespace: NS } };
  const selector = `${INSTANCE_LABEL}=${infraName(NS, name)},${MANAGED_BY_LABEL}=${MANAGED_BY}`;
  const serving = pki.leaf('tls-echo', backendHost);
  const client = pki.leaf('gateway-client', 'gateway.example.com');
  const configMap = (cmName: string, ca: string) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: cmName, namespace: NS }, data: { 'ca.crt': ca } });
  // An echo serving HTTPS with a Secret volume that asks for client certificates of the test CA.
  const echo = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'tls-echo', namespace: NS },
    spec: {
      selector: { matchLabels: { app: 'tls-echo' } },
      template: {
        metadata: { labels: { app: 'tls-echo' } },
        spec: {
          terminationGracePeriodSeconds: 1,
          containers: [{
            name: 'echo',
            image: 'vgw:0.1.0',
            command: ['vgw', 'echo', '--port', '8080', '--pod', '$(POD_NAME)'],
            env: [
              { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
              { name: 'TLS_SERVER_CERT', value: '/etc/server-certs/tls.crt' },
              { name: 'TLS_SERVER_PRIVKEY', value: '/etc/server-certs/tls.key' },
              { name: 'TLS_CLIENT_CACERTS', value: '/etc/client-ca/ca.crt' },
            ],
            ports: [{ name: 'http', containerPort: 8080 }, { name: 'https', containerPort: 8443 }],
            readinessProbe: { httpGet: { path: '/', port: 'http' }, periodSeconds: 1 },
            volumeMounts: [{ name: 'server-certs', mountPath: '/etc/server-certs' }, { name: 'client-ca', mountPath: '/etc/client-ca' }],
          }],
          volumes: [{ name: 'server-certs', secret: { secretName: 'tls-echo' } }, { name: 'client-ca', configMap: { name: 'echo-client-ca' } }],
        },
      },
    },
  };
  const service = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'tls-echo', namespace: NS }, spec: { selector: { app: 'tls-echo' }, ports: [{ name: 'https', port: 443, targetPort: 'https' }] } };
  const gateway = {
    ...ref,
    spec: {
      gatewayClassName: 'vgw',
      tls: { backend: { clientCertificateRef: { name: 'gateway-client' } } },
      listeners: [{ name: 'http', protocol: 'HTTP', port: 8080 }],
    },
  };
  const route = { apiVersion: GW_API, kind: 'HTTPRoute', metadata: { name: 'to-backend', namespace: NS }, spec: { parentRefs: [{ name }], hostnames: ['api.example.com'], rules: [{ backendRefs: [{ name: 'tls-echo', port: 443 }] }] } };
  const policy = {
    ...policyRef,
    spec: { targetRefs: [{ group: '', kind: 'Service', name: 'tls-echo' }], validation: { hostname: backendHost, caCertificateRefs: [{ group: '', kind: 'ConfigMap', name: 'backend-ca' }] } },
  };
  for (const obj of [tlsSecret('tls-echo', serving), tlsSecret('gateway-client', client), configMap('echo-client-ca', pki.ca), configMap('backend-ca', pki.ca), echo, service, gateway, route, policy]) {
    await objects.create(obj as KubernetesObject);
  }
  await withDiagnosticsOf(() => probe.diagnostics([{ namespace: NS, selector }, { namespace: NS, selector: 'app=tls-echo' }], [ref, policyRef]), async () => {
    let address = '';
    await eventually('the gateway pod is Ready', async () => {
      const pods = await probe.pods(NS, selector);
      address = pods.length === 1 && isReady(pods[0]) ? (pods[0].status?.podIP ?? '') : '';
      return address !== '';
    }, SLOW, 200);
    let reply = { status: 0, body: '' };
    await eventually('GET http://api.example.com/ through the gateway pod answers 200 from the TLS echo', async () => {
      reply = await get(address, 'api.example.com', '/', 8080).catch(() => reply);
      return reply.status === 200;
    }, SLOW, 200);
    const echoed = JSON.parse(reply.body) as { host: string; tls?: { serverName: string; peerCertificates?: string[] } };
    assert.equal(echoed.host, 'api.example.com', 'the request itself is unchanged');
    assert.equal(echoed.tls?.serverName, backendHost, 'the policy\'s hostname is the SNI');
    assert.equal(echoed.tls?.peerCertificates?.[0]?.replace(/\s/g, ''), client.crt.replace(/\s/g, ''), 'the Gateway\'s client certificate was presented');

    const status = (await probe.read(policyRef)).status as { ancestors?: { ancestorRef: { name: string }; controllerName: string; conditions: { type: string; status: string }[] }[] } | undefined;
    const ours = status?.ancestors?.find((a) => a.controllerName === 'vgw.dev/gateway-controller');
    assert.equal(ours?.ancestorRef.name, name);
    assert.ok(ours?.conditions.some((c) => c.type === 'Accepted' && c.status === 'True'), 'the policy is Accepted for our Gateway');

    // The pod reads its backend material from the Gateway's certificate Secret, like listener certificates.
    const published = await core.readNamespacedSecret({ namespace: NS, name: certificateSecretName(NS, name) });
    assert.deepEqual(Object.keys(published.data ?? {}).sort(), [`backend-ca.${NS}_backend-ca`, `backend-client.${NS}_gateway-client`]);

    // A CA the backend's certificate does not chain to: the proxy refuses the backend, nothing is sent in clear.
    const otherPki = new TestPki();
    try {
      const live = await core.readNamespacedConfigMap({ namespace: NS, name: 'backend-ca' });
      await core.replaceNamespacedConfigMap({ namespace: NS, name: 'backend-ca', body: { ...configMap('backend-ca', otherPki.ca), metadata: { name: 'backend-ca', namespace: NS, resourceVersion: live.metadata?.resourceVersion } } });
      await eventually('with an untrusted backend certificate the route answers 503', async () => (await get(address, 'api.example.com', '/', 8080).catch(() => ({ status: 0 }))).status === 503, SLOW, 200);
    } finally {
      otherPki.remove();
    }
  });
});
