// Reads a directory of Kubernetes manifests into a ResourceSnapshot.
//
// Every object of a kind we read is parsed by its schema (src/gatewayapi/schema/). An object
// that fails is rejected alone: it is left out of the snapshot and listed in
// `snapshot.rejected` with file, line, kind, name and field, and the translator reports it (a
// problem, and status where the object can still be attributed). A file that cannot be read or
// parsed at all (YAML syntax, size, encoding) makes a one-shot load fail; a long-running loader
// (keepLastGood) keeps that file at its last good content instead, since dropping it would
// silently drop its routes and failing the whole load would hold back every other file.
import { lstat, open, readdir, realpath, stat } from 'node:fs/promises';
import { closeSync, fstatSync, openSync, readSync, type Stats } from 'node:fs';
import { setImmediate as yieldToEvents } from 'node:timers/promises';
import { join, relative, sep } from 'node:path';
import { Composer, LineCounter, Parser, type Document } from 'yaml';
import { MANIFEST_KINDS, validateManifestObject, withoutNulls } from '../../gatewayapi/schema/index.ts';
import { emptySnapshot, type RejectedObject, type ResourceSnapshot } from '../../gatewayapi/types.ts';
import { formatBytes, MANIFEST_LIMITS, type ManifestLimits } from './limits.ts';
import { PARSE_AHEAD_MIN_FILES, parseWorkerCount, startParsePool } from './parallel-parse.ts';

export const MANIFEST_EXTENSIONS = ['.yaml', '.yml', '.json'];

export interface ManifestError {
  file: string;
  line?: number;
  column?: number;
  message: string;
}

export class ManifestLoadError extends Error {
  readonly errors: ManifestError[];
  constructor(errors: ManifestError[]) {
    super(errors.map(formatManifestError).join('\n'));
    this.name = 'ManifestLoadError';
    this.errors = errors;
  }
}

export function formatManifestError(e: ManifestError): string {
  const at = e.line === undefined ? e.file : `${e.file}:${e.line}${e.column ? `:${e.column}` : ''}`;
  return `${at}: ${e.message}`;
}

function isManifestName(name: string): boolean {
  return !name.startsWith('.') && MANIFEST_EXTENSIONS.some((ext) => name.endsWith(ext));
}

/**
 * The manifest files under `dir`, sorted. A symlink is followed when it resolves to a regular
 * file inside `dir` (a ConfigMap volume is made of such links); any other symlink is skipped
 * with a warning naming it, as is a symlinked directory (never descended, so no loops).
 */
export async function listManifestFiles(dir: string, warnings: ManifestError[] = []): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  const files: string[] = [];
  let root: string | undefined;
  for (const e of entries) {
    // Dotfiles and everything below a dot-directory are skipped: editor files, .git, and the
    // timestamped directories of a ConfigMap volume (read through the links beside them).
    if (e.name.startsWith('.') || relative(dir, e.parentPath).split(sep).some((part) => part.startsWith('.'))) continue;
    if (e.isFile()) {
      if (isManifestName(e.name)) files.push(join(e.parentPath, e.name));
      continue;
    }
    if (!e.isSymbolicLink()) continue;
    const path = join(e.parentPath, e.name);
    const target = await symlinkTarget(path, (root ??= await realpath(dir)));
    if (target === 'file') {
      if (isManifestName(e.name)) files.push(path);
    } else if (target !== 'gone' && (isManifestName(e.name) || target === 'directory')) {
      warnings.push({ file: displayPath(path), message: `symlink skipped: ${target === 'directory' ? 'it points to a directory (not followed)' : target}` });
    }
  }
  return files.sort();
}

async function symlinkTarget(path: string, root: string): Promise<'file' | 'gone' | 'directory' | string> {
  let real: string;
  try {
    real = await realpath(path);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'it points to nothing' : `cannot resolve it: ${(err as Error).message}`;
  }
  if (real !== root && !real.startsWith(root + sep)) return 'it points outside the manifest directory';
  const info = await stat(real).catch(() => null);
  if (!info) return 'gone';
  if (info.isDirectory()) return 'directory';
  return info.isFile() ? 'file' : 'it does not point to a regular file';
}

