// The certificate Secrets the operator's Gateways reference, kept from a watch of every
// kubernetes.io/tls Secret in the cluster without keeping them all in memory: the watch cache
// holds metadata only (data is dropped as each event arrives), and the data of a Secret is
// kept only while a listener of one of our Gateways references it. A Secret that becomes
// referenced later is read once with a GET. A change of a referenced Secret (a rotation)
// starts a reconcile; a change of any other Secret does not.
import { CoreV1Api, type KubeConfig, type V1Secret } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { TLS_SECRET_TYPE } from '../gatewayapi/certificates.ts';
import type { Gateway, Secret } from '../gatewayapi/types.ts';
import { apiStatusCode } from '../providers/kubernetes/errors.ts';
import { WatchedKind } from '../providers/kubernetes/watch.ts';

/** Data kept for referenced Secrets, at most (bytes of base64 values); above it a Secret reads as absent. */
export const REFERENCED_SECRET_BYTES = 64 * 1024 * 1024;

export interface CertificateSecretsOptions {
  kubeConfig: KubeConfig;
  logger: Logger;
  /** A referenced Secret changed, appeared or went away (after the first list). */
  onChange: () => void;
}

interface Held {
  resourceVersion: string;
  secret: Secret;
  bytes: number;
}

export class CertificateSecrets {
  private readonly informer: WatchedKind<V1Secret>;
  private readonly core: CoreV1Api;
  private readonly log: Logger;
  /** "namespace/name" of the Secrets referenced by the last resolve(). */
  private wanted = new Set<string>();
  private readonly held = new Map<string, Held>();
  private synced = false;

  constructor(opts: CertificateSecretsOptions) {
    this.core = opts.kubeConfig.makeApiClient(CoreV1Api);
    this.log = opts.logger.child({ component: 'certificate-secrets' });
    const fieldSelector = `type=${TLS_SECRET_TYPE}`;
    this.informer = new WatchedKind<V1Secret>({
      kubeConfig: opts.kubeConfig,
      path: '/api/v1/secrets',
      list: () => this.core.listSecretForAllNamespaces({ fieldSelector }),
      fieldSelector,
      logger: opts.logger,
      name: `secrets (all namespaces, ${fieldSelector})`,
      onEvent: (type, obj) => {
        const key = `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
        const wanted = this.wanted.has(key);
        if (type === 'delete') this.held.delete(key);
        else if (wanted) this.keep(key, obj);
        // The cache keeps metadata only: existence and resourceVersion are all it is asked.
        obj.data = undefined;
        obj.stringData = undefined;
        if (wanted && this.synced) opts.onChange();
      },
      // Every event, of any TLS Secret: what matters is decided per object in onEvent (a relist
      // reports its changes as events too).
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
   * The Secrets `gateways` reference (listeners' certificateRefs to core Secrets), with their
   * data, read from the API when not kept yet. Others' data is dropped. A Secret that is gone or
   * unreadable is left out (the translator reports "Secret not found").
   */
  async resolve(gateways: readonly Gateway[]): Promise<Secret[]> {
    const wanted = referencedSecrets(gateways);
    this.wanted = wanted;
    for (const key of this.held.keys()) if (!wanted.has(key)) this.held.delete(key);
    const out: Secret[] = [];
    for (const key of wanted) {
      const [namespace, name] = key.split('/');
      const meta = this.informer.list().find((s) => s.metadata?.namespace === namespace && s.metadata?.name === name);
      if (!meta) continue;
      let held = this.held.get(key);
      if (!held || held.resourceVersion !== meta.metadata?.resourceVersion) {
        const live = await this.core.readNamespacedSecret({ namespace, name }).catch((err: unknown) => {
          if (apiStatusCode(err) === 404) return undefined;
          throw err;
        });
        if (!live) continue;
        held = this.keep(key, live) ?? undefined;
        if (!held) continue;
      }
      out.push(held.secret);
    }
    return out;
  }

  private keep(key: string, obj: V1Secret): Held | null {
    if (!this.wanted.has(key)) return null;
    const data = { ...(obj.data ?? {}) };
    const bytes = Object.values(data).reduce((n, v) => n + v.length, 0);
    const others = [...this.held].reduce((n, [k, h]) => (k === key ? n : n + h.bytes), 0);
    if (others + bytes > REFERENCED_SECRET_BYTES) {
      this.log.warn({ event: 'secret-not-kept', object: key, bytes }, `referenced Secrets exceed ${REFERENCED_SECRET_BYTES} bytes; Secret not kept`);
      this.held.delete(key);
      return null;
    }
    const [namespace, name] = key.split('/');
    const held: Held = {
      resourceVersion: obj.metadata?.resourceVersion ?? '',
      bytes,
      secret: { apiVersion: 'v1', kind: 'Secret', metadata: { namespace, name }, type: obj.type, data },
    };
    this.held.set(key, held);
    return held;
  }
}

/** "namespace/name" of every core Secret an HTTPS listener of `gateways` names. */
export function referencedSecrets(gateways: readonly Gateway[]): Set<string> {
  const out = new Set<string>();
  for (const g of gateways) {
    for (const l of g.spec.listeners ?? []) {
      if (l.protocol !== 'HTTPS') continue;
      for (const ref of l.tls?.certificateRefs ?? []) {
        if ((ref.group ?? '') !== '' || (ref.kind ?? 'Secret') !== 'Secret') continue;
        out.add(`${ref.namespace ?? g.metadata.namespace}/${ref.name}`);
      }
    }
  }
  return out;
}
