// The first load of a large directory parses its files ahead of the load loop, on worker
// threads as well as on this one when there are thousands: YAML parsing and schema validation
// is the largest part of a cold start, and every file is parsed on its own. Workers exist only for that load: they are
// started for it and terminated when it ends. Results come back by structured clone, which
// costs this thread a fraction of what parsing them would, so this thread parses a share of
// its own instead of waiting. A worker that fails leaves its files to this thread.
import { availableParallelism } from 'node:os';
import { setImmediate as yieldToEvents } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { parseResult, type ParsedFile } from './load.ts';

/**
 * The first load reads and parses its files ahead of the load loop from this many files on
 * (synchronous reads in slices cost a fraction of the loop's thread-pool round trips, and
 * the Gateways are known early: ManifestLoaderOptions.onGateways).
 */
export const PARSE_AHEAD_MIN_FILES = 200;
/**
 * Worker threads parse too from this many files on: a worker first loads the YAML library
 * and the schemas, which costs about as much as parsing a thousand files.
 */
export const PARSE_WORKERS_MIN_FILES = 2_000;
/** Worker threads at most, besides this one. */
export const MAX_PARSE_WORKERS = 2;
/** Files per message to a worker: few messages, yet small enough to share the work evenly. */
const BATCH_FILES = 64;

export type ParseOutcome = ParsedFile | { error: string };

/** Worker threads for parsing `files` files ahead: one core is this thread's, none on one core. */
export function parseWorkerCount(files: number, cores = availableParallelism()): number {
  if (files < PARSE_WORKERS_MIN_FILES) return 0;
  return Math.max(0, Math.min(MAX_PARSE_WORKERS, cores - 1));
}

export interface ParseInput {
  /** The name errors carry (the display path). */
  file: string;
  bytes: Uint8Array;
}

interface Batch {
  start: number;
  end: number;
}

/** A started pool: workers load their modules while the caller reads the files. */
export interface ParsePool {
  /** One outcome per input, in order, each as parseResult() would give it. */
  parse(inputs: readonly ParseInput[]): Promise<ParseOutcome[]>;
  /** Terminates the workers (also when parse() was never called). */
  close(): Promise<void>;
}

export function startParsePool(workers: number): ParsePool {
  const threads = Array.from({ length: workers }, () => new Worker(new URL('./parse-worker.ts', import.meta.url)));
  // A worker that dies before or during parse() is simply not used (its batch goes back).
  for (const t of threads) t.on('error', () => undefined);
  return {
    async parse(inputs) {
      const out: (ParseOutcome | undefined)[] = new Array(inputs.length);
      const queue: Batch[] = [];
      for (let start = 0; start < inputs.length; start += BATCH_FILES) queue.push({ start, end: Math.min(inputs.length, start + BATCH_FILES) });
      const parseHere = (b: Batch) => {
        for (let i = b.start; i < b.end; i++) out[i] = parseResult(inputs[i].bytes, inputs[i].file);
      };
      const running = threads.map((t) => feed(t, inputs, queue, out));
      // This thread takes batches too, yielding between them so that worker results arrive.
      for (let b = queue.shift(); b; b = queue.shift()) {
        parseHere(b);
        await yieldToEvents();
      }
      const failed = (await Promise.all(running)).flat();
      for (const b of failed) parseHere(b);
      return out as ParseOutcome[];
    },
    async close() {
      await Promise.all(threads.map((t) => t.terminate()));
    },
  };
}

/** Sends `worker` one batch after the other until the queue is empty; resolves to the batches it failed. */
function feed(worker: Worker, inputs: readonly ParseInput[], queue: Batch[], out: (ParseOutcome | undefined)[]): Promise<Batch[]> {
  return new Promise((resolve) => {
    let current: Batch | undefined;
    const done = (failed: Batch[]) => {
      worker.off('message', onMessage);
      worker.off('error', onFailure);
      worker.off('exit', onFailure);
      resolve(failed);
    };
    const next = () => {
      current = queue.shift();
      if (!current) return done([]);
      const files = inputs.slice(current.start, current.end);
      // One buffer per batch, moved to the worker rather than copied.
      const total = files.reduce((n, f) => n + f.bytes.length, 0);
      const bytes = new Uint8Array(total);
      const ends: number[] = [];
      let at = 0;
      for (const f of files) {
        bytes.set(f.bytes, at);
        at += f.bytes.length;
        ends.push(at);
      }
      worker.postMessage({ names: files.map((f) => f.file), bytes, ends }, [bytes.buffer]);
    };
    const onMessage = (results: ParseOutcome[]) => {
      if (!current) return;
      for (let i = 0; i < results.length; i++) out[current.start + i] = results[i];
      next();
    };
    const onFailure = () => done(current ? [current] : []);
    worker.on('message', onMessage);
    worker.once('error', onFailure);
    worker.once('exit', onFailure);
    next();
  });
}
