import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { V1Container } from '@kubernetes/client-node';
import type { GatewayInfra } from '../../src/ir/infra.ts';
import {
  GATEWAY_NAME_LABEL,
  GATEWAY_NAMESPACE_LABEL,
  INFRA_HASH_ANNOTATION,
  MANAGED_BY_LABEL,
  GATEWAY_POD_LABELS,
  METRICS_PORT_NAME,
  VSM_DIR,
  infraName,
  renderInfrastructure,
  serviceAddressRequest,
  type GatewayIdentity,
} from '../../src/operator/infrastructure.ts';
import { parseParameters, type GatewayClassParametersInput, type GatewayClassParametersSpec } from '../../src/operator/parameters.ts';

const gateway: GatewayIdentity = { namespace: 'shop', name: 'public', uid: '1b7e1b4c-0000-4000-8000-000000000001' };
const options = { defaultImage: 'vgw:0.1.0' };

function params(spec: GatewayClassParametersInput = {}): GatewayClassParametersSpec {
  const r = parseParameters({ apiVersion: 'gateway.vgw.dev/v1alpha1', kind: 'GatewayClassParameters', metadata: { name: 'p' }, spec });
  assert.ok(r.ok, r.ok ? '' : r.error);
  return r.value.spec;
}

function infra(overrides: Partial<GatewayInfra> = {}): GatewayInfra {
  return {
    listeners: [
      { name: 'http', protocol: 'HTTP', port: 80, hostname: '*', certificateRefs: [] },
      { name: 'http-shop', protocol: 'HTTP', port: 80, hostname: 'shop.example.com', certificateRefs: [] },
      { name: 'alt', protocol: 'HTTP', port: 8080, hostname: '*', certificateRefs: [] },
    ],
    addresses: [],
    labels: { team: 'web' },
    annotations: { 'example.com/owner': 'web-team' },
    ...overrides,
  };
}

const render = (p = params(), i = infra(), g = gateway) => renderInfrastructure(g, i, p, options);
const hashOf = (p = params(), i = infra()) => render(p, i).deployment.spec?.template.metadata?.annotations?.[INFRA_HASH_ANNOTATION];
const gatewayContainer = (r = render()) => r.deployment.spec?.template.spec?.containers[0] as V1Container;

