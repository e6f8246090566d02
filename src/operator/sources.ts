// The operator's view of the cluster: one kept-alive informer per kind it reads, and the
// ResourceSnapshot built from them. Objects from the API are checked by the same schemas as
// manifests from files: a rejected object goes to `snapshot.rejected` and is reported, never
// translated. Objects of other controllers' GatewayClasses are dropped before translation.
import {
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  DiscoveryV1Api,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { CONTROLLER_NAME } from '../gatewayapi/features.ts';
import { MANIFEST_KINDS, validateManifestObject, withoutNulls } from '../gatewayapi/schema/index.ts';
import { emptySnapshot, GATEWAY_GROUP, type ResourceSnapshot } from '../gatewayapi/types.ts';
import { WatchedKind } from '../providers/kubernetes/watch.ts';
import { onlyStatusChanged } from './status-writer.ts';
import { MANAGED_BY, MANAGED_BY_LABEL } from './infrastructure.ts';
import { PARAMETERS_GROUP, PARAMETERS_PLURAL, PARAMETERS_VERSION } from './parameters.ts';

/** A manifest kind read from the API: where it is listed and watched. */
interface SourceKind {
  /** MANIFEST_KINDS key, or a kind the operator reads for itself. */
  kind: string;
  apiVersion: string;
  path: string;
  list: () => Promise<KubernetesListObject<KubernetesObject>>;
  labelSelector?: string;
  /** Its CRD may be absent: a 404 reads as no objects (WatchedKind `optional`). */
  optional?: boolean;
  /**
   * Gateway API kinds: events that changed only status are ignored (most are the operator's own
   * writes). Services, Deployments and Pods keep them: their status is what Programmed reports.
   */
  ignoreStatusOnly: boolean;
}

export type Raw = KubernetesObject & { [key: string]: unknown };

/** Everything one reconcile reads, taken at once from the informers' caches. */
export interface ClusterView {
  snapshot: ResourceSnapshot;
  /** Gateway uid by namespace/name (owner references of the per-Gateway objects). */
  gatewayUids: Map<string, string>;
  /**
   * uid of every GatewayClass, Gateway and HTTPRoute, by `kind/namespace/name` (namespace empty
   * for classes): an object deleted and created again under its name is another object, whose
   * status must be written even when it is what the old one had.
   */
  statusUids: Map<string, string>;
  /** GatewayClassParameters objects by name, as read (parsed by the caller). */
  parameters: Map<string, Raw>;
  /** The Pods of the per-Gateway Deployments (managed-by label), as read. */
  pods: Raw[];
}

const GW_V1 = `${GATEWAY_GROUP}/v1`;

export interface OperatorSourcesOptions {
  kubeConfig: KubeConfig;
  logger: Logger;
  /** A change that may matter (after the first sync of every kind). */
  onChange: () => void;
}

/** What view() needs of one informer object: the few raw fields it filters on, and the validation. */
interface ValidatedItem {
  namespace: string | undefined;
  name: string;
  uid: string | undefined;
  /** GatewayClass spec.controllerName, Gateway spec.gatewayClassName, EndpointSlice addressType. */
  selector: unknown;
  result: ReturnType<typeof validateManifestObject>;
}

export class OperatorSources {
  private readonly validated = new WeakMap<KubernetesObject, ValidatedItem>();
  private readonly watched = new Map<string, { def: SourceKind; informer: WatchedKind<KubernetesObject>; seen: Map<string, KubernetesObject> }>();
  private synced = false;

  constructor(opts: OperatorSourcesOptions) {
    const custom = opts.kubeConfig.makeApiClient(CustomObjectsApi);
    const core = opts.kubeConfig.makeApiClient(CoreV1Api);
    const discovery = opts.kubeConfig.makeApiClient(DiscoveryV1Api);
    const apps = opts.kubeConfig.makeApiClient(AppsV1Api);
    type List = KubernetesListObject<KubernetesObject>;
    const clusterCustom = (group: string, version: string, plural: string) => () =>
      custom.listClusterCustomObject({ group, version, plural }) as Promise<List>;
    const allNamespaces = (group: string, version: string, plural: string) => () =>
      custom.listCustomObjectForAllNamespaces({ group, version, plural }) as Promise<List>;
    const managed = `${MANAGED_BY_LABEL}=${MANAGED_BY}`;
    const defs: SourceKind[] = [
      { kind: 'GatewayClass', apiVersion: GW_V1, path: `/apis/${GW_V1}/gatewayclasses`, list: clusterCustom(GATEWAY_GROUP, 'v1', 'gatewayclasses'), ignoreStatusOnly: true },
      { kind: 'Gateway', apiVersion: GW_V1, path: `/apis/${GW_V1}/gateways`, list: allNamespaces(GATEWAY_GROUP, 'v1', 'gateways'), ignoreStatusOnly: true },
      { kind: 'HTTPRoute', apiVersion: GW_V1, path: `/apis/${GW_V1}/httproutes`, list: allNamespaces(GATEWAY_GROUP, 'v1', 'httproutes'), ignoreStatusOnly: true },
      {
        kind: 'ReferenceGrant',
        apiVersion: `${GATEWAY_GROUP}/v1beta1`,
        path: `/apis/${GATEWAY_GROUP}/v1beta1/referencegrants`,
        list: allNamespaces(GATEWAY_GROUP, 'v1beta1', 'referencegrants'),
        ignoreStatusOnly: true,
      },
      {
        kind: 'BackendTLSPolicy',
        apiVersion: GW_V1,
        path: `/apis/${GW_V1}/backendtlspolicies`,
        list: allNamespaces(GATEWAY_GROUP, 'v1', 'backendtlspolicies'),
        ignoreStatusOnly: true,
        // Gateway API before 1.4 has no BackendTLSPolicy v1: the operator runs without it.
        optional: true,
      },
      { kind: 'Namespace', apiVersion: 'v1', path: '/api/v1/namespaces', list: () => core.listNamespace() as Promise<List>, ignoreStatusOnly: true },
      { kind: 'Service', apiVersion: 'v1', path: '/api/v1/services', list: () => core.listServiceForAllNamespaces() as Promise<List>, ignoreStatusOnly: false },
      {
        kind: 'EndpointSlice',
        apiVersion: 'discovery.k8s.io/v1',
        path: '/apis/discovery.k8s.io/v1/endpointslices',
        list: () => discovery.listEndpointSliceForAllNamespaces() as Promise<List>,
        ignoreStatusOnly: false,
      },
      {
        kind: 'GatewayClassParameters',
        apiVersion: `${PARAMETERS_GROUP}/${PARAMETERS_VERSION}`,
        path: `/apis/${PARAMETERS_GROUP}/${PARAMETERS_VERSION}/${PARAMETERS_PLURAL}`,
        list: clusterCustom(PARAMETERS_GROUP, PARAMETERS_VERSION, PARAMETERS_PLURAL),
        ignoreStatusOnly: true,
      },
      {
        // The gateway pods: their readiness and what each says it serves (HTTPRoute Programmed).
        kind: 'Pod',
        apiVersion: 'v1',
        path: '/api/v1/pods',
        list: () => core.listPodForAllNamespaces({ labelSelector: managed }) as Promise<List>,
        labelSelector: managed,
        ignoreStatusOnly: false,
      },
      {
        kind: 'Deployment',
        apiVersion: 'apps/v1',
        path: '/apis/apps/v1/deployments',
        list: () => apps.listDeploymentForAllNamespaces({ labelSelector: managed }) as Promise<List>,
        labelSelector: managed,
        ignoreStatusOnly: false,
      },
    ];
    for (const def of defs) {
      const entry = {
        def,
        seen: new Map<string, KubernetesObject>(),
        informer: new WatchedKind<KubernetesObject>({
          kubeConfig: opts.kubeConfig,
          path: def.path,
          list: def.list,
          labelSelector: def.labelSelector,
          optional: def.optional,
          logger: opts.logger,
          name: def.kind,
          onChange: () => {
            if (this.synced && this.changed(entry)) opts.onChange();
          },
        }),
      };
      this.watched.set(def.kind, entry);
    }
  }

  async start(): Promise<void> {
    const all = [...this.watched.values()];
    await Promise.all(all.map((w) => w.informer.start()));
    await Promise.all(all.map((w) => w.informer.synced));
    for (const w of all) this.changed(w);
    this.synced = true;
  }

  /** True once every kind has been listed. */
  get isSynced(): boolean {
    return this.synced;
  }

  async stop(): Promise<void> {
    await Promise.all([...this.watched.values()].map((w) => w.informer.stop()));
  }

  /** Records the kind's objects; false when nothing but status changed (and the kind ignores that). */
  private changed(entry: { def: SourceKind; informer: WatchedKind<KubernetesObject>; seen: Map<string, KubernetesObject> }): boolean {
    const now = new Map<string, KubernetesObject>();
    for (const o of entry.informer.list()) now.set(`${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`, o);
    const before = entry.seen;
    entry.seen = now;
    if (!entry.def.ignoreStatusOnly || before.size !== now.size) return true;
    for (const [key, obj] of now) {
      const old = before.get(key);
      if (old === undefined) return true;
      if (old !== obj && !onlyStatusChanged(plain(old), plain(obj))) return true;
    }
    return false;
  }

  private items(kind: string): Raw[] {
    const w = this.watched.get(kind);
    if (!w) return [];
    return w.informer.list().map((o) => this.plainItem(w.def, o));
  }

  private plainItem(def: SourceKind, o: KubernetesObject): Raw {
    const obj = plain(o) as Raw;
    obj.apiVersion ??= def.apiVersion;
    obj.kind ??= def.kind;
    return obj;
  }

  /**
   * An informer object as the snapshot holds it: plain JSON, validated. Remembered per informer
   * object, which the informer replaces when the object changes and keeps otherwise, so an
   * unchanged object is neither copied nor validated again, and reaches the translator as the
   * same object as last time: what lets its memo (src/gatewayapi/translation-memo.ts) reuse
   * its work. Weak: replaced objects take their entry along.
   */
  private validatedItem(kind: string, def: SourceKind, o: KubernetesObject): ValidatedItem {
    let item = this.validated.get(o);
    if (!item) {
      const raw = this.plainItem(def, o);
      const obj = withoutNulls(raw) as Record<string, unknown> & { metadata: Record<string, unknown>; spec?: Record<string, unknown> };
      const selector = kind === 'GatewayClass' ? obj.spec?.controllerName : kind === 'Gateway' ? obj.spec?.gatewayClassName : kind === 'EndpointSlice' ? obj.addressType : undefined;
      if (!MANIFEST_KINDS[kind].namespaced) delete obj.metadata.namespace;
      obj.metadata.generation ??= 1;
      const uid = raw.metadata?.uid;
      item = { namespace: raw.metadata?.namespace, name: String(raw.metadata?.name), uid: typeof uid === 'string' ? uid : undefined, selector, result: validateManifestObject(kind, obj) };
      this.validated.set(o, item);
    }
    return item;
  }

  /** The current view: validated snapshot, minus other controllers' classes and Gateways. */
  view(): ClusterView {
    const snapshot = emptySnapshot();
    const rejected = snapshot.rejected as NonNullable<ResourceSnapshot['rejected']>;
    const gatewayUids = new Map<string, string>();
    const statusUids = new Map<string, string>();
    const ours = new Set<string>();
    for (const kind of ['GatewayClass', 'Gateway', 'HTTPRoute', 'ReferenceGrant', 'BackendTLSPolicy', 'Namespace', 'Service', 'EndpointSlice']) {
      const spec = MANIFEST_KINDS[kind];
      const w = this.watched.get(kind);
      for (const o of w ? w.informer.list() : []) {
        const { namespace, name, uid, selector, result } = this.validatedItem(kind, (w as { def: SourceKind }).def, o);
        if (kind === 'GatewayClass') {
          if (selector !== CONTROLLER_NAME) continue;
          ours.add(name);
        }
        if (kind === 'Gateway' && !ours.has(String(selector))) continue;
        if (kind === 'EndpointSlice' && selector === 'FQDN') continue;
        if (!result.ok) {
          // The API names the object; there is no file or line to point at.
          rejected.push({ ...result.rejected, file: `${kind} (API)`, line: 0 });
          continue;
        }
        (snapshot[spec.field] as unknown[]).push(result.object);
        if (kind === 'Gateway' && uid !== undefined) gatewayUids.set(`${namespace}/${name}`, uid);
        if ((kind === 'GatewayClass' || kind === 'Gateway' || kind === 'HTTPRoute' || kind === 'BackendTLSPolicy') && uid !== undefined) {
          statusUids.set(`${kind}/${spec.namespaced ? (namespace ?? '') : ''}/${name}`, uid);
        }
      }
    }
    const parameters = new Map<string, Raw>();
    for (const p of this.items('GatewayClassParameters')) if (p.metadata?.name) parameters.set(p.metadata.name, p);
    return { snapshot, gatewayUids, statusUids, parameters, pods: this.items('Pod') };
  }
}

/** Plain JSON: typed list calls deserialize times into Dates, watch events leave them strings. */
function plain(o: unknown): unknown {
  return JSON.parse(JSON.stringify(o));
}
