// What the in-pod agent watches: its Gateway's routing ConfigMaps and certificate Secret
// (published by the operator) and the EndpointSlices of every Service, in every namespace.
// The certificate Secret is watched by name (a field selector): the pod may read that one
// Secret and no other (its Role names it in resourceNames). Slices are watched cluster-wide
// with one watch rather than one per referenced namespace: routes may reach any namespace
// through ReferenceGrants, and the set of namespaces changes with every config.
import { CoreV1Api, DiscoveryV1Api, type KubeConfig, type V1ConfigMap, type V1EndpointSlice, type V1Secret } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { resolveEndpoints } from '../gatewayapi/endpoints.ts';
import { parseEndpointSlice, type SliceResult } from '../gatewayapi/schema/endpointslice.ts';
import type { EndpointSlice } from '../gatewayapi/types.ts';
import { GATEWAY_LABEL, RoutingConfigReader, type DecodeResult } from '../ir/configmap.ts';
import type { EndpointMap, RoutingIR } from '../ir/types.ts';
import { WatchedKind } from '../providers/kubernetes/watch.ts';

const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

export interface SourcesOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  gateway: string;
  /** Name of the Gateway's certificate Secret (in `namespace`); absent: none is watched. */
  certificateSecret?: string;
  logger: Logger;
  onChange: () => void;
}

export class ChaperoneSources {
  private readonly opts: SourcesOptions;
  private readonly configMaps: WatchedKind<V1ConfigMap>;
  private readonly slices: WatchedKind<V1EndpointSlice>;
  private readonly certificates: WatchedKind<V1Secret> | null;
  /** Every kind have been listed once. */
  readonly synced: Promise<void>;
  private allSynced = false;
  /** Inflates the routing config only when its ConfigMaps changed, not on every event. */
  readonly configReader: RoutingConfigReader;
  private readonly parseCache = new WeakMap<V1EndpointSlice, SliceResult>();
  /** Slice -> last warning logged about it. */
  private readonly warned = new Map<string, string>();

  constructor(opts: SourcesOptions) {
    this.opts = opts;
    this.configReader = new RoutingConfigReader(opts.gateway);
    // Changes are passed on only once both kinds are listed: a config compiled while the
    // EndpointSlices are not listed yet would go live with no endpoints (every route a 500).
    const onChange = () => {
      if (this.allSynced) opts.onChange();
    };
    const core = opts.kubeConfig.makeApiClient(CoreV1Api);
    const discovery = opts.kubeConfig.makeApiClient(DiscoveryV1Api);
    const labelSelector = `${GATEWAY_LABEL}=${opts.gateway}`;
    this.configMaps = new WatchedKind<V1ConfigMap>({
      kubeConfig: opts.kubeConfig,
      path: `/api/v1/namespaces/${opts.namespace}/configmaps`,
      list: () => core.listNamespacedConfigMap({ namespace: opts.namespace, labelSelector }),
      labelSelector,
      onChange,
      logger: opts.logger,
      name: `configmaps ${opts.namespace} ${labelSelector}`,
    });
    this.slices = new WatchedKind<V1EndpointSlice>({
      kubeConfig: opts.kubeConfig,
      path: '/apis/discovery.k8s.io/v1/endpointslices',
      list: () => discovery.listEndpointSliceForAllNamespaces({ labelSelector: SERVICE_NAME_LABEL }),
      labelSelector: SERVICE_NAME_LABEL,
      onChange,
      logger: opts.logger,
      name: 'endpointslices (all namespaces)',
    });
    const byName = `metadata.name=${opts.certificateSecret}`;
    this.certificates = opts.certificateSecret === undefined ? null : new WatchedKind<V1Secret>({
      kubeConfig: opts.kubeConfig,
      path: `/api/v1/namespaces/${opts.namespace}/secrets`,
      list: () => core.listNamespacedSecret({ namespace: opts.namespace, fieldSelector: byName }),
      fieldSelector: byName,
      onChange,
      logger: opts.logger,
      name: `secret ${opts.namespace}/${opts.certificateSecret}`,
    });
    this.synced = Promise.all([this.configMaps.synced, this.slices.synced, this.certificates?.synced]).then(() => {
      this.allSynced = true;
    });
  }

  async start(): Promise<void> {
    await Promise.all([this.configMaps.start(), this.slices.start(), this.certificates?.start()]);
  }

  /** The Gateway's certificate Secret as published, if there is one. */
  certificateSecret(): V1Secret | undefined {
    return this.certificates?.list().find((s) => s.metadata?.name === this.opts.certificateSecret);
  }

  routingConfig(): DecodeResult {
    return this.configReader.read(this.configMaps.list() as V1ConfigMap[]);
  }

  endpoints(ir: RoutingIR): EndpointMap {
    const valid: EndpointSlice[] = [];
    const seen = new Set<string>();
    for (const raw of this.slices.list()) {
      const id = `${raw.metadata?.namespace}/${raw.metadata?.name}`;
      seen.add(id);
      const r = this.parsed(raw);
      if (r.ok && r.slice.addressType !== 'FQDN') valid.push(r.slice);
      else this.warnOnce(id, r.ok ? 'addressType FQDN is not supported; slice ignored' : `invalid, skipped: ${r.message}`);
    }
    // Forget warnings about slices that are gone, so a slice re-created bad is reported again.
    for (const id of this.warned.keys()) if (!seen.has(id)) this.warned.delete(id);
    return resolveEndpoints(ir.services, valid, (slice, message) =>
      this.warnOnce(`${slice.metadata.namespace}/${slice.metadata.name}`, message),
    );
  }

  /**
   * Slices come from the API server, but are checked like any input before their ports and
   * addresses can reach VCL: a bad slice is skipped and logged, never fails the compile.
   * Results are kept per object (the watch replaces an object on every change).
   */
  private parsed(raw: V1EndpointSlice): SliceResult {
    let r = this.parseCache.get(raw);
    if (!r) {
      r = parseEndpointSlice(raw);
      this.parseCache.set(raw, r);
    }
    return r;
  }

  private warnOnce(slice: string, message: string): void {
    if (this.warned.get(slice) === message) return;
    this.warned.set(slice, message);
    const [namespace, name] = slice.split('/');
    this.opts.logger.warn({ event: 'endpointslice-skipped', namespace, name }, `EndpointSlice ${slice}: ${message}`);
  }

  async stop(): Promise<void> {
    await Promise.all([this.configMaps.stop(), this.slices.stop(), this.certificates?.stop()]);
  }
}
