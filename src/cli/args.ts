// Shared argument handling for subcommands that take a manifest directory.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { z } from 'zod';
import { renderChecked, type RenderedConfig } from '../pipeline/render.ts';
import { formatManifestError, loadManifestDir, ManifestLoadError } from '../providers/file/load.ts';
import { RegexChecker } from '../varnish/regex-check.ts';
import { dirCommandFlags, flagErrors } from '../util/flags.ts';

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

/** The --path-normalization option shared by serve, check and vcl. */
export const PATH_NORMALIZATION_OPTION = { 'path-normalization': { type: 'string', default: 'on' } } as const;

/** Flag values -> typed settings, or a UsageError naming each bad flag. */
export function checkFlags<S extends z.ZodType>(schema: S, values: unknown): z.output<S> {
  const parsed = schema.safeParse(values);
  if (!parsed.success) throw new UsageError(flagErrors(parsed.error));
  return parsed.data;
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
  let pathNormalization: 'On' | 'Off';
  try {
    const parsed = parseDirArgs(argv, { address: { type: 'string', default: '127.0.0.1' }, ...PATH_NORMALIZATION_OPTION });
    dir = parsed.dir;
    const flags = checkFlags(dirCommandFlags, parsed.values);
    address = flags.address;
    pathNormalization = flags['path-normalization'];
  } catch (err) {
    return reportUsage(err);
  }
  try {
    const { snapshot, warnings } = await loadManifestDir(dir);
    for (const w of warnings) process.stderr.write(`warning: ${formatManifestError(w)}\n`);
    // Regexes are compiled by PCRE2 (varnishd -C) as serve would; without varnishd, the
    // tokenizer's verdict stands and check says so.
    const config = await renderChecked(snapshot, { defaultAddress: address, pathNormalization }, new RegexChecker());
    if (config.regexCheckUnavailable) process.stderr.write(`warning: regexes checked without PCRE2: ${config.regexCheckUnavailable}\n`);
    return config;
  } catch (err) {
    if (err instanceof ManifestLoadError) {
      process.stderr.write(`${err.message}\n`);
      return 2;
    }
    throw err;
  }
}
