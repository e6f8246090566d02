// vgw check DIR: the status a controller would write, computed offline.
import { stringify } from 'yaml';
import { formatProblem } from '../gatewayapi/translator.ts';
import { allAccepted } from '../pipeline/render.ts';
import { renderDirCommand } from './args.ts';

export async function runCheck(argv: string[]): Promise<number> {
  const config = await renderDirCommand(argv);
  if (typeof config === 'number') return config;
  process.stdout.write(config.statuses.map((s) => stringify(s, { lineWidth: 0 })).join('---\n'));
  for (const p of config.problems) process.stderr.write(`not accepted: ${formatProblem(p)}\n`);
  // A problem without a status (an object rejected before it could be attributed to a
  // Gateway, an unsupported GatewayClass) is still a reason to fail.
  return allAccepted(config.statuses) && config.problems.length === 0 ? 0 : 1;
}