export interface LoadedManifests {
  snapshot: ResourceSnapshot;
  files: string[];
  /** Things skipped but worth knowing (symlinks not followed, FQDN EndpointSlices). */
  warnings: ManifestError[];
  /** Same files with the same content as the last load, which succeeded too. */
  unchanged: boolean;
  /**
   * With `keepLastGood`: files that could not be read or parsed, and objects defined twice.
   * Such a file contributes what it held at its last good parse (nothing if it never had
   * one); a duplicate is dropped and the first definition kept. Empty otherwise (they throw).
   */
  fileErrors: ManifestError[];
  /** Files read and parsed ahead of the load loop, over `workers` worker threads and this one. */
  parsedAhead?: { workers: number; files: number };
}

/** One-shot load, for commands that read the directory once. */
export function loadManifestDir(dir: string, limits?: Partial<ManifestLimits>): Promise<LoadedManifests> {
  return new ManifestLoader({ limits }).load(dir);
}

/** One object of a kind we read, valid against its schema. */
export interface ValidObject {
  field: keyof typeof FIELD_CHECK;
  object: unknown;
  id: string;
  /** Where it is defined (the file's display name), for the message about a duplicate. */
  file: string;
  line: number;
}

const FIELD_CHECK = {
  gatewayClasses: 1,
  gateways: 1,
  httpRoutes: 1,
  referenceGrants: 1,
  services: 1,
  endpointSlices: 1,
  namespaces: 1,
  secrets: 1,
  configMaps: 1,
  backendTLSPolicies: 1,
} satisfies Record<Exclude<keyof ResourceSnapshot, 'rejected'>, 1>;

export interface CachedFile {
  /** mtime, ctime, size and inode: a rewrite or an atomic rename changes at least one. */
  version: string;
  /** The name errors carry (displayPath), kept so that unchanged files are not named again per load. */
  display: string;
  size: number;
  /** Documents and List items read, whatever their kind (the object-count limit). */
  count: number;
  objects: ValidObject[];
  rejected: RejectedObject[];
  errors: ManifestError[];
  warnings: ManifestError[];
}

export interface ManifestLoaderOptions {
  limits?: Partial<ManifestLimits>;
  /**
   * A long-running reader (`vgw serve`): a file that cannot be read or parsed keeps its last
   * good content instead of failing the whole load, so one author's broken file never holds
   * back everybody else's changes. One-shot readers (`vgw check`) leave it off and fail.
   */
  keepLastGood?: boolean;
  /**
   * Files never parsed before (the first load) are read and parsed ahead of the load loop
   * when there are at least `minFiles` of them, on `workers` worker threads and this one;
   * defaults: PARSE_AHEAD_MIN_FILES and parseWorkerCount() (parallel-parse.ts).
   */
  parseAhead?: { workers?: number; minFiles?: number };
  /**
   * Called during a parse ahead, before the bulk of the files is parsed, with the objects
   * of the files whose text declares a GatewayClass or a Gateway: a guess at the listeners
   * the load will find, early enough to start a data plane on them meanwhile.
   */
  onGateways?: (partial: ResourceSnapshot) => void;
}

/**
 * Loads a directory repeatedly, re-parsing only files whose size or mtime changed: with
 * thousands of routes, YAML parsing, not routing, would otherwise dominate each reload.
 */
export class ManifestLoader {
  private cache = new Map<string, CachedFile>();
  /** Files of the last load that succeeded; null after a failed one. */
  private lastOk: string[] | null = null;
  /** The last listing, kept so that a load told which files changed need not list again. */
  private listing: { dir: string; files: string[]; warnings: number } | null = null;
  /** With keepLastGood: the last parse of each file that had no file-level error. */
  private lastGood = new Map<string, CachedFile>();
  private readonly keepLastGood: boolean;
  private readonly parseAheadOptions: { workers?: number; minFiles?: number };
  private readonly onGateways: ((partial: ResourceSnapshot) => void) | undefined;
  readonly limits: ManifestLimits;

  constructor(options: ManifestLoaderOptions = {}) {
    this.limits = { ...MANIFEST_LIMITS, ...options.limits };
    this.keepLastGood = options.keepLastGood ?? false;
    this.parseAheadOptions = options.parseAhead ?? {};
    this.onGateways = options.onGateways;
  }

