// Watches a manifest directory tree and reports which manifest files changed, in settled
// batches (src/util/coalesce.ts): an editor's save becomes one batch within milliseconds, a
// `cp -r` of thousands of files a few batches.
//
// One non-recursive watch per directory, not `fs.watch(dir, { recursive: true })`: on Linux,
// Node implements the recursive form in JavaScript with one watch per file and file system
// calls on every event (it re-reads the whole directory whenever an entry appears), so a burst
// of N new files costs O(N²) synchronous work and a directory of thousands of files holds
// thousands of inotify watches. A directory watch names the entry that changed, which is all
// the loader needs to re-read only that file.
import { lstat, readdir } from 'node:fs/promises';
import { watch, type FSWatcher } from 'node:fs';
import { basename, join, relative, sep } from 'node:path';
import type { Logger } from 'pino';
import { SettleWindow, type SettledBatch, type SettleOptions } from '../../util/coalesce.ts';
import { MANIFEST_EXTENSIONS } from './load.ts';

/**
 * Directories watched at most. Each is one inotify watch (a per-user kernel resource); a tree
 * larger than this is not a manifest directory, and its deeper directories are left unwatched
 * with an error in the log (their files are still read by every full load).
 */
export const MAX_WATCHED_DIRECTORIES = 4_096;

/**
 * A batch naming more files than this is loaded with a full rescan: listing the directory then
 * costs about as much as looking at each file named, and a burst that large may have overflowed
 * the kernel's event queue (whose lost events are not reported).
 */
export const RESCAN_ABOVE_FILES = 512;

export interface DirectoryChanges {
  /** Absolute paths of manifest files that were created, changed or removed. */
  files: Set<string>;
  /** The directory must be listed again: a directory appeared or went away, or events were lost. */
  rescan: boolean;
}

export interface DirectoryWatch {
  close(): void;
}

export interface WatchOptions {
  settle?: Partial<SettleOptions>;
}

export function isManifestName(name: string): boolean {
  return !name.startsWith('.') && MANIFEST_EXTENSIONS.some((ext) => name.endsWith(ext));
}

export function watchDirectory(dir: string, onChange: (changes: DirectoryChanges) => void, log: Logger, opts: WatchOptions = {}): DirectoryWatch {
  const watchers = new Map<string, FSWatcher>();
  let closed = false;
  let limitReported = false;
  const settle = new SettleWindow(opts.settle ?? {}, (batch: SettledBatch) => {
    onChange({ files: batch.keys, rescan: batch.all || batch.keys.size > RESCAN_ABOVE_FILES });
  });

  const unwatchTree = (path: string) => {
    const prefix = path + sep;
    for (const [p, w] of watchers) {
      if (p === path || p.startsWith(prefix)) {
        w.close();
        watchers.delete(p);
      }
    }
  };

  // An entry that is not a manifest file by name may be a directory that appeared or went
  // away, or a symlink.
  const checkEntry = async (path: string) => {
    let isDir = false;
    let isLink = false;
    try {
      const info = await lstat(path);
      isDir = info.isDirectory();
      isLink = info.isSymbolicLink();
    } catch {
      /* gone */
    }
    if (closed) return;
    // A symlink swapped (a ConfigMap volume's ..data) changes what the files linked through it
    // read: only a full load sees that.
    if (isLink) settle.add(null);
    else if (isDir && !watchers.has(path)) {
      await watchTree(path);
      settle.add(null);
    } else if (!isDir && watchers.has(path)) {
      unwatchTree(path);
      settle.add(null);
    }
  };

  const onEvent = (parent: string, filename: string | Buffer | null) => {
    if (closed) return;
    const name = filename?.toString();
    if (!name) {
      settle.add(null);
      return;
    }
    const path = join(parent, name);
    if (isManifestName(name)) settle.add(path);
    else void checkEntry(path);
    // The root itself removed or moved away (its watch reports its own name): load (which
    // fails, and the last good config keeps serving) and watch it again once it is back.
    if (parent === dir && name === basename(dir)) void checkRoot();
  };

  const checkRoot = async () => {
    try {
      if ((await lstat(dir)).isDirectory()) return;
    } catch {
      /* gone */
    }
    if (closed) return;
    unwatchTree(dir);
    settle.add(null);
    retryRoot();
  };

  const watchOne = (path: string): boolean => {
    if (watchers.has(path)) return true;
    if (watchers.size >= MAX_WATCHED_DIRECTORIES) {
      if (!limitReported) {
        limitReported = true;
        log.error({ event: 'watch-limit', dir, limit: MAX_WATCHED_DIRECTORIES, at: relative(dir, path) }, `more than ${MAX_WATCHED_DIRECTORIES} directories: deeper changes are not watched`);
      }
      return false;
    }
    try {
      const w = watch(path, (_event, filename) => onEvent(path, filename));
      w.on('error', (err) => {
        w.close();
        if (watchers.get(path) === w) watchers.delete(path);
        if (closed) return;
        if (path === dir) {
          log.warn({ event: 'watch-error', dir, err: err.message }, 'directory watch failed, retrying');
          retryRoot();
        }
        settle.add(null);
      });
      watchers.set(path, w);
      return true;
    } catch (err) {
      if (path === dir) throw err;
      // A directory removed while the tree was walked: its parent's watch reports it.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') log.warn({ event: 'watch-error', dir: path, err: (err as Error).message }, 'cannot watch directory');
      return false;
    }
  };

  // Watch first, then list: an entry created in between is seen by the watch.
  const watchTree = async (path: string): Promise<void> => {
    if (closed || !watchOne(path)) return;
    let entries;
    try {
      entries = await readdir(path, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) if (e.isDirectory()) await watchTree(join(path, e.name));
  };

  let retrying = false;
  const retryRoot = () => {
    if (retrying) return;
    retrying = true;
    setTimeout(() => {
      retrying = false;
      if (closed) return;
      try {
        watchOne(dir);
      } catch (err) {
        log.warn({ event: 'watch-error', dir, err: (err as Error).message }, 'cannot watch directory, retrying');
        retryRoot();
        return;
      }
      void watchTree(dir).then(() => settle.add(null));
    }, 500).unref();
  };

  try {
    watchOne(dir);
    void watchTree(dir);
  } catch (err) {
    log.warn({ event: 'watch-error', dir, err: (err as Error).message }, 'cannot watch directory, retrying');
    retryRoot();
  }

  return {
    close() {
      closed = true;
      settle.close();
      for (const w of watchers.values()) w.close();
      watchers.clear();
    },
  };
}
