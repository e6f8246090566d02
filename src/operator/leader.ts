// Leader election on a coordination.k8s.io/v1 Lease, so that of several operator replicas only
// one reconciles and writes status. client-node ships no elector, hence this one.
//
// The Lease is the lock: every change to it is a compare-and-swap on its resourceVersion, so of
// two replicas racing for a free lease exactly one wins and the other gets 409. A lease is free
// when it names no holder or when its holder stopped renewing it (renewTime +
// leaseDurationSeconds is in the past). The leader renews every retry period; it steps down when
// a renewal is refused with 409 (someone else took the lease) or when it could not renew for
// `renewDeadline` (it cannot know whether the lease is still its own). Stopping releases the
// lease (clears the holder) so a follower takes over at once instead of after the lease duration.
import { CoordinationV1Api, V1MicroTime, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { apiStatusCode } from '../providers/kubernetes/errors.ts';

export interface LeaderElectorOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  /** Name of the Lease. */
  name: string;
  /** This replica's identity (its pod name): unique among the replicas. */
  identity: string;
  logger: Logger;
  /** How long a lease not renewed stays its holder's. Whole seconds on the Lease. Default 15 s. */
  leaseDurationMs?: number;
  /** How long a leader keeps leading while its renewals fail (other than 409). Default 10 s. */
  renewDeadlineMs?: number;
  /** Period of acquire attempts and renewals. Default 2 s. */
  retryPeriodMs?: number;
  /** Called when this replica becomes leader; `signal` aborts when it stops leading. */
  onStartedLeading: (signal: AbortSignal) => void;
  /** Called when this replica stops leading (lost, deadline passed, or stopped). */
  onStoppedLeading?: () => void;
  /** Wall clock, for the times written on the Lease and the expiry check. */
  now?: () => Date;
}

export interface StopOptions {
  /** Clear the holder so a follower takes over at once. Default true. */
  release?: boolean;
}

export class LeaderElector {
  private readonly opts: LeaderElectorOptions;
  private readonly api: CoordinationV1Api;
  private readonly log: Logger;
  private readonly leaseSeconds: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private leading: AbortController | null = null;
  /** Monotonic time of the last successful renewal (or acquisition). */
  private lastRenewal = 0;
  private loop: Promise<void> | null = null;
  private readonly stopping = new AbortController();

  constructor(opts: LeaderElectorOptions) {
    this.opts = opts;
    this.api = opts.kubeConfig.makeApiClient(CoordinationV1Api);
    this.log = opts.logger.child({ component: 'leader-election', lease: `${opts.namespace}/${opts.name}`, identity: opts.identity });
    this.leaseSeconds = Math.max(1, Math.ceil((opts.leaseDurationMs ?? 15_000) / 1000));
    this.renewDeadlineMs = opts.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = opts.retryPeriodMs ?? 2_000;
    if (this.renewDeadlineMs >= this.leaseSeconds * 1000) throw new Error('renewDeadline must be shorter than the lease duration');
    if (this.retryPeriodMs >= this.renewDeadlineMs) throw new Error('retryPeriod must be shorter than renewDeadline');
  }

