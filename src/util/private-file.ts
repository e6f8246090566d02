// Files only their owner can read (key material, configurations naming it).
import { chmod, rename, rm, writeFile } from 'node:fs/promises';

/** Writes `path` with mode 0600, replacing the old file atomically (a daemon may be reading it). */
export async function writePrivateFile(path: string, data: Buffer): Promise<void> {
  const tmp = `${path}.tmp`;
  await rm(tmp, { force: true });
  await writeFile(tmp, data, { mode: 0o600, flag: 'wx' });
  await chmod(tmp, 0o600);
  await rename(tmp, path);
}
