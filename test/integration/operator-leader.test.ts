// Leader election on a Lease against the Kubernetes API test server: one of two electors leads,
// release hands over at once, a leader that stops renewing is replaced after the lease expires,
// and a leader whose renewal conflicts steps down. Tests wait for conditions, never for time.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { startKubeApiServer, type KubeApiServer } from '../support/kube-api-server.ts';
import { LeaderElector } from '../../src/operator/leader.ts';
import { eventually } from './support/poll.ts';

const logger = pino({ level: 'silent' });
const T = { timeout: 30_000 };

let server: KubeApiServer;
before(async () => {
  server = await startKubeApiServer({ bookmarkIntervalMs: 0 });
});
after(() => server.close());

interface Candidate {
  elector: LeaderElector;
  started: number;
  stopped: number;
  signal?: AbortSignal;
}

function candidate(lease: string, identity: string): Candidate {
  const c: Candidate = { started: 0, stopped: 0 } as Candidate;
  c.elector = new LeaderElector({
    kubeConfig: server.kubeConfig(),
    namespace: 'vgw-system',
    name: lease,
    identity,
    logger,
    leaseDurationMs: 2000,
    renewDeadlineMs: 1000,
    retryPeriodMs: 200,
    onStartedLeading: (signal) => {
      c.started++;
      c.signal = signal;
    },
    onStoppedLeading: () => c.stopped++,
  });
  c.elector.start();
  return c;
}

function holder(lease: string): string | undefined {
  const obj = server.get({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', namespace: 'vgw-system', name: lease });
  return (obj?.spec as { holderIdentity?: string } | undefined)?.holderIdentity;
}

async function oneLeader(a: Candidate, b: Candidate): Promise<[Candidate, Candidate]> {
  await eventually('one elector leads', () => a.elector.isLeader() || b.elector.isLeader());
  const [leader, follower] = a.elector.isLeader() ? [a, b] : [b, a];
  return [leader, follower];
}

test('of two electors one leads; releasing on stop hands over to the other', T, async () => {
  const a = candidate('release', 'pod-a');
  const b = candidate('release', 'pod-b');
  const [leader, follower] = await oneLeader(a, b);
  // A few renewal rounds later, still exactly one leader and the lease names it.
  await eventually('the leader renewed', () => server.countRequests({ verb: 'update', resource: 'leases', name: 'release' }) >= 3);
  assert.equal(follower.elector.isLeader(), false);
  assert.equal(leader.started, 1);
  const leaderId = holder('release');
  assert.ok(leaderId === 'pod-a' || leaderId === 'pod-b');

  await leader.elector.stop();
  assert.equal(leader.stopped, 1);
  assert.equal(leader.signal?.aborted, true, 'the leading signal aborts');
  assert.notEqual(holder('release'), leaderId, 'released');
  await eventually('the follower leads', () => follower.elector.isLeader());
  assert.notEqual(holder('release'), leaderId);
  const spec = server.get({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', namespace: 'vgw-system', name: 'release' })!.spec as { renewTime: string; leaseDurationSeconds: number };
  assert.match(spec.renewTime, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/, 'MicroTime with six fractional digits');
  assert.equal(spec.leaseDurationSeconds, 2);
  await follower.elector.stop();
});

test('a leader that stops renewing without release is replaced after the lease expires', T, async () => {
  const a = candidate('expiry', 'pod-a');
  const b = candidate('expiry', 'pod-b');
  const [leader, follower] = await oneLeader(a, b);
  const leaderId = holder('expiry');
  await leader.elector.stop({ release: false });
  assert.equal(holder('expiry'), leaderId, 'not released: the lease still names the old leader');
  await eventually('the follower takes over the expired lease', () => follower.elector.isLeader());
  assert.notEqual(holder('expiry'), leaderId);
  const transitions = (server.get({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', namespace: 'vgw-system', name: 'expiry' })!.spec as { leaseTransitions: number }).leaseTransitions;
  assert.equal(transitions, 1);
  await follower.elector.stop();
});

test('a 409 on renewal makes the leader step down; the lease is then won again', T, async () => {
  const a = candidate('conflict', 'pod-a');
  await eventually('a leads', () => a.elector.isLeader());
  const signal = a.signal!;
  server.failNext({ verb: 'update', resource: 'leases', name: 'conflict', code: 409, reason: 'Conflict' });
  await eventually('a stepped down', () => a.stopped === 1);
  assert.equal(signal.aborted, true);
  // Nobody else holds the lease (it still names a, the sole candidate): it leads again.
  await eventually('a leads again', () => a.elector.isLeader() && a.started === 2);
  await a.elector.stop();
  assert.equal(holder('conflict'), undefined, 'released');
});