  isLeader(): boolean {
    return this.leading !== null;
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** Stops campaigning; when leading, steps down and (unless `release: false`) releases the lease. */
  async stop(options: StopOptions = {}): Promise<void> {
    this.stopping.abort();
    await this.loop;
    this.stepDown('stopped');
    // Also when not leading: an acquisition may have succeeded just as the stop came.
    if (this.loop && options.release !== false) await this.release();
  }

  private async run(): Promise<void> {
    while (!this.stopping.signal.aborted) {
      await this.attempt();
      await sleep(this.retryPeriodMs, this.stopping.signal);
    }
  }

  private async attempt(): Promise<void> {
    try {
      const won = await this.tryAcquireOrRenew();
      if (this.stopping.signal.aborted) return;
      if (won) {
        this.lastRenewal = performance.now();
        if (!this.leading) {
          this.leading = new AbortController();
          this.log.info({ event: 'leader-started' }, 'became leader');
          this.opts.onStartedLeading(this.leading.signal);
        }
      } else if (this.leading) {
        this.stepDown('lease taken by another holder');
      }
    } catch (err) {
      const code = apiStatusCode(err);
      if (code === 409) {
        // Someone changed the lease between our read and write.
        if (this.leading) this.stepDown('renewal conflicted (409)');
        return;
      }
      this.log.warn({ event: 'leader-election-error', err: (err as Error).message }, 'lease request failed');
      if (this.leading && performance.now() - this.lastRenewal > this.renewDeadlineMs) this.stepDown('could not renew within the renew deadline');
    }
  }

  /** True when this replica holds the lease after the call. Throws the API error of a refused write. */
  private async tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name, identity } = this.opts;
    const now = this.microNow();
    let lease: V1Lease;
    try {
      lease = await this.api.readNamespacedLease({ namespace, name });
    } catch (err) {
      if (apiStatusCode(err) !== 404) throw err;
      await this.api.createNamespacedLease({
        namespace,
        body: {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name, namespace },
          spec: { holderIdentity: identity, leaseDurationSeconds: this.leaseSeconds, acquireTime: now, renewTime: now, leaseTransitions: 0 },
        },
      });
      return true;
    }
    const spec = (lease.spec ??= {});
    const holder = spec.holderIdentity ?? '';
    if (holder === identity) {
      // Our own lease. Only renew while we lead: a lease we hold but did not know about (a restart
      // with the same identity) is taken over as a new acquisition.
      spec.renewTime = now;
      spec.leaseDurationSeconds = this.leaseSeconds;
      if (!this.leading) spec.acquireTime = now;
      await this.api.replaceNamespacedLease({ namespace, name, body: lease });
      return true;
    }
    if (holder !== '' && !this.expired(spec.renewTime ?? spec.acquireTime, spec.leaseDurationSeconds)) return false;
    spec.holderIdentity = identity;
    spec.leaseDurationSeconds = this.leaseSeconds;
    spec.acquireTime = now;
    spec.renewTime = now;
    spec.leaseTransitions = (spec.leaseTransitions ?? 0) + (holder === '' ? 0 : 1);
    try {
      await this.api.replaceNamespacedLease({ namespace, name, body: lease });
    } catch (err) {
      if (apiStatusCode(err) === 409) return false; // another follower won the race
      throw err;
    }
    if (holder !== '') this.log.info({ event: 'leader-lease-taken-over', previousHolder: holder }, 'took over an expired lease');
    return true;
  }

  private expired(renewTime: Date | string | undefined, durationSeconds: number | undefined): boolean {
    if (renewTime === undefined) return true;
    const renewed = new Date(renewTime).getTime();
    if (Number.isNaN(renewed)) return true;
    return renewed + (durationSeconds ?? this.leaseSeconds) * 1000 < this.clock().getTime();
  }

  private stepDown(why: string): void {
    const leading = this.leading;
    if (!leading) return;
    this.leading = null;
    this.log.info({ event: 'leader-stopped', reason: why }, 'stopped leading');
    leading.abort();
    this.opts.onStoppedLeading?.();
  }

  /** Clears the holder if it is still us (compare-and-swap), so a follower need not wait for expiry. */
  private async release(): Promise<void> {
    const { namespace, name, identity } = this.opts;
    try {
      const lease = await this.api.readNamespacedLease({ namespace, name });
      const spec = (lease.spec ??= {});
      if (spec.holderIdentity !== identity) return;
      delete spec.holderIdentity;
      spec.renewTime = this.microNow();
      await this.api.replaceNamespacedLease({ namespace, name, body: lease });
      this.log.info({ event: 'leader-released' }, 'released the lease');
    } catch (err) {
      if (apiStatusCode(err) === 404) return;
      // The lease then expires after its duration; a follower takes over then.
      this.log.warn({ event: 'leader-release-failed', err: (err as Error).message }, 'could not release the lease');
    }
  }

  private clock(): Date {
    return this.opts.now?.() ?? new Date();
  }

  /** MicroTime: client-node writes it with six fractional digits, as the apiserver requires. */
  private microNow(): V1MicroTime {
    return new V1MicroTime(this.clock().getTime());
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