  /**
   * `changed`: the files created, changed or removed since the last load, when the caller knows
   * them (a directory watch). Only those are looked at again; every other file is taken from
   * the last load without a stat. Without it, every file is listed and stat()ed.
   */
  async load(dir: string, changed?: Iterable<string>): Promise<LoadedManifests> {
    let files: string[];
    const warnings: ManifestError[] = [];
    const known = changed ? new Set(changed) : undefined;
    try {
      files = await this.listFiles(dir, warnings, known);
    } catch (err) {
      throw new ManifestLoadError([{ file: dir, message: `cannot read directory: ${(err as Error).message}` }]);
    }
    if (files.length > this.limits.maxFiles) {
      throw new ManifestLoadError([{ file: dir, message: `${files.length} manifest files, more than the limit of ${this.limits.maxFiles}` }]);
    }
    const snapshot = emptySnapshot();
    const rejected: RejectedObject[] = [];
    const errors: ManifestError[] = [];
    const seen = new Map<string, Where>();
    const next = new Map<string, CachedFile>();
    const nextGood = new Map<string, CachedFile>();
    const fileErrors: ManifestError[] = [];
    let totalBytes = 0;
    let totalObjects = 0;
    const lastOk = this.lastOk;
    this.lastOk = null;
    let reparsed = 0;
    // Files to look at again are stat()ed, and read when changed, a window ahead of the loop:
    // one at a time, thousands of files would wait on thousands of thread-pool round trips.
    const toCheck = files.filter((path) => known === undefined || known.has(path) || !this.cache.has(path));
    const ahead = new Map<string, ReadAhead>();
    // Many files never parsed (the first load): read and parsed ahead, on workers too when there
    // are thousands; the loop takes each result where it would have parsed the file, after
    // the same checks.
    const fresh = toCheck.filter((path) => !this.cache.has(path));
    let parsedAhead: LoadedManifests['parsedAhead'];
    if (fresh.length > 0 && fresh.length >= (this.parseAheadOptions.minFiles ?? PARSE_AHEAD_MIN_FILES)) {
      const workers = this.parseAheadOptions.workers ?? parseWorkerCount(fresh.length);
      const early = await this.parseAhead(fresh, workers);
      for (const [path, e] of early) ahead.set(path, e);
      parsedAhead = { workers, files: early.size };
    }
    let started = 0;
    let checked = 0;
    for (const path of files) {
      const cached = this.cache.get(path);
      const file = cached?.display ?? displayPath(path);
      let parsed: CachedFile | undefined;
      try {
        const unchanged = known !== undefined && !known.has(path) ? cached : undefined;
        if (!unchanged) {
          for (checked++; started < toCheck.length && started < checked + READ_AHEAD_FILES; started++) {
            if (!ahead.has(toCheck[started])) ahead.set(toCheck[started], this.readAhead(toCheck[started]));
          }
        }
        parsed = unchanged ?? (await this.parseFile(path, file, this.limits.maxTotalBytes - totalBytes, ahead.get(path)));
        ahead.delete(path);
        if (parsed !== cached) reparsed++;
      } catch (err) {
        const error = { file, message: (err as Error).message };
        if (!this.keepLastGood) {
          errors.push(error);
          continue;
        }
        fileErrors.push(error);
        parsed = this.lastGood.get(path);
        if (!parsed) continue;
        nextGood.set(path, parsed);
      }
      if (!parsed) continue;
      if (this.keepLastGood && parsed.errors.length) {
        // Cached as it is, so an unchanged broken file is not parsed again; served as it was.
        next.set(path, parsed);
        fileErrors.push(...parsed.errors);
        const good = this.lastGood.get(path);
        if (!good) continue;
        parsed = good;
      } else {
        next.set(path, parsed);
      }
      if (this.keepLastGood) nextGood.set(path, parsed);
      totalBytes += parsed.size;
      totalObjects += parsed.count;
      if (totalBytes > this.limits.maxTotalBytes) {
        throw new ManifestLoadError([{ file: dir, message: `manifest files total more than the limit of ${formatBytes(this.limits.maxTotalBytes)} (reached at ${file})` }]);
      }
      if (totalObjects > this.limits.maxObjects) {
        throw new ManifestLoadError([{ file: dir, message: `more than the limit of ${this.limits.maxObjects} objects (reached at ${file})` }]);
      }
      errors.push(...parsed.errors);
      warnings.push(...parsed.warnings);
      const duplicates = this.keepLastGood ? fileErrors : errors;
      // Unchanged files hand out the same objects as last time: snapshots are read-only
      // (the translator never mutates its input), and copying thousands of objects per
      // reload would cost more than the routing work itself.
      for (const o of parsed.objects) {
        if (claim(seen, o.id, o, duplicates)) ((snapshot[o.field] ??= []) as unknown[]).push(o.object);
      }
      for (const r of parsed.rejected) {
        if (r.name === undefined || claim(seen, rejectedId(r), r, duplicates)) rejected.push(r);
      }
    }
    this.cache = next;
    this.lastGood = nextGood;
    if (errors.length) throw new ManifestLoadError(errors);
    snapshot.rejected = rejected;
    this.lastOk = files;
    const unchanged = reparsed === 0 && lastOk !== null && lastOk.length === files.length && lastOk.every((f, i) => f === files[i]);
    return { snapshot, files, warnings, unchanged, fileErrors, ...(parsedAhead ? { parsedAhead } : {}) };
  }

