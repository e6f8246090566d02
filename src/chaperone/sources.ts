// What the in-pod agent watches: its Gateway's routing ConfigMaps (published by the operator)
// and the EndpointSlices of every Service, in every namespace. Slices are watched cluster-wide
// with one watch rather than one per referenced namespace: routes may reach any namespace
// through ReferenceGrants, and the set of namespaces changes with every config.
import { CoreV1Api, DiscoveryV1Api, type KubeConfig, type V1ConfigMap, type V1EndpointSlice } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { resolveEndpoints } from '../gatewayapi/endpoints.ts';
import type { EndpointSlice } from '../gatewayapi/types.ts';
import { decodeRoutingConfig, GATEWAY_LABEL, type DecodeResult } from '../ir/configmap.ts';
import type { EndpointMap, RoutingIR } from '../ir/types.ts';
import { WatchedKind } from '../providers/kubernetes/watch.ts';

const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

export interface SourcesOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  gateway: string;
  logger: Logger;
  onChange: () => void;
}

export class ChaperoneSources {
  private readonly opts: SourcesOptions;
  private readonly configMaps: WatchedKind<V1ConfigMap>;
  private readonly slices: WatchedKind<V1EndpointSlice>;
  /** Both kinds have been listed once. */
  readonly synced: Promise<void>;
  private allSynced = false;

  constructor(opts: SourcesOptions) {
    this.opts = opts;
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
    this.synced = Promise.all([this.configMaps.synced, this.slices.synced]).then(() => {
      this.allSynced = true;
    });
  }

  async start(): Promise<void> {
    await Promise.all([this.configMaps.start(), this.slices.start()]);
  }

  routingConfig(): DecodeResult {
    return decodeRoutingConfig(this.configMaps.list() as V1ConfigMap[], this.opts.gateway);
  }

  endpoints(ir: RoutingIR): EndpointMap {
    return resolveEndpoints(ir.services, this.slices.list() as unknown as EndpointSlice[]);
  }

  async stop(): Promise<void> {
    await Promise.all([this.configMaps.stop(), this.slices.stop()]);
  }
}