describe('renderInfrastructure', () => {
  test('names: vgw- prefix, at most 63 characters, DNS labels, different across namespaces', () => {
    const names = new Set<string>();
    const long = 'g'.repeat(253);
    for (const [ns, name] of [['shop', 'public'], ['shop-public', 'x'], ['a', 'b'], ['b', 'a'], ['n1', long], ['n2', long], ['n1', long.slice(1)], ['a', 'web.example.com']]) {
      const r = render(params(), infra(), { namespace: ns, name, uid: 'u' });
      for (const obj of [...r.namespaced, ...r.cluster]) {
        const n = obj.metadata?.name as string;
        assert.ok(n.length <= 63, n);
        assert.match(n, /^vgw-[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
      }
      names.add(r.deployment.metadata?.name as string);
      names.add(r.clusterRoleBinding.metadata?.name as string);
    }
    assert.equal(names.size, 16, 'every Gateway gets its own names, namespaced and cluster-scoped');
    assert.notEqual(infraName('shop-public', 'x'), infraName('shop', 'public-x'));
  });

  test('standard labels, infrastructure labels and annotations on every object; ownerReferences on namespaced ones', () => {
    const r = render(params({ labels: { env: 'prod', team: 'ignored' }, annotations: { 'a.example.com/x': '1' } }));
    for (const obj of [...r.namespaced, ...r.cluster]) {
      const labels = obj.metadata?.labels ?? {};
      assert.equal(labels[GATEWAY_NAME_LABEL], 'public', obj.kind);
      assert.equal(labels[GATEWAY_NAMESPACE_LABEL], 'shop', obj.kind);
      assert.equal(labels[MANAGED_BY_LABEL], 'vgw-operator', obj.kind);
      assert.equal(labels.team, 'web', 'the Gateway infrastructure label wins over the class extra');
      assert.equal(labels.env, 'prod');
      assert.equal(obj.metadata?.annotations?.['example.com/owner'], 'web-team');
      assert.equal(obj.metadata?.annotations?.['a.example.com/x'], '1');
    }
    for (const obj of r.namespaced) {
      assert.equal(obj.metadata?.namespace, 'shop');
      assert.deepEqual(obj.metadata?.ownerReferences, [
        { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', name: 'public', uid: gateway.uid, controller: true, blockOwnerDeletion: true },
      ]);
    }
    assert.equal(r.clusterRoleBinding.metadata?.ownerReferences, undefined);
    assert.equal(r.clusterRoleBinding.metadata?.namespace, undefined);
    // Users cannot override the labels the selector and cleanup rely on.
    const hijack = render(params(), infra({ labels: { [MANAGED_BY_LABEL]: 'me', [GATEWAY_NAME_LABEL]: 'other' } }));
    assert.equal(hijack.service.metadata?.labels?.[MANAGED_BY_LABEL], 'vgw-operator');
    assert.equal(hijack.service.metadata?.labels?.[GATEWAY_NAME_LABEL], 'public');
    assert.deepEqual(hijack.deployment.spec?.template.metadata?.labels, { ...hijack.deployment.metadata?.labels });
  });

  test('the Deployment runs the agent under tini with downward-API env, readiness on /healthz, drain time, no lost capacity', () => {
    const r = render();
    const d = r.deployment;
    const c = gatewayContainer(r);
    assert.deepEqual(c.command, ['tini', '--', 'vgw', 'chaperone']);
    assert.deepEqual(c.args?.slice(0, 3), ['--gateway', 'shop/public', '--listen-address=$(POD_IP)']);
    // The pod's own ports (those of its containerPorts and template hash): a config adding a
    // listener is served by the pods rolled out for it, never by restarting this pod's varnishd.
    assert.equal(c.args?.[3], `--listen-ports=${(c.ports ?? []).filter((p) => p.name?.startsWith('l-')).map((p) => p.containerPort).join(',')}`);
    assert.match(c.args?.[3] ?? '', /^--listen-ports=\d+(,\d+)*$/);
    assert.ok(c.args?.includes('--storage') && c.args.includes(`malloc,${256 * 2 ** 20}`));
    assert.deepEqual(
      c.env?.map((e) => [e.name, e.valueFrom?.fieldRef?.fieldPath]),
      [['POD_NAME', 'metadata.name'], ['POD_IP', 'status.podIP'], ['GATEWAY_NAMESPACE', 'metadata.namespace'], ['GATEWAY_NAME', `metadata.labels['${GATEWAY_NAME_LABEL}']`]],
    );
    assert.deepEqual(c.readinessProbe?.httpGet, { path: '/healthz', port: 'probe' });
    assert.equal(c.livenessProbe, undefined, 'a liveness probe would restart a draining pod');
    assert.deepEqual(c.ports?.find((p) => p.name === 'probe'), { name: 'probe', containerPort: 9901, protocol: 'TCP' });
    assert.equal(d.spec?.template.spec?.terminationGracePeriodSeconds, 300);
    assert.equal(d.spec?.strategy?.rollingUpdate?.maxUnavailable, 0);
    assert.equal(d.spec?.template.spec?.serviceAccountName, r.serviceAccount.metadata?.name);
    assert.deepEqual(d.spec?.selector.matchLabels, r.service.spec?.selector);
    for (const [k, v] of Object.entries(d.spec?.selector.matchLabels ?? {})) assert.equal(d.spec?.template.metadata?.labels?.[k], v);
    assert.equal(render(params({ terminationGracePeriodSeconds: 600 })).deployment.spec?.template.spec?.terminationGracePeriodSeconds, 600);
    assert.equal(gatewayContainer(render(params({ image: 'registry.example.com/vgw:2' }))).image, 'registry.example.com/vgw:2');
    assert.equal(c.image, 'vgw:0.1.0');
  });

  test('varnishd parameters and options reach the agent as flags, in a stable order', () => {
    const c = gatewayContainer(render(params({ varnish: { parameters: { thread_pools: '4', feature: '+http2' }, extraArgs: ['-t', '60'] } })));
    const args = c.args ?? [];
    assert.deepEqual(args.filter((_, i) => args[i - 1] === '--varnishd-param'), ['feature=+http2', 'thread_pools=4']);
    assert.deepEqual(args.filter((a) => a.startsWith('--varnishd-arg=')), ['--varnishd-arg=-t', '--varnishd-arg=60']);
  });

  test('non-root, only NET_BIND_SERVICE, and the unprivileged-port sysctl only for ports below 1024', () => {
    const r = render();
    const pod = r.deployment.spec?.template.spec;
    assert.equal(pod?.securityContext?.runAsNonRoot, true);
    assert.deepEqual(pod?.securityContext?.sysctls, [{ name: 'net.ipv4.ip_unprivileged_port_start', value: '80' }]);
    const sc = gatewayContainer(r).securityContext;
    assert.deepEqual(sc?.capabilities, { drop: ['ALL'], add: ['NET_BIND_SERVICE'] });
    assert.equal(sc?.allowPrivilegeEscalation, false);
    assert.equal(sc?.runAsNonRoot, true);
    const high = render(params(), infra({ listeners: [{ name: 'a', protocol: 'HTTP', port: 8080, hostname: '*', certificateRefs: [] }] }));
    assert.equal(high.deployment.spec?.template.spec?.securityContext?.sysctls, undefined);
  });

  test('replicas are unset by default (an HPA may own them) and set when the parameters say so', () => {
    assert.ok(!('replicas' in (render().deployment.spec ?? {})));
    assert.equal(render(params({ replicas: 3 })).deployment.spec?.replicas, 3);
  });

  test('the infra hash changes with a listener port, the image, varnishd settings, logging, resources and metrics exposure', () => {
    const base = hashOf();
    assert.match(base ?? '', /^[0-9a-f]{16}$/);
    const portChange = infra({ listeners: [...infra().listeners.slice(0, 2), { name: 'alt', protocol: 'HTTP', port: 8081, hostname: '*', certificateRefs: [] }] });
    assert.notEqual(hashOf(params(), portChange), base, 'listener port');
    assert.notEqual(hashOf(params({ image: 'vgw:0.2.0' })), base, 'image');
    assert.notEqual(hashOf(params({ varnish: { parameters: { thread_pools: '4' } } })), base, 'varnishd parameter');
    assert.notEqual(hashOf(params({ varnish: { extraArgs: ['-t', '60'] } })), base, 'varnishd option');
    assert.notEqual(hashOf(params({ varnish: { storageSize: '1Gi' } })), base, 'storage');
    assert.notEqual(hashOf(params({ logging: { mode: 'varnishncsa' } })), base, 'logging');
    assert.notEqual(hashOf(params({ resources: { limits: { memory: '1Gi' } } })), base, 'resources');
    assert.notEqual(hashOf(params({ metrics: { exposed: false } })), base, 'metrics exposure (a pod argument)');
    assert.equal(hashOf(params({ metrics: { exposed: true } })), base, 'exposed is the default');
  });

  test('/status and /metrics are on the pod IP with a "metrics" container port by default, pod-local with metrics.exposed false', () => {
    const flag = (c: V1Container) => (c.args ?? []).filter((a) => a.startsWith('--metrics-address'));
    const exposed = gatewayContainer();
    assert.deepEqual(flag(exposed), ['--metrics-address=$(POD_IP)']);
    assert.deepEqual(exposed.ports?.find((p) => p.name === METRICS_PORT_NAME), { name: 'metrics', containerPort: 9902, protocol: 'TCP' });
    const args = exposed.args ?? [];
    assert.equal(args[args.indexOf('--metrics-port') + 1], '9902', 'the flag and the container port agree');
    assert.ok(exposed.env?.some((e) => e.name === 'POD_IP' && e.valueFrom?.fieldRef?.fieldPath === 'status.podIP'), '$(POD_IP) is defined for the kubelet to expand');

    // Not exposed: the agent's default address (127.0.0.1), and no port a PodMonitor would try and fail to scrape.
    const local = gatewayContainer(render(params({ metrics: { exposed: false } })));
    assert.deepEqual(flag(local), []);
    assert.equal(local.ports?.find((p) => p.name === METRICS_PORT_NAME), undefined);
    assert.ok(local.ports?.some((p) => p.name === 'probe'), 'probes stay reachable');
  });

  test('gateway pods carry the labels the PodMonitor selects them by, whatever the class and Gateway labels say', () => {
    const r = render(params({ labels: { 'app.kubernetes.io/component': 'other', 'app.kubernetes.io/managed-by': 'someone' } }), infra({ labels: { 'app.kubernetes.io/component': 'x' } }));
    const podLabels = r.deployment.spec?.template.metadata?.labels ?? {};
    for (const [k, v] of Object.entries(GATEWAY_POD_LABELS)) assert.equal(podLabels[k], v, k);
    assert.deepEqual(GATEWAY_POD_LABELS, { 'app.kubernetes.io/component': 'gateway', 'app.kubernetes.io/managed-by': 'vgw-operator' });
  });

  test('the infra hash does not change for anything else', () => {
    const base = hashOf();
    const sameOthers = infra({
      // Listener names, hostnames, order and protocol-neutral duplicates: routing, not pods.
      listeners: [
        { name: 'alt-renamed', protocol: 'HTTP', port: 8080, hostname: 'other.example.com', certificateRefs: [] },
        { name: 'web', protocol: 'HTTP', port: 80, hostname: 'x.example.com', certificateRefs: [] },
      ],
      labels: { team: 'other' },
      annotations: {},
      addresses: ['10.0.0.1'],
    });
    assert.equal(hashOf(params(), sameOthers), base, 'listener names/hostnames, infrastructure labels/annotations, addresses');
    assert.equal(hashOf(params({ replicas: 5 })), base, 'replicas');
    assert.equal(hashOf(params({ terminationGracePeriodSeconds: 900 })), base, 'grace period');
    assert.equal(hashOf(params({ service: { type: 'ClusterIP', annotations: { a: 'b' }, labels: { c: 'd' } } })), base, 'service');
    assert.equal(hashOf(params({ labels: { x: 'y' }, annotations: { z: 'w' } })), base, 'class labels and annotations');
    assert.equal(hashOf(params({ varnish: { parameters: { a: '1', b: '2' } } })), hashOf(params({ varnish: { parameters: { b: '2', a: '1' } } })), 'key order');
    // The Deployment does not depend on routes at all: no route input exists; the same inputs give the same objects.
    assert.deepEqual(render(), render());
  });

  test('the Service has one port per distinct listener port and the class settings', () => {
    const r = render(params({ service: { annotations: { 'lb.example.com/internal': 'true' }, labels: { tier: 'edge' }, loadBalancerClass: 'example.com/lb', externalTrafficPolicy: 'Local' } }));
    const s = r.service;
    assert.deepEqual(s.spec?.ports, [
      { name: 'l-80', port: 80, targetPort: 80, protocol: 'TCP' },
      { name: 'l-8080', port: 8080, targetPort: 8080, protocol: 'TCP' },
    ]);
    assert.equal(s.spec?.type, 'LoadBalancer');
    assert.equal(s.spec?.loadBalancerClass, 'example.com/lb');
    assert.equal(s.spec?.externalTrafficPolicy, 'Local');
    assert.equal(s.metadata?.annotations?.['lb.example.com/internal'], 'true');
    assert.equal(s.metadata?.labels?.tier, 'edge');
    assert.equal(r.deployment.metadata?.labels?.tier, undefined, 'service labels only on the Service');
    const clusterIp = render(params({ service: { type: 'ClusterIP', loadBalancerClass: 'example.com/lb', externalTrafficPolicy: 'Local' } })).service;
    assert.equal(clusterIp.spec?.type, 'ClusterIP');
    assert.equal(clusterIp.spec?.loadBalancerClass, undefined);
    assert.equal(clusterIp.spec?.externalTrafficPolicy, undefined);
  });

  test('bindings: the agent ServiceAccount gets vgw-chaperone cluster-wide and ConfigMap reads in its namespace', () => {
    const r = render();
    const subject = { kind: 'ServiceAccount', name: r.serviceAccount.metadata?.name, namespace: 'shop' };
    assert.deepEqual(r.clusterRoleBinding.subjects, [subject]);
    assert.equal(r.clusterRoleBinding.roleRef.name, 'vgw-chaperone');
    assert.deepEqual(r.roleBinding.subjects, [subject]);
    assert.equal(r.roleBinding.roleRef.name, 'vgw-chaperone-routing');
    assert.equal(r.roleBinding.metadata?.namespace, 'shop');
  });

  test('no logging sidecar by default; varnishncsa / varnishlog read the VSM through a read-only mount', () => {
    assert.equal(render().deployment.spec?.template.spec?.containers.length, 1);
    const r = render(params({ logging: { mode: 'varnishncsa', format: '%h %r %s', extraArgs: ['-c'] } }));
    const containers = r.deployment.spec?.template.spec?.containers ?? [];
    assert.equal(containers.length, 2);
    const sidecar = containers[1];
    assert.deepEqual(sidecar.command, ['varnishncsa']);
    assert.deepEqual(sidecar.args, ['-n', VSM_DIR, '-t', 'off', '-F', '%h %r %s', '-c']);
    assert.deepEqual(sidecar.volumeMounts, [{ name: 'work', mountPath: '/var/lib/vgw', readOnly: true }]);
    assert.deepEqual(sidecar.securityContext?.capabilities, { drop: ['ALL'] });
    assert.equal(containers[0].volumeMounts?.find((m) => m.name === 'work')?.readOnly, undefined);
    const log = render(params({ logging: { mode: 'varnishlog', extraArgs: ['-g', 'request'] } })).deployment.spec?.template.spec?.containers[1];
    assert.deepEqual(log?.command, ['varnishlog']);
    assert.deepEqual(log?.args, ['-n', VSM_DIR, '-t', 'off', '-g', 'request']);
  });

  test('spec.addresses: one IPAddress becomes a LoadBalancer Service\'s loadBalancerIP; what cannot be honoured is a problem, not a half-done Service', () => {
    const lb = params({ service: { type: 'LoadBalancer' } });
    const at = (addresses: GatewayIdentity['addresses']): GatewayIdentity => ({ ...gateway, addresses });
    const r = render(lb, infra(), at([{ type: 'IPAddress', value: '192.0.2.7' }]));
    assert.equal(r.service.spec?.loadBalancerIP, '192.0.2.7');
    assert.equal(r.addressProblem, undefined);
    assert.equal(r.service.spec?.externalIPs, undefined, 'never externalIPs');
    assert.equal(render(lb).service.spec?.loadBalancerIP, undefined, 'nothing requested, nothing set');
    assert.equal(r.infraHash, render(lb).infraHash, 'an address request does not replace pods');
    assert.equal(render(lb, infra(), at([{ type: 'IPAddress' }])).service.spec?.loadBalancerIP, undefined, 'an IPAddress without value asks for any address');

    const two = render(lb, infra(), at([{ value: '192.0.2.7' }, { value: '192.0.2.8' }, { value: '192.0.2.7' }]));
    assert.equal(two.service.spec?.loadBalancerIP, undefined);
    assert.match(two.addressProblem ?? '', /only one IPAddress can be requested, got 2/);

    const clusterIP = render(params({ service: { type: 'ClusterIP' } }), infra(), at([{ type: 'IPAddress', value: '10.0.0.9' }]));
    assert.equal(clusterIP.service.spec?.loadBalancerIP, undefined);
    assert.equal(clusterIP.service.spec?.clusterIP, undefined);
    assert.match(clusterIP.addressProblem ?? '', /needs a LoadBalancer Service .*ClusterIP/);

    assert.deepEqual(serviceAddressRequest([], 'ClusterIP'), {});
    assert.deepEqual(serviceAddressRequest(['2001:db8::1'], 'LoadBalancer'), { loadBalancerIP: '2001:db8::1' });
    assert.ok(serviceAddressRequest(['192.0.2.1'], 'NodePort').problem);
  });
});
