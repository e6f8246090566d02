// vgw vcl DIR: the generated VCL, for reading and debugging.
import { shardLabel } from '../vcl/shards.ts';
import { renderDirCommand } from './args.ts';

export async function runVcl(argv: string[]): Promise<number> {
  const config = await renderDirCommand(argv);
  if (typeof config === 'number') return config;
  const { deploy } = config;
  process.stdout.write(deploy.main);
  deploy.shards.forEach((shard, i) => process.stdout.write(`\n# ---- shard VCL ${i} (label ${shardLabel(deploy.shards.length, i)}) ----\n${shard}`));
  return 0;
}
