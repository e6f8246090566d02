// upstream BackendTLSPolicy's last subtest: a change to the ConfigMap a policy names as its CA is
// reconciled. The policy is pointed at a CA ConfigMap that does not exist yet, which is then
// created, emptied and filled again; after each change the policy's ancestor conditions must
// follow (NoValidCACertificate/InvalidCACertificateRef while there is no usable CA). No request
// is sent. The policy is restored at the end, as upstream does.
import type { Condition, TrafficTest } from './data.ts';
import type { Stage, StageRow } from './stage.ts';
import { objectKey, type K8sObject, type World } from './world.ts';

interface ReconcileSpec {
  policy: string;
  ancestor: string;
}

const VALID: Condition[] = [
  { type: 'Accepted', status: 'True', reason: 'Accepted' },
  { type: 'ResolvedRefs', status: 'True', reason: 'ResolvedRefs' },
];
const NO_CA: Condition[] = [
  { type: 'Accepted', status: 'False', reason: 'NoValidCACertificate' },
  { type: 'ResolvedRefs', status: 'False', reason: 'InvalidCACertificateRef' },
];
const SOURCE_CA = 'tls-checks-ca-certificate';
const RECONCILE_CA = 'tls-checks-ca-certificate-reconcile-test';

export function reconcileSpec(test: TrafficTest): ReconcileSpec {
  const p: Record<string, unknown> = test.procedural ?? {};
  if (typeof p.policy !== 'string' || typeof p.ancestor !== 'string') throw new Error(`${test.name}: configMapReconcile needs "policy" and "ancestor"`);
  return { policy: p.policy, ancestor: p.ancestor };
}

/** Runs the steps; one row per step, stopping at the first that does not hold. */
export async function configMapReconcile(spec: ReconcileSpec, world: World, stage: Stage, opts: { timeoutMs: number; intervalMs?: number }): Promise<StageRow[]> {
  const [ns, name] = spec.policy.split('/');
  const policyKey = `BackendTLSPolicy/${ns}/${name}`;
  const policy = world.objects.find((o) => objectKey(o) === policyKey);
  const source = world.objects.find((o) => objectKey(o) === `ConfigMap/${ns}/${SOURCE_CA}`);
  if (!policy || !source) return [{ kind: 'setup', name: 'configMapReconcile', ok: false, attempts: 1, detail: `${policy ? `ConfigMap ${ns}/${SOURCE_CA}` : policyKey} is not in the manifests` }];
  const caPem = String((source as { data?: Record<string, string> }).data?.['ca.crt'] ?? '');
  const original = structuredClone(policy.spec.validation.caCertificateRefs);

  const rows: StageRow[] = [];
  let generation = typeof policy.metadata.generation === 'number' ? policy.metadata.generation : 1;
  const putPolicy = async (refs: unknown) => {
    const next: K8sObject = structuredClone(policy);
    next.spec.validation.caCertificateRefs = refs;
    next.metadata.generation = ++generation;
    await stage.put(next);
  };
  const putCa = (pem: string) => stage.put({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: RECONCILE_CA, namespace: ns }, data: { 'ca.crt': pem } });
  const steps: [string, () => Promise<unknown>, Condition[]][] = [
    ['as applied', async () => undefined, VALID],
    [`policy names ConfigMap ${RECONCILE_CA}, which does not exist`, () => putPolicy([{ group: '', kind: 'ConfigMap', name: RECONCILE_CA }]), NO_CA],
    [`ConfigMap ${RECONCILE_CA} created with the CA`, () => putCa(caPem), VALID],
    [`ConfigMap ${RECONCILE_CA} ca.crt emptied`, () => putCa(''), NO_CA],
    [`ConfigMap ${RECONCILE_CA} ca.crt restored`, () => putCa(caPem), VALID],
  ];
  try {
    for (const [label, change, expect] of steps) {
      await change();
      const row = await untilHolds(label, () => stage.status(expect.map((condition) => ({ check: 'BackendTLSPolicyCondition', policy: spec.policy, ancestor: spec.ancestor, condition })), world, `reconcile: ${label}: `), opts);
      rows.push(row);
      if (!row.ok) break;
    }
  } finally {
    await putPolicy(original);
  }
  return rows;
}

async function untilHolds(label: string, evaluate: () => Promise<StageRow[]>, opts: { timeoutMs: number; intervalMs?: number }): Promise<StageRow> {
  const deadline = Date.now() + opts.timeoutMs;
  let attempts = 0;
  for (;;) {
    const rows = await evaluate();
    attempts++;
    const failed = rows.find((r) => !r.ok);
    if (!failed) return { kind: 'status', name: `reconcile: ${label}`, ok: true, attempts };
    if (Date.now() >= deadline) return { kind: 'status', name: `reconcile: ${label}`, ok: false, attempts, detail: failed.detail ?? failed.name };
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 500));
  }
}