  /** stat() now, and the bytes too when the file changed and is small (bounded memory ahead). */
  private readAhead(path: string): ReadAhead {
    const info = stat(path);
    const bytes = info.then((i) => {
      const cached = this.cache.get(path);
      if ((cached && cached.version === versionOf(i)) || i.size > READ_AHEAD_MAX_BYTES) return null;
      return readBounded(path, this.limits.maxFileBytes);
    });
    // Settled or not, these are awaited only if the loop reaches the file (a limit may stop it
    // first): never an unhandled rejection.
    info.catch(() => undefined);
    bytes.catch(() => undefined);
    return { info, bytes };
  }

  /**
   * Reads `paths` and parses them over `workers` worker threads and this one. Files that cannot
   * be stat()ed or read now, or are larger than a read-ahead, are left out: the load loop
   * handles them as it always does. At most maxTotalBytes are held.
   */
  private async parseAhead(paths: string[], workers: number): Promise<Map<string, ReadAhead>> {
    let pool;
    try {
      pool = startParsePool(workers);
    } catch {
      // No threads to be had (a resource limit): the loop parses everything, as on one core.
      return new Map();
    }
    try {
      const read: { path: string; info: Stats; bytes: Buffer }[] = [];
      let held = 0;
      // Read synchronously, in slices between which events are handled: thousands of small
      // files cost several times more through the thread pool (a round trip per call), and
      // the workers wait for these bytes.
      for (let i = 0; i < paths.length && held <= this.limits.maxTotalBytes; i += SYNC_READ_SLICE) {
        if (i > 0) await yieldToEvents();
        for (const path of paths.slice(i, i + SYNC_READ_SLICE)) {
          const r = readSmallFileSync(path, Math.min(READ_AHEAD_MAX_BYTES, this.limits.maxFileBytes));
          if (!r) continue;
          read.push({ path, ...r });
          held += r.bytes.length;
        }
      }
      if (this.onGateways) this.onGateways(gatewaysFirst(read.map((r) => ({ file: displayPath(r.path), bytes: r.bytes }))));
      const outcomes = await pool.parse(read.map((r) => ({ file: displayPath(r.path), bytes: r.bytes })));
      return new Map(read.map((r, i) => [r.path, { info: Promise.resolve(r.info), bytes: Promise.resolve(r.bytes), parsed: outcomes[i] }]));
    } finally {
      await pool.close();
    }
  }

  /**
   * The manifest files of `dir`: the last listing updated for the `changed` files when it can
   * be (each of them a regular file or gone), else a full listing.
   */
  private async listFiles(dir: string, warnings: ManifestError[], changed: Set<string> | undefined): Promise<string[]> {
    const last = this.listing;
    this.listing = null;
    // Symlinks skipped with a warning are re-judged by a full listing only.
    if (changed && last && last.dir === dir && last.warnings === 0) {
      // The last listing is sorted and never modified: a changed file that stays listed costs
      // nothing, one that comes or goes a copy with it put in or taken out (no sort of them all).
      let files = last.files;
      let exact = true;
      for (const path of changed) {
        const kind = await listedKind(dir, path);
        if (kind !== 'file' && kind !== 'absent') {
          exact = false;
          break;
        }
        const at = sortedIndex(files, path);
        const listed = files[at] === path;
        if (kind === 'file' && !listed) files = [...files.slice(0, at), path, ...files.slice(at)];
        else if (kind === 'absent' && listed) files = [...files.slice(0, at), ...files.slice(at + 1)];
      }
      if (exact) {
        this.listing = { dir, files, warnings: 0 };
        return files;
      }
    }
    const before = warnings.length;
    const files = await listManifestFiles(dir, warnings);
    this.listing = { dir, files, warnings: warnings.length - before };
    return files;
  }

