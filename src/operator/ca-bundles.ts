// The CA bundle ConfigMaps our Gateways' client certificate validation names (spec.tls.frontend
// caCertificateRefs), kept like the certificate Secrets (certificate-secrets.ts): a watch of
// every ConfigMap whose cache holds metadata only, and the data of a ConfigMap kept only while a
// Gateway references it. A ConfigMap that becomes referenced later is read once with a GET. A
// change of a referenced ConfigMap (a CA rotation) starts a reconcile; any other does not. The
// operator's own routing ConfigMaps (large, rewritten on every publish) are not watched at all.
import { CoreV1Api, type KubeConfig, type V1ConfigMap } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { ConfigMap, Gateway } from '../gatewayapi/types.ts';
import { ROLE_LABEL } from '../ir/configmap.ts';
import { apiStatusCode } from '../providers/kubernetes/errors.ts';
import { WatchedKind } from '../providers/kubernetes/watch.ts';

/** Data kept for referenced ConfigMaps, at most (bytes of values); above it a ConfigMap reads as absent. */
export const REFERENCED_CONFIGMAP_BYTES = 64 * 1024 * 1024;

export interface CaBundleConfigMapsOptions {
  kubeConfig: KubeConfig;
  logger: Logger;
  /** A referenced ConfigMap changed, appeared or went away (after the first list). */
  onChange: () => void;
}

interface Held {
  resourceVersion: string;
  configMap: ConfigMap;
  bytes: number;
}

export class CaBundleConfigMaps {
  private readonly informer: WatchedKind<V1ConfigMap>;
  private readonly core: CoreV1Api;
  private readonly log: Logger;
  /** "namespace/name" of the ConfigMaps referenced by the last resolve(). */
  private wanted = new Set<string>();
  private readonly held = new Map<string, Held>();
  private synced = false;

  constructor(opts: CaBundleConfigMapsOptions) {
    this.core = opts.kubeConfig.makeApiClient(CoreV1Api);
    this.log = opts.logger.child({ component: 'ca-bundle-configmaps' });
    const labelSelector = `!${ROLE_LABEL}`;
    this.informer = new WatchedKind<V1ConfigMap>({
      kubeConfig: opts.kubeConfig,
      path: '/api/v1/configmaps',
      list: () => this.core.listConfigMapForAllNamespaces({ labelSelector }),
      labelSelector,
      logger: opts.logger,
      name: `configmaps (all namespaces, ${labelSelector})`,
      onEvent: (type, obj) => {
        const key = `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
        const wanted = this.wanted.has(key);
        if (type === 'delete') this.held.delete(key);
        else if (wanted) this.keep(key, obj);
        // The cache keeps metadata only: existence and resourceVersion are all it is asked.
        obj.data = undefined;
        obj.binaryData = undefined;
        if (wanted && this.synced) opts.onChange();
      },
      onChange: () => undefined,
    });
  }

  async start(): Promise<void> {
    await this.informer.start();
    await this.informer.synced;
    this.synced = true;
  }

  async stop(): Promise<void> {
    await this.informer.stop();
  }

  /**
   * The ConfigMaps `gateways` name as client CA bundles, with their data, read from the API when
   * not kept yet. Others' data is dropped. One that is gone or unreadable is left out (the
   * translator reports it not found).
   */
  async resolve(gateways: readonly Gateway[]): Promise<ConfigMap[]> {
    const wanted = referencedCaConfigMaps(gateways);
    this.wanted = wanted;
    for (const key of this.held.keys()) if (!wanted.has(key)) this.held.delete(key);
    const out: ConfigMap[] = [];
    for (const key of wanted) {
      const [namespace, name] = key.split('/');
      const meta = this.informer.list().find((c) => c.metadata?.namespace === namespace && c.metadata?.name === name);
      if (!meta) continue;
      let held = this.held.get(key);
      if (!held || held.resourceVersion !== meta.metadata?.resourceVersion) {
        const live = await this.core.readNamespacedConfigMap({ namespace, name }).catch((err: unknown) => {
          if (apiStatusCode(err) === 404) return undefined;
          throw err;
        });
        if (!live) continue;
        held = this.keep(key, live) ?? undefined;
        if (!held) continue;
      }
      out.push(held.configMap);
    }
    return out;
  }

  private keep(key: string, obj: V1ConfigMap): Held | null {
    if (!this.wanted.has(key)) return null;
    const data = { ...(obj.data ?? {}) };
    const bytes = Object.values(data).reduce((n, v) => n + Buffer.byteLength(v), 0);
    const others = [...this.held].reduce((n, [k, h]) => (k === key ? n : n + h.bytes), 0);
    if (others + bytes > REFERENCED_CONFIGMAP_BYTES) {
      this.log.warn({ event: 'configmap-not-kept', object: key, bytes }, `referenced ConfigMaps exceed ${REFERENCED_CONFIGMAP_BYTES} bytes; ConfigMap not kept`);
      this.held.delete(key);
      return null;
    }
    const [namespace, name] = key.split('/');
    const held: Held = { resourceVersion: obj.metadata?.resourceVersion ?? '', bytes, configMap: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { namespace, name }, data } };
    this.held.set(key, held);
    return held;
  }
}

/** "namespace/name" of every core ConfigMap a Gateway's frontend client validation names. */
export function referencedCaConfigMaps(gateways: readonly Gateway[]): Set<string> {
  const out = new Set<string>();
  for (const g of gateways) {
    const frontend = g.spec.tls?.frontend;
    if (!frontend) continue;
    for (const tls of [frontend.default, ...(frontend.perPort ?? []).map((p) => p.tls)]) {
      for (const ref of tls?.validation?.caCertificateRefs ?? []) {
        if ((ref.group ?? '') !== '' || ref.kind !== 'ConfigMap') continue;
        out.add(`${ref.namespace ?? g.metadata.namespace}/${ref.name}`);
      }
    }
  }
  return out;
}
