// Shared argument handling for subcommands that take a manifest directory.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { render, type RenderedConfig } from '../pipeline/render.ts';
import { loadManifestDir, ManifestLoadError } from '../providers/file/load.ts';

export class UsageError extends Error {
  override name = 'UsageError';
}

export function parseDirArgs<T extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: T) {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (parsed.positionals.length !== 1) throw new UsageError('expected exactly one manifest directory');
  return { dir: parsed.positionals[0], values: parsed.values };
}

export function reportUsage(err: unknown): number {
  if (err instanceof UsageError) {
    process.stderr.write(`vgw: ${err.message}\n`);
    return 2;
  }
  throw err;
}

/**
 * `vgw check DIR` and `vgw vcl DIR`: parse `DIR [--address A]` and render the directory once.
 * Returns an exit code instead when the arguments or the manifests are unusable.
 */
export async function renderDirCommand(argv: string[]): Promise<RenderedConfig | number> {
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
    return render(snapshot, { defaultAddress: address });
  } catch (err) {
    if (err instanceof ManifestLoadError) {
      process.stderr.write(`${err.message}\n`);
      return 2;
    }
    throw err;
  }
}
