// File-system helpers the standard library gets wrong for us.
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * mkdir -p without Node's recursive mode, which never returns for paths under /proc: create
 * the parents, then the directory itself, so an impossible path fails with its error.
 */
export async function makeDir(path: string): Promise<void> {
  try {
    await mkdir(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return;
    if (code !== 'ENOENT' || dirname(path) === path) throw err;
    await makeDir(dirname(path));
    await mkdir(path).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'EEXIST') throw e;
    });
  }
}
