// vgw check DIR: the status a controller would write, computed offline.
import { stringify } from 'yaml';
import { allAccepted, render } from '../pipeline/render.ts';
import { loadManifestDir, ManifestLoadError } from '../providers/file/load.ts';
import { parseDirArgs, reportUsage } from './args.ts';

export async function runCheck(argv: string[]): Promise<number> {
  let dir: string;
  let address: string;
  try {
    const parsed = parseDirArgs(argv, { address: { type: 'string', default: '127.0.0.1' } });
    dir = parsed.dir;
    address = parsed.values.address as string;
  } catch (err) {
    return reportUsage(err);
  }
  let loaded;
  try {
    loaded = await loadManifestDir(dir);
  } catch (err) {
    if (err instanceof ManifestLoadError) {
      process.stderr.write(`${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const config = render(loaded.snapshot, { defaultAddress: address });
  process.stdout.write(config.statuses.map((s) => stringify(s, { lineWidth: 0 })).join('---\n'));
  for (const p of config.problems) process.stderr.write(`not accepted: ${p}\n`);
  return allAccepted(config.statuses) ? 0 : 1;
}
