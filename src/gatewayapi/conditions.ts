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

/**
 * The conditions to write: each keeps the lastTransitionTime of the previous condition of its
 * type when that one had the same status, reason and message, and gets `now` otherwise.
 * Kubernetes moves the time only on a status change; a changed reason or message counts as a
 * transition too, so the time says when the current explanation became true. A new
 * observedGeneration alone is not a transition: the same verdict on a newer spec.
 */
export function mergeConditions(previous: readonly Condition[] | undefined, next: readonly Condition[], now: string): Condition[] {
  return next.map((c) => {
    const before = previous?.find((p) => p.type === c.type);
    const unchanged = before !== undefined && before.status === c.status && before.reason === c.reason && before.message === c.message;
    return { ...c, lastTransitionTime: unchanged && before.lastTransitionTime !== undefined ? before.lastTransitionTime : now };
  });
}
