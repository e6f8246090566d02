// Turns "base + one test's manifests" into the folder `vgw serve` reads, standing in for what a
// cluster would provide: the GatewayClass under test, one loopback address per Gateway, echo
// instances for every Deployment and the EndpointSlices Kubernetes would derive from Services.
import { readFileSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import { CONTROLLER_NAME } from '../../src/gatewayapi/features.ts';
import { randomPodName } from '../../src/echo/server.ts';
import { manifestPath } from './data.ts';

export const GATEWAY_CLASS = 'vgw';
export const ECHO_HTTP_PORT = 3000;
export const ECHO_H2C_PORT = 3001;
/** upstream's HTTPS port of the echo in TLS mode (TLS_SERVER_CERT/TLS_SERVER_PRIVKEY set). */
export const ECHO_HTTPS_PORT = 8443;

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; [k: string]: unknown };
  // Manifests are untyped YAML; only the fields the harness touches are looked at.
  spec?: any;
  [k: string]: unknown;
}

export interface Pod {
  namespace: string;
  deployment: string;
  name: string;
  ip: string;
  labels: Record<string, string>;
  /** The echo's HTTPS mode, with where its certificate, key and client CAs come from. */
  tls?: EchoTlsSource;
}

/** One key of a Secret or ConfigMap, as a Pod's volume mounts it. */
export interface MountedKey {
  kind: 'Secret' | 'ConfigMap';
  namespace: string;
  name: string;
  key: string;
}

export interface EchoTlsSource {
  cert: MountedKey;
  key: MountedKey;
  clientCa?: MountedKey;
}

export interface Deployment {
  namespace: string;
  name: string;
  replicas: number;
  labels: Record<string, string>;
  /** Why the harness does not run this Deployment's pods, when it does not. */
  notRunnable?: string;
  tls?: EchoTlsSource;
}

