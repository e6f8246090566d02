// Watches a manifest directory (recursively) and reports "something changed", debounced so an
// editor's save becomes one reload (a longer burst, such as `cp -r`, is coalesced further
// downstream: a change that arrives while one is applied only marks the directory dirty). The loader re-reads the whole directory, so
// no per-file bookkeeping is needed here.
import { watch, type FSWatcher } from 'node:fs';
import type { Logger } from 'pino';
import { MANIFEST_EXTENSIONS } from './load.ts';

export interface DirectoryWatch {
  close(): void;
}

export function watchDirectory(dir: string, onChange: () => void, log: Logger, debounceMs = 5): DirectoryWatch {
  let timer: NodeJS.Timeout | null = null;
  let watcher: FSWatcher | null = null;
  let closed = false;
  const fire = (_event: string, filename: string | Buffer | null) => {
    // Logs or editor swap files beside the manifests must not trigger reloads.
    const name = filename?.toString();
    if (name && /\.[^/.]+$/.test(name) && !MANIFEST_EXTENSIONS.some((ext) => name.endsWith(ext))) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      onChange();
    }, debounceMs);
  };
  const open = () => {
    if (closed) return;
    try {
      watcher = watch(dir, { recursive: true }, fire);
      watcher.on('error', (err) => {
        log.warn({ event: 'watch-error', dir, err: err.message }, 'directory watch failed, retrying');
        watcher?.close();
        setTimeout(open, 500).unref();
      });
    } catch (err) {
      log.warn({ event: 'watch-error', dir, err: (err as Error).message }, 'cannot watch directory, retrying');
      setTimeout(open, 500).unref();
    }
  };
  open();
  return {
    close() {
      closed = true;
      if (timer) clearTimeout(timer);
      watcher?.close();
    },
  };
}
