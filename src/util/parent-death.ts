// Child processes must not outlive the control plane: on Linux `setpriv --pdeathsig` makes the
// kernel send them SIGTERM when the process that started them ends, however it ends.
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

function findOnPath(name: string): string | null {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(delimiter)) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      /* next */
    }
  }
  return null;
}

const SETPRIV = findOnPath('setpriv');

/**
 * The command line that runs `command` with SIGTERM as its parent-death signal, or the command
 * as is when setpriv is missing (the watchdog and the pid files still apply).
 */
export function withParentDeathSignal(command: string, args: readonly string[]): { command: string; args: string[] } {
  if (!SETPRIV) return { command, args: [...args] };
  return { command: SETPRIV, args: ['--pdeathsig', 'SIGTERM', '--', command, ...args] };
}
