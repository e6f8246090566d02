// Shared argument parsing for subcommands that take a manifest directory.
import { parseArgs, type ParseArgsConfig } from 'node:util';

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
