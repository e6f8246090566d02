// V8 heap settings for the long-running commands (serve, chaperone, operator).
//
// With V8's defaults a control plane at 5 000 routes held about 290 MiB after loading and grew
// to about 500 MiB over 40 route changes, with a live heap of about 80 MiB: the young
// generation grows to two 64-MiB semi-spaces, and the old generation is collected only once it
// has grown to up to four times what survived the last full collection, so each change's
// garbage piles up first (bench/scale-analysis.md, "Memory"). Two settings bound that:
//   - a young generation of at most 2 x 16 MiB (`--max-semi-space-size`): a start-up flag only,
//     so the process replaces itself once with the flag added (process.execve, same PID);
//   - a fixed old-generation growth of 75 % over the live size (`--heap-growing-percent`),
//     which V8 reads at every collection and so can be set at run time.
// Measured: about 240 MiB after loading and +9-16 % over the changes, with the CPU per change
// inside the run-to-run spread (smaller settings cost CPU on every change). A flag given on the
// command line or in NODE_OPTIONS is left as it is.
import { setFlagsFromString } from 'node:v8';

export const LONG_RUNNING_COMMANDS: ReadonlySet<string> = new Set(['serve', 'chaperone', 'operator']);
export const SEMI_SPACE_FLAG = '--max-semi-space-size=16';
export const HEAP_GROWING_FLAG = '--heap-growing-percent=75';

const flagName = (flag: string) => flag.split('=')[0];
const mentions = (args: readonly string[], flag: string) => args.some((a) => a === flagName(flag) || a.startsWith(`${flagName(flag)}=`));

/**
 * The Node arguments to start `command` again with, or null when this process already runs
 * with them (or the command is a short one). `execArgv` and `nodeOptions` are what this
 * process was started with.
 */
export function restartArgs(command: string | undefined, execArgv: readonly string[], nodeOptions: string | undefined): string[] | null {
  if (command === undefined || !LONG_RUNNING_COMMANDS.has(command)) return null;
  const given = [...execArgv, ...(nodeOptions ?? '').split(/\s+/).filter(Boolean)];
  if (mentions(given, SEMI_SPACE_FLAG)) return null;
  return [SEMI_SPACE_FLAG, ...execArgv];
}

/** Flags this process sets on V8 itself at run time. */
export function runtimeFlags(command: string | undefined, execArgv: readonly string[]): string[] {
  if (command === undefined || !LONG_RUNNING_COMMANDS.has(command)) return [];
  return mentions(execArgv, HEAP_GROWING_FLAG) ? [] : [HEAP_GROWING_FLAG];
}

/**
 * Applies both settings; does not return when the process replaces itself. Without
 * process.execve (older Node) the process runs on with V8's default young generation.
 */
export function tuneHeap(command: string | undefined): void {
  const args = restartArgs(command, process.execArgv, process.env.NODE_OPTIONS);
  if (args && typeof process.execve === 'function') {
    process.execve(process.execPath, [process.execPath, ...args, ...process.argv.slice(1)], process.env);
  }
  for (const flag of runtimeFlags(command, process.execArgv)) setFlagsFromString(flag);
}
