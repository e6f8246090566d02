// Which tests of cases.json the harness runs, and why the others are skipped. Kept apart from the
// runner so `run.ts --list` and the docs describe exactly what a run would do.
import { SUPPORTED_FEATURES } from '../../src/gatewayapi/features.ts';
import type { CasesFile, StatusOnlyTest, TrafficCase, TrafficTest } from './data.ts';
import { statusOnlyExpectations, type StatusOnlyExpectations } from './status-only.ts';

/** Procedural blocks the runner knows how to execute. */
export const IMPLEMENTED_PROCEDURES: readonly string[] = ['weightedDistribution', 'perBackendHeaderConsistency', 'patchEndpointSlices', 'websocketEcho', 'mirrorPercentage', 'configMapReconcile'];
/** Request protocols the harness client speaks (absent = plain HTTP/1.1). */
export const IMPLEMENTED_PROTOCOLS: readonly string[] = ['H2C_PRIOR_KNOWLEDGE', 'HTTPS', 'H2'];

/** `note` on a test that runs says what of it is left out, and why. */
export type Decision = { run: true; note?: string } | { run: false; reason: string };

export interface PlannedTest {
  name: string;
  kind: 'traffic' | 'status-only';
  decision: Decision;
}

export function missingFeatures(features: readonly string[], supported: readonly string[] = SUPPORTED_FEATURES): string[] {
  return features.filter((f) => !supported.includes(f));
}

export function needsTls(c: TrafficCase, test: TrafficTest): boolean {
  return c.tls !== undefined || (c.gateway ?? test.gateway).scheme === 'https' || c.request.protocol === 'HTTPS' || c.request.protocol === 'H2';
}

export function planTrafficTest(test: TrafficTest, supported: readonly string[] = SUPPORTED_FEATURES): Decision {
  const missing = missingFeatures(test.features, supported);
  if (missing.length) return { run: false, reason: `unsupported feature(s): ${missing.join(', ')}` };

  const untrusted = test.cases.filter((c) => needsTls(c, test) && !c.tls);
  if (untrusted.length) return { run: false, reason: `${untrusted.length} TLS case(s) name no server name and trusted certificate` };

  const protocols = new Set(test.cases.map((c) => c.request.protocol).filter((p): p is string => p !== undefined && !IMPLEMENTED_PROTOCOLS.includes(p)));
  if (protocols.size) return { run: false, reason: `request protocol(s) not implemented: ${[...protocols].join(', ')}` };

  if (test.procedural && !IMPLEMENTED_PROCEDURES.includes(test.procedural.type)) {
    return { run: false, reason: `procedural part "${test.procedural.type}" is not implemented by the harness` };
  }
  for (const p of test.phases ?? []) {
    if (p.action && !p.action.delete) return { run: false, reason: `phase ${p.phase} action ${Object.keys(p.action).join(', ')} is not implemented` };
  }
  if (test.cases.length === 0 && !test.procedural) return { run: false, reason: 'no cases transcribed' };
  return { run: true };
}

export function planStatusOnlyTest(
  test: StatusOnlyTest,
  supported: readonly string[] = SUPPORTED_FEATURES,
  expectations: StatusOnlyExpectations | undefined = statusOnlyExpectations(test),
): Decision {
  const missing = missingFeatures(test.features, supported);
  if (missing.length) return { run: false, reason: `unsupported feature(s): ${missing.join(', ')}` };
  // Every status-only test has expectations in status-only.ts; this only guards a newer cases.json.
  if (!expectations?.phases.some((p) => p.checks.length)) return { run: false, reason: 'no structured expectations (add them to test/conformance/status-only.ts)' };
  return { run: true };
}

export function planAll(cases: CasesFile, supported: readonly string[] = SUPPORTED_FEATURES): PlannedTest[] {
  return [
    ...cases.trafficTests.map((t) => ({ name: t.name, kind: 'traffic' as const, decision: planTrafficTest(t, supported) })),
    ...cases.statusOnlyTests.map((t) => ({ name: t.name, kind: 'status-only' as const, decision: planStatusOnlyTest(t, supported, statusOnlyExpectations(t)) })),
  ];
}
