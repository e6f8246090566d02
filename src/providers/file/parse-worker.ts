// Worker thread of parallel-parse.ts: parses batches of manifest files, one outcome per file.
import { parentPort } from 'node:worker_threads';
import { parseResult } from './load.ts';

parentPort?.on('message', (batch: { names: string[]; bytes: Uint8Array; ends: number[] }) => {
  let start = 0;
  const results = batch.names.map((file, i) => {
    const outcome = parseResult(batch.bytes.subarray(start, batch.ends[i]), file);
    start = batch.ends[i];
    return outcome;
  });
  parentPort?.postMessage(results);
});