  private async parseFile(path: string, file: string, budget: number, ahead?: ReadAhead): Promise<CachedFile | undefined> {
    let info;
    try {
      info = await (ahead?.info ?? stat(path));
    } catch (err) {
      // A file removed between listing and reading is simply gone.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    const cached = this.cache.get(path);
    const version = versionOf(info);
    if (cached && cached.version === version) return cached;
    if (info.size > this.limits.maxFileBytes) {
      throw new Error(`file is ${formatBytes(info.size)}, larger than the limit of ${formatBytes(this.limits.maxFileBytes)}; not read`);
    }
    if (info.size > budget) {
      throw new Error(`manifest files total more than the limit of ${formatBytes(this.limits.maxTotalBytes)}; not read`);
    }
    const early = ahead ? await ahead.bytes : null;
    const bytes = early === null ? await readBounded(path, this.limits.maxFileBytes) : early;
    if (bytes === undefined) return undefined;
    // Parsed already (in parallel, see parallel-parse.ts) from these very bytes.
    const parsed = early !== null && ahead?.parsed ? ahead.parsed : parseResult(bytes, file);
    if ('error' in parsed) throw new Error(parsed.error);
    return { version, display: file, ...parsed };
  }
}

/** Files read synchronously between two turns of the event loop (parseAhead). */
const SYNC_READ_SLICE = 256;

/**
 * A file's stat and bytes, or null when it cannot be read now or is larger than `max` (the
 * load loop then reads it as usual, and reports what is wrong with it).
 */
function readSmallFileSync(path: string, max: number): { info: Stats; bytes: Buffer } | null {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    const info = fstatSync(fd);
    if (!info.isFile() || info.size > max) return null;
    const bytes = Buffer.allocUnsafe(info.size);
    let got = 0;
    while (got < info.size) {
      const n = readSync(fd, bytes, got, info.size - got, got);
      if (n === 0) break;
      got += n;
    }
    // Changed while read: left to the loop.
    if (got !== info.size || readSync(fd, Buffer.allocUnsafe(1), 0, 1, got) !== 0) return null;
    return { info, bytes };
  } catch {
    return null;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** A top-level `kind: Gateway` or `kind: GatewayClass` (YAML or JSON). */
const GATEWAY_KIND = /^kind:\s*["']?Gateway(Class)?["']?\s*$|"kind"\s*:\s*"Gateway(Class)?"/m;

/** The objects of the files that look like they declare Gateways or GatewayClasses. */
function gatewaysFirst(files: readonly { file: string; bytes: Buffer }[]): ResourceSnapshot {
  const partial = emptySnapshot();
  for (const { file, bytes } of files) {
    if (bytes.indexOf('Gateway') < 0 || !GATEWAY_KIND.test(bytes.toString('latin1'))) continue;
    const parsed = parseResult(bytes, file);
    if ('error' in parsed) continue;
    for (const o of parsed.objects) ((partial[o.field] ??= []) as unknown[]).push(o.object);
  }
  return partial;
}

/** What one file's bytes hold: the part of reading a file that needs no I/O. */
export type ParsedFile = Omit<CachedFile, 'version' | 'display'>;

/**
 * Decodes and parses one file's bytes into its objects, those rejected by their schema, and
 * the file's errors; `error` when the file cannot be read at all. No I/O and no state, so
 * that worker threads can run it for the first load of a large directory.
 */
export function parseResult(bytes: Uint8Array, file: string): ParsedFile | { error: string } {
  let text: string;
  try {
    text = UTF8.decode(bytes);
  } catch {
    return { error: 'is not valid UTF-8; manifests must be UTF-8 text' };
  }
  const out: ParsedFile = { size: bytes.length, count: 0, objects: [], rejected: [], errors: [], warnings: [] };
  for (const item of parseManifestItems(text, file, out.errors)) {
    out.count++;
    readObject(item, file, out);
  }
  return out;
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** Files stat()ed (and read, if small and changed) ahead of the one being parsed. */
const READ_AHEAD_FILES = 32;
/** Larger files are read when their turn comes, so reading ahead holds at most 8 MiB. */
const READ_AHEAD_MAX_BYTES = 256 * 1024;

interface ReadAhead {
  info: Promise<Stats>;
  /** null: not read ahead (unchanged, or too large to hold early). */
  bytes: Promise<Buffer | undefined | null>;
  /** What parseResult() makes of `bytes`, when it ran already. */
  parsed?: ParsedFile | { error: string };
}

/** mtime, ctime, size and inode: a rewrite or an atomic rename changes at least one. */
function versionOf(info: Stats): string {
  return `${info.mtimeMs}/${info.ctimeMs}/${info.size}/${info.ino}`;
}

/**
 * How a full listing would treat `path`: 'file' (a regular file with a manifest name),
 * 'absent' (gone, or not a manifest name), or 'unknown' (a symlink, a directory, outside
 * `dir`), which only a full listing can settle.
 */
async function listedKind(dir: string, path: string): Promise<'file' | 'absent' | 'unknown'> {
  const rel = relative(dir, path);
  if (rel === '' || rel.startsWith('..') || rel.split(sep).includes('..')) return 'unknown';
  if (rel.split(sep).some((part) => part.startsWith('.'))) return 'absent'; // as listManifestFiles
  let info;
  try {
    info = await lstat(path);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR' ? 'absent' : 'unknown';
  }
  if (!info.isFile()) return 'unknown';
  const name = path.slice(path.lastIndexOf(sep) + 1);
  return isManifestName(name) ? 'file' : 'absent';
}

/** The file's bytes, refusing (without reading on) one that grew past `max` since its stat. */
async function readBounded(path: string, max: number): Promise<Buffer | undefined> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const buf = Buffer.allocUnsafe(Math.min(64 * 1024, max + 1 - total));
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      chunks.push(buf.subarray(0, bytesRead));
      total += bytesRead;
      if (total > max) throw new Error(`file is larger than the limit of ${formatBytes(max)}; not read`);
    }
    return Buffer.concat(chunks, total);
  } finally {
    await fh.close();
  }
}

interface ParsedItem {
  object: Record<string, unknown>;
  /** Line of the document (or List item) the object starts on. */
  line: number;
  /** Line of the node at a path inside the object, for errors that name a field. */
  lineOf: (path: (string | number)[]) => number;
}

/**
 * The objects of a YAML (or JSON) text, one document at a time: each document's syntax tree is
 * dropped once it is converted, so parsing memory is bounded by the largest document rather
 * than by the file. A `kind: List` (kubectl's output format) yields its items.
 */
export function* parseManifestItems(text: string, file: string, errors: ManifestError[]): Generator<ParsedItem> {
  const lineCounter = new LineCounter();
  const parser = new Parser(lineCounter.addNewLine);
  const composer = new Composer({ prettyErrors: false, uniqueKeys: true });
  const lineAt = (offset: number) => lineCounter.linePos(offset).line;
  for (const doc of composer.compose(parser.parse(text))) {
    if (doc.errors.length) {
      for (const e of doc.errors) {
        const pos = lineCounter.linePos(e.pos[0]);
        errors.push({ file, line: pos.line, column: pos.col, message: e.message.split('\n')[0] });
      }
      continue;
    }
    const line = doc.contents ? lineAt(doc.contents.range[0]) : 1;
    let value: unknown;
    try {
      // toJS refuses alias bombs (maxAliasCount) with an error instead of expanding them.
      value = doc.toJS();
    } catch (err) {
      errors.push({ file, line, message: (err as Error).message.split('\n')[0] });
      continue;
    }
    if (value === null || value === undefined) continue;
    const lineOfIn = (prefix: (string | number)[]) => (path: (string | number)[]) => nodeLine(doc, [...prefix, ...path], lineAt) ?? line;
    if (isRecord(value) && value.kind === 'List' && Array.isArray(value.items)) {
      for (const [i, item] of value.items.entries()) {
        const itemLine = nodeLine(doc, ['items', i], lineAt) ?? line;
        if (!isRecord(item)) {
          errors.push({ file, line: itemLine, message: 'List item is not a Kubernetes object (expected a mapping)' });
          continue;
        }
        yield { object: item, line: itemLine, lineOf: lineOfIn(['items', i]) };
      }
      continue;
    }
    if (!isRecord(value)) {
      errors.push({ file, line, message: 'document is not a Kubernetes object (expected a mapping)' });
      continue;
    }
    yield { object: value, line, lineOf: lineOfIn([]) };
  }
}

/** The line of the deepest node on `path` that exists in the document. */
function nodeLine(doc: Document.Parsed, path: (string | number)[], lineAt: (offset: number) => number): number | undefined {
  for (let n = path.length; n >= 0; n--) {
    const node = doc.getIn(path.slice(0, n), true) as { range?: [number, number, number] } | undefined;
    if (node && typeof node === 'object' && node.range) return lineAt(node.range[0]);
  }
  return undefined;
}

/** Each object with the line its document starts on (kept for callers that want plain objects). */
export function parseManifestText(text: string, file: string, errors: ManifestError[]): { object: Record<string, unknown>; line: number }[] {
  return [...parseManifestItems(text, file, errors)].map(({ object, line }) => ({ object, line }));
}

/** Sorts one parsed object into valid, rejected or not ours. */
function readObject(item: ParsedItem, file: string, out: ParsedFile): void {
  const { line } = item;
  const kind = item.object.kind;
  const apiVersion = item.object.apiVersion;
  if (typeof kind !== 'string' || typeof apiVersion !== 'string') {
    out.errors.push({ file, line, message: 'object has no apiVersion or kind' });
    return;
  }
  const spec = Object.hasOwn(MANIFEST_KINDS, kind) ? MANIFEST_KINDS[kind] : undefined;
  if (!spec) return; // Deployments and the like: not ours to read.
  const group = apiVersion.includes('/') ? apiVersion.slice(0, apiVersion.lastIndexOf('/')) : '';
  if (!spec.groups.includes(group)) return;
  // Kubernetes reads `field: null` as an absent field.
  const obj = withoutNulls(item.object) as Record<string, unknown>;
  const meta = obj.metadata;
  if (isRecord(meta)) {
    if (!spec.namespaced) delete meta.namespace;
    else meta.namespace ??= 'default';
    meta.generation ??= 1;
    if (meta.creationTimestamp instanceof Date) meta.creationTimestamp = meta.creationTimestamp.toISOString();
  }
  const result = validateManifestObject(kind, obj);
  if (!result.ok) {
    out.rejected.push({ ...result.rejected, file, line: item.lineOf(result.rejected.path) });
    return;
  }
  const valid = result.object as { metadata: { name: string; namespace?: string }; addressType?: string };
  const id = `${kind} ${spec.namespaced ? `${valid.metadata.namespace}/` : ''}${valid.metadata.name}`;
  if (kind === 'EndpointSlice' && valid.addressType === 'FQDN') {
    out.warnings.push({ file, line, message: `${id}: addressType FQDN is not supported; slice ignored` });
    return;
  }
  out.objects.push({ field: spec.field, object: valid, id, file, line });
}

/**
 * Takes `id` for the object defined `at`, or reports it as a duplicate. Every load claims every
 * object again, so `at` is the parsed entry itself (no string built per object per load).
 */
function claim(seen: Map<string, Where>, id: string, at: Where, errors: ManifestError[]): boolean {
  const previous = seen.get(id);
  if (previous) {
    errors.push({ file: at.file, line: at.line, message: `${id} is already defined at ${previous.file}:${previous.line}` });
    return false;
  }
  seen.set(id, at);
  return true;
}

type Where = { readonly file: string; readonly line: number };

function rejectedId(r: RejectedObject): string {
  return `${r.kind} ${r.namespace !== undefined ? `${r.namespace}/` : ''}${r.name}`;
}

/** Where `path` goes in `sorted` (the order of Array.prototype.sort: UTF-16 code units). */
function sortedIndex(sorted: readonly string[], path: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid] < path) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function displayPath(path: string): string {
  return relative(process.cwd(), path) || path;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
