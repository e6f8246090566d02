// Status condition builders. Every condition carries the object's generation so readers can
// tell whether the status describes the spec they see.
import type { Condition } from './types.ts';

export function condition(
  type: string,
  ok: boolean,
  reason: string,
  message: string,
  generation: number,
): Condition {
  return { type, status: ok ? 'True' : 'False', reason, message, observedGeneration: generation };
}

/** Programmed: True when the object is live in the data plane, else False/Invalid with why. */
export function programmed(ok: boolean, what: string, whyNot: string, generation: number): Condition {
  return condition('Programmed', ok, ok ? 'Programmed' : 'Invalid', ok ? `${what} is programmed` : whyNot, generation);
}

/** Kubernetes status stamped with one clock reading per translation, so output is stable within a run. */
export function withTransitionTime(conditions: Condition[], time: string): Condition[] {
  return conditions.map((c) => ({ ...c, lastTransitionTime: time }));
}
