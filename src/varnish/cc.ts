/**
 * Choice of varnishd's `cc_command`.
 *
 * VCL compile time is dominated by the C compiler: gcc -O2 (varnishd's default)
 * is superlinear in function size, while tcc compiles the generated C one to
 * two orders of magnitude faster and the result serves requests just as fast.
 * tcc needs no extra flags: VCC output declares everything it uses, and the
 * shared object resolves varnishd's and libc's symbols when it is loaded.
 *
 * The probe is the real thing: varnishd starts with the preferred command,
 * and when its output says "Running C-compiler failed" the fallback is used
 * instead (for the boot VCL or a later reload). A separate probe compile
 * (`varnishd -C` + cc) was measured at ~0.4 s, most of it varnishd's own
 * start-up, which every process starting varnishd would pay.
 */
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { delimiter, join } from 'node:path';

export const TCC_COMMAND = 'exec tcc -shared -o %o %s';
export const GCC_COMMAND = 'exec gcc -O0 -std=gnu99 -pthread -fpic -shared -Wl,-x -o %o %s';

export type CcKind = 'tcc' | 'gcc' | 'custom';

export interface CcChoice {
  kind: CcKind;
  command: string;
  /** Why the preferred command is not the one in use, when it is not. */
  fallbackReason?: string;
}

/** Commands whose compile failed in this process: later varnishd instances skip them. */
const failed = new Map<string, string>();

export function ccKind(command: string): CcKind {
  if (command === TCC_COMMAND) return 'tcc';
  if (command === GCC_COMMAND) return 'gcc';
  return 'custom';
}

/** True when varnishd's reply or output reports a failing C compiler (not a VCC error). */
export function isCcFailure(output: string): boolean {
  return output.includes('Running C-compiler failed');
}

export function recordCcFailure(command: string, reason: string): void {
  failed.set(command, reason);
}

/** The preferred command unless it is known not to work; then the fallback, if any. */
export async function initialCcChoice(preferred: string, fallback: string | null): Promise<CcChoice> {
  let reason = failed.get(preferred);
  if (!reason && preferred === TCC_COMMAND && !(await onPath('tcc'))) reason = 'tcc not found in PATH';
  if (!reason || fallback === null) return { kind: ccKind(preferred), command: preferred };
  return { kind: ccKind(fallback), command: fallback, fallbackReason: reason };
}

async function onPath(exe: string): Promise<boolean> {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    try {
      await access(join(dir, exe), constants.X_OK);
      return true;
    } catch {
      /* keep looking */
    }
  }
  return false;
}
