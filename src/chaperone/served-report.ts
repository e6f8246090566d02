// The pod's report of what it serves: once a config is live, the agent writes the config's
// sha256 into an annotation on its own Pod (src/ir/served.ts). The operator reads the Pods of
// every Gateway and turns the reports of all ready replicas into each HTTPRoute's `Programmed`
// condition; the agent never writes route status, so replicas never contend for one object.
//
// A merge patch of that one annotation: nothing else of the Pod is read or overwritten, and a
// concurrent change of the Pod (the kubelet's status, someone's label) needs no retry. Only the
// latest live config is kept for writing (a report that is overtaken is never sent), a value
// already on the Pod is not written again, and a failed write is retried after 1 s, doubling up
// to 30 s, until it succeeds or a newer config is live.
import { CoreV1Api, PatchStrategy, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { encodeServed, SERVED_ANNOTATION } from '../ir/served.ts';

export interface ServedReporterOptions {
  kubeConfig: KubeConfig;
  /** This pod. */
  namespace: string;
  podName: string;
  logger: Logger;
  /** First delay before a failed write is retried; doubles up to 30 s. Default 1 s. */
  retryMs?: number;
}

const MAX_RETRY_MS = 30_000;
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

export class ServedReporter {
  private readonly opts: ServedReporterOptions;
  private readonly api: CoreV1Api;
  private readonly log: Logger;
  /** The annotation value last written successfully. */
  private written: string | null = null;
  /** The annotation value of the config live now. */
  private wanted: string | null = null;
  private running: Promise<void> | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private retryMs: number;
  private stopped = false;
  /** Successful annotation writes (tests). */
  writes = 0;

  constructor(opts: ServedReporterOptions) {
    this.opts = opts;
    this.api = opts.kubeConfig.makeApiClient(CoreV1Api);
    this.log = opts.logger.child({ component: 'served-report', object: `${opts.namespace}/${opts.podName}` });
    this.retryMs = opts.retryMs ?? 1000;
  }

  /** The config with this sha256 (head ConfigMap's) is live in this pod. */
  live(sha256: string): void {
    if (this.stopped) return;
    this.wanted = encodeServed({ sha256 });
    this.kick();
  }

  /** Resolves when the latest report has been attempted (tests, shutdown). */
  async settled(): Promise<void> {
    while (this.running) await this.running;
  }

  stop(): void {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  private kick(): void {
    if (this.retryTimer) {
      clearTimeout(this.retryTimer);
      this.retryTimer = null;
    }
    this.running ??= this.drain().finally(() => (this.running = null));
  }

  private async drain(): Promise<void> {
    while (!this.stopped && this.wanted !== null && this.wanted !== this.written) {
      const value = this.wanted;
      try {
        await this.api.patchNamespacedPod(
          { namespace: this.opts.namespace, name: this.opts.podName, body: { metadata: { annotations: { [SERVED_ANNOTATION]: value } } } },
          mergePatch,
        );
        this.written = value;
        this.writes++;
        this.retryMs = this.opts.retryMs ?? 1000;
        this.log.debug({ event: 'served-reported', served: value }, 'reported the live config on the Pod');
      } catch (err) {
        this.log.warn({ event: 'served-report-failed', err: (err as Error).message, retryInMs: this.retryMs }, 'could not annotate the Pod with the live config; will retry');
        this.scheduleRetry();
        return;
      }
    }
  }

  private scheduleRetry(): void {
    if (this.stopped) return;
    const delay = this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, MAX_RETRY_MS);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.kick();
    }, delay);
    this.retryTimer.unref();
  }
}