export function objectKey(o: Pick<K8sObject, 'kind' | 'metadata'>): string {
  return `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
}

export function loadManifests(files: readonly string[], dataDir?: string): K8sObject[] {
  const out: K8sObject[] = [];
  for (const rel of files) {
    const text = readFileSync(dataDir ? manifestPath(rel, dataDir) : manifestPath(rel), 'utf8');
    for (const doc of parseAllDocuments(text)) {
      if (doc.errors.length) throw new Error(`${rel}: ${doc.errors[0].message}`);
      const obj = doc.toJS() as K8sObject | null;
      if (obj && typeof obj === 'object' && obj.kind) out.push(obj);
    }
  }
  return out;
}

/**
 * Addresses and pod names that stay put for the whole run, so base Gateways and base echo pods
 * look the same in every test, as they do in a cluster where base manifests are applied once.
 */
export class AddressBook {
  #gateways = new Map<string, string>();
  #deployments = new Map<string, { index: number; names: string[] }>();

  gatewayIp(namespace: string, name: string): string {
    const key = `${namespace}/${name}`;
    let ip = this.#gateways.get(key);
    if (!ip) {
      const n = this.#gateways.size + 1;
      if (n > 254) throw new Error('more than 254 Gateways');
      ip = `127.0.1.${n}`;
      this.#gateways.set(key, ip);
    }
    return ip;
  }

  pods(d: Deployment): Pod[] {
    const key = `${d.namespace}/${d.name}`;
    let entry = this.#deployments.get(key);
    if (!entry) {
      entry = { index: this.#deployments.size, names: [] };
      if (entry.index + 2 > 255) throw new Error('more than 253 Deployments');
      this.#deployments.set(key, entry);
    }
    if (d.replicas > 254) throw new Error(`${key}: too many replicas`);
    while (entry.names.length < d.replicas) entry.names.push(randomPodName(d.name));
    return entry.names.slice(0, d.replicas).map((name, i) => ({
      namespace: d.namespace,
      deployment: d.name,
      name,
      ip: `127.0.${entry.index + 2}.${i + 1}`,
      labels: d.labels,
      ...(d.tls ? { tls: d.tls } : {}),
    }));
  }
}

export interface World {
  /** Everything written to the serve folder. */
  objects: K8sObject[];
  deployments: Deployment[];
  /** Pods the harness must run (runnable Deployments only; none when a cluster runs them). */
  pods: Pod[];
  /** namespace/name -> address the Gateway's listeners bind to (standalone; a cluster reports its own) */
  gatewayIps: Map<string, string>;
}

// Kinds `vgw serve` is meant to read; Deployments become echo instances plus EndpointSlices, and
// other Kubernetes kinds (ConfigMaps for DNS or CA tests) have no meaning to it.
const PASSED_THROUGH = new Set(['Namespace', 'Service', 'EndpointSlice', 'Secret', 'ConfigMap']);
const NON_HTTP_ECHO_ENV = ['GRPC_ECHO_SERVER', 'TCP_ECHO_SERVER', 'UDP_ECHO_SERVER'];

export interface ComposeOptions {
  /**
   * For a real cluster (the local one): Gateways keep the addresses they are given (the operator
   * assigns the rest), runnable Deployments are objects to apply rather than pods the harness runs,
   * and EndpointSlices come from the cluster's controller, not from the harness.
   */
  cluster?: boolean;
}

export function composeWorld(manifests: K8sObject[], book: AddressBook, opts: ComposeOptions = {}): World {
  const objects: K8sObject[] = [];
  const deployments: Deployment[] = [];
  const gatewayIps = new Map<string, string>();
  for (const raw of manifests) {
    const obj = structuredClone(raw);
    if (obj.kind === 'Deployment') {
      const d = describeDeployment(obj);
      deployments.push(d);
      if (opts.cluster && !d.notRunnable) objects.push(obj);
      continue;
    }
    const gatewayApi = obj.apiVersion.startsWith('gateway.networking.k8s.io/');
    if (!gatewayApi && !PASSED_THROUGH.has(obj.kind)) continue;
    if (gatewayApi && obj.kind === 'GatewayClass') obj.spec = { ...obj.spec, controllerName: CONTROLLER_NAME };
    if (gatewayApi && obj.kind === 'Gateway') {
      const ns = obj.metadata.namespace ?? 'default';
      obj.spec = { ...obj.spec, gatewayClassName: GATEWAY_CLASS };
      const given = (obj.spec.addresses ?? []).find((a: { type?: string; value?: string }) => (a.type ?? 'IPAddress') === 'IPAddress' && a.value);
      if (!opts.cluster) {
        const ip = given?.value ?? book.gatewayIp(ns, obj.metadata.name);
        if (!given) obj.spec.addresses = [{ type: 'IPAddress', value: ip }];
        gatewayIps.set(`${ns}/${obj.metadata.name}`, ip);
      }
    }
    objects.push(obj);
  }
  // A cluster has the class from deploy/install.yaml (with its parameters); a folder needs one.
  if (!opts.cluster && !objects.some((o) => o.kind === 'GatewayClass' && o.metadata.name === GATEWAY_CLASS)) {
    objects.unshift({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'GatewayClass', metadata: { name: GATEWAY_CLASS }, spec: { controllerName: CONTROLLER_NAME } });
  }

  if (opts.cluster) return { objects, deployments, pods: [], gatewayIps };
  const pods = deployments.filter((d) => !d.notRunnable).flatMap((d) => book.pods(d));
  const sliced = new Set(
    objects.filter((o) => o.kind === 'EndpointSlice').map((o) => `${o.metadata.namespace ?? 'default'}/${o.metadata.labels?.['kubernetes.io/service-name'] ?? ''}`),
  );
  for (const svc of objects.filter((o) => o.kind === 'Service')) {
    const ns = svc.metadata.namespace ?? 'default';
    if (sliced.has(`${ns}/${svc.metadata.name}`)) continue;
    const selector: Record<string, string> | undefined = svc.spec?.selector;
    if (!selector || Object.keys(selector).length === 0) continue;
    const selected = pods.filter((p) => p.namespace === ns && Object.entries(selector).every(([k, v]) => p.labels[k] === v));
    if (selected.length === 0) continue;
    objects.push(endpointSliceFor(svc, selected));
  }
  return { objects, deployments, pods, gatewayIps };
}

/** The suite's generated Secrets and ConfigMaps added to `world`; a test's own object of the same name wins, as a later apply would. */
export function withGenerated(world: World, generated: readonly K8sObject[] = []): World {
  const own = new Set(world.objects.map(objectKey));
  world.objects.push(...generated.filter((o) => !own.has(objectKey(o))).map((o) => structuredClone(o)));
  return world;
}

function describeDeployment(obj: K8sObject): Deployment {
  const spec = obj.spec ?? {};
  const d: Deployment = {
    namespace: obj.metadata.namespace ?? 'default',
    name: obj.metadata.name,
    replicas: typeof spec.replicas === 'number' ? spec.replicas : 1,
    labels: spec.template?.metadata?.labels ?? {},
  };
  const containers: EchoContainer[] = spec.template?.spec?.containers ?? [];
  const echo = containers.find((c) => (c.image ?? '').includes('/echo-basic:'));
  if (!echo) return { ...d, notRunnable: `image ${containers[0]?.image ?? '(none)'} is not the HTTP echo backend` };
  const envNames = (echo.env ?? []).map((e) => e.name);
  const special = envNames.filter((n) => NON_HTTP_ECHO_ENV.includes(n));
  if (special.length) return { ...d, notRunnable: `echo in a mode the harness does not provide (${special.join(', ')})` };
  if (!envNames.includes('TLS_SERVER_CERT') && !envNames.includes('TLS_SERVER_PRIVKEY')) return d;
  const tls = echoTlsSource(d.namespace, echo, spec.template?.spec?.volumes ?? []);
  return typeof tls === 'string' ? { ...d, notRunnable: tls } : { ...d, tls };
}

interface EchoContainer {
  image?: string;
  env?: { name: string; value?: string }[];
  volumeMounts?: { name: string; mountPath: string }[];
}

interface PodVolume {
  name: string;
  secret?: { secretName: string; items?: { key: string; path: string }[] };
  configMap?: { name: string; items?: { key: string; path: string }[] };
}

/**
 * Follows the TLS_* file paths of upstream's echo through the container's volume mounts to the
 * Secret or ConfigMap key behind each; a string says why that cannot be done.
 */
function echoTlsSource(namespace: string, echo: EchoContainer, volumes: PodVolume[]): EchoTlsSource | string {
  const keyAt = (env: string): MountedKey | string | undefined => {
    const file = echo.env?.find((e) => e.name === env)?.value;
    if (file === undefined) return undefined;
    for (const m of echo.volumeMounts ?? []) {
      const dir = m.mountPath.replace(/\/$/, '');
      if (!file.startsWith(`${dir}/`)) continue;
      const rel = file.slice(dir.length + 1);
      const v = volumes.find((x) => x.name === m.name);
      const source = v?.secret ? { kind: 'Secret' as const, name: v.secret.secretName, items: v.secret.items } : v?.configMap ? { kind: 'ConfigMap' as const, name: v.configMap.name, items: v.configMap.items } : undefined;
      if (!source) continue;
      const key = source.items ? source.items.find((i) => i.path === rel)?.key : rel;
      if (key !== undefined) return { kind: source.kind, namespace, name: source.name, key };
    }
    return `${env} (${file}) is not a key of a mounted Secret or ConfigMap`;
  };
  const cert = keyAt('TLS_SERVER_CERT');
  const key = keyAt('TLS_SERVER_PRIVKEY');
  const clientCa = keyAt('TLS_CLIENT_CACERTS');
  for (const r of [cert, key, clientCa]) if (typeof r === 'string') return r;
  if (!cert || !key) return 'TLS_SERVER_CERT and TLS_SERVER_PRIVKEY must both be set';
  return { cert: cert as MountedKey, key: key as MountedKey, ...(clientCa ? { clientCa: clientCa as MountedKey } : {}) };
}

/** The bytes of a mounted key, from the objects of the world (Secret data is base64). */
export function mountedKeyData(objects: readonly K8sObject[], ref: MountedKey): Buffer {
  const o = objects.find((x) => x.kind === ref.kind && (x.metadata.namespace ?? 'default') === ref.namespace && x.metadata.name === ref.name);
  if (!o) throw new Error(`${ref.kind} ${ref.namespace}/${ref.name}, mounted by a TLS echo, is not in the manifests`);
  if (ref.kind === 'Secret') {
    const v = (o.data as Record<string, string> | undefined)?.[ref.key];
    if (typeof v === 'string') return Buffer.from(v, 'base64');
    const s = (o.stringData as Record<string, string> | undefined)?.[ref.key];
    if (typeof s === 'string') return Buffer.from(s);
  } else {
    const v = (o.data as Record<string, string> | undefined)?.[ref.key];
    if (typeof v === 'string') return Buffer.from(v);
  }
  throw new Error(`${ref.kind} ${ref.namespace}/${ref.name} has no key ${ref.key}`);
}

interface ServicePort {
  name?: string;
  port: number;
  targetPort?: number | string;
  protocol?: string;
  appProtocol?: string;
}

/** What the Kubernetes EndpointSlice controller would publish for a selector-based Service. */
export function endpointSliceFor(svc: K8sObject, pods: Pod[]): K8sObject {
  const ports: ServicePort[] = svc.spec?.ports ?? [];
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: `${svc.metadata.name}-${sliceSuffix(svc.metadata.name)}`,
      namespace: svc.metadata.namespace ?? 'default',
      labels: {
        'kubernetes.io/service-name': svc.metadata.name,
        'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io',
      },
    },
    addressType: 'IPv4',
    ports: ports
      .filter((p) => typeof (p.targetPort ?? p.port) === 'number')
      .map((p) => ({
        name: p.name ?? '',
        port: (p.targetPort ?? p.port) as number,
        protocol: p.protocol ?? 'TCP',
        ...(p.appProtocol ? { appProtocol: p.appProtocol } : {}),
      })),
    endpoints: pods.map(endpointFor),
  };
}

export function endpointFor(p: Pod): Record<string, unknown> {
  return {
    addresses: [p.ip],
    conditions: { ready: true, serving: true, terminating: false },
    targetRef: { kind: 'Pod', namespace: p.namespace, name: p.name },
  };
}

function sliceSuffix(name: string): string {
  const alnum = 'bcdfghjklmnpqrstvwxz2456789';
  let h = 2166136261;
  for (const ch of name) h = Math.imul(h ^ ch.charCodeAt(0), 16777619) >>> 0;
  let out = '';
  for (let i = 0; i < 5; i++, h = Math.floor(h / alnum.length)) out += alnum[h % alnum.length];
  return out;
}

/** The serve folder: one file per object, so a test can delete or rewrite a single object. */
export class ServeDir {
  readonly dir: string;
  #files = new Map<string, string>();
  #seq = 0;

  constructor(dir: string) {
    this.dir = dir;
  }

  async writeAll(objects: K8sObject[]): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
    await mkdir(this.dir, { recursive: true });
    for (const o of objects) await this.put(o);
  }

  async put(o: K8sObject): Promise<void> {
    const key = objectKey(o);
    let file = this.#files.get(key);
    if (!file) {
      const slug = [o.kind, o.metadata.namespace ?? '', o.metadata.name].filter(Boolean).join('-').toLowerCase().replace(/[^a-z0-9.-]+/g, '_');
      file = path.join(this.dir, `${String(++this.#seq).padStart(3, '0')}-${slug}.yaml`);
      this.#files.set(key, file);
    }
    // Write-then-rename keeps a watcher from reading half a file.
    const tmp = path.join(this.dir, `.${path.basename(file)}.tmp`);
    await writeFile(tmp, stringify(o), 'utf8');
    await rename(tmp, file);
  }

  async remove(key: string): Promise<boolean> {
    const file = this.#files.get(key);
    if (!file) return false;
    await rm(file, { force: true });
    this.#files.delete(key);
    return true;
  }
}
