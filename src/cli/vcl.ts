// vgw vcl DIR: the generated VCL, for reading and debugging.
import { render } from '../pipeline/render.ts';
import { shardLabel } from '../vcl/shards.ts';
import { loadManifestDir, ManifestLoadError } from '../providers/file/load.ts';
import { parseDirArgs, reportUsage } from './args.ts';

export async function runVcl(argv: string[]): Promise<number> {
  let dir: string;
  let address: string;
  try {
    const parsed = parseDirArgs(argv, { address: { type: 'string', default: '127.0.0.1' } });
    dir = parsed.dir;
    address = parsed.values.address as string;
  } catch (err) {
    return reportUsage(err);
  }
  try {
    const { snapshot } = await loadManifestDir(dir);
    const { deploy } = render(snapshot, { defaultAddress: address });
    process.stdout.write(deploy.main);
    deploy.shards.forEach((shard, i) => process.stdout.write(`\n# ---- shard VCL ${i} (label ${shardLabel(deploy.shards.length, i)}) ----\n${shard}`));
    return 0;
  } catch (err) {
    if (err instanceof ManifestLoadError) {
      process.stderr.write(`${err.message}\n`);
      return 2;
    }
    throw err;
  }
}
