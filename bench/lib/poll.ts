// Fixed-rate HTTP pollers over one keep-alive connection each. A request is started every
// `intervalMs` (or as soon as the previous one finished, if it took longer): one request in
// flight at a time, so a slow answer delays the next poll instead of piling requests up.
import { Agent } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { httpGet } from './procs.ts';

export interface PollTally {
  requests: number;
  /** Status code (or "error") -> count. */
  byStatus: Map<string, number>;
}

export function newTally(): PollTally {
  return { requests: 0, byStatus: new Map() };
}

function count(t: PollTally, key: string): void {
  t.requests++;
  t.byStatus.set(key, (t.byStatus.get(key) ?? 0) + 1);
}

export function countOther(t: PollTally, ok: string[]): number {
  let n = 0;
  for (const [k, v] of t.byStatus) if (!ok.includes(k)) n += v;
  return n;
}

export function describe(t: PollTally): string {
  return [...t.byStatus].sort().map(([k, v]) => `${k}: ${v}`).join(', ');
}

export function keepAliveAgent(): Agent {
  return new Agent({ keepAlive: true, maxSockets: 1 });
}

/**
 * Polls until the answer is `until` and returns performance.now() at that answer, tallying every
 * status on the way. Throws after `timeoutMs`.
 */
export async function pollUntil(url: string, host: string, until: number, intervalMs: number, timeoutMs: number, tally: PollTally, agent: Agent): Promise<number> {
  const start = performance.now();
  for (let next = start; ; ) {
    let status = 'error';
    try {
      status = String((await httpGet(url, { host, agent, timeoutMs: 10_000 })).status);
    } catch {
      /* counted as "error" */
    }
    const now = performance.now();
    count(tally, status);
    if (status === String(until)) return now;
    if (now - start > timeoutMs) throw new Error(`no ${until} from ${host} within ${timeoutMs} ms (${describe(tally)})`);
    next += intervalMs;
    if (next > now) await sleep(next - now);
    else next = now;
  }
}

/** Polls in the background until stop() is called; stop() resolves once the loop has ended. */
export function backgroundPoller(url: string, host: string, intervalMs: number, tally: PollTally): { stop(): Promise<void> } {
  const agent = keepAliveAgent();
  let stopped = false;
  const loop = (async () => {
    for (let next = performance.now(); !stopped; ) {
      let status = 'error';
      try {
        status = String((await httpGet(url, { host, agent, timeoutMs: 10_000 })).status);
      } catch {
        /* counted as "error" */
      }
      count(tally, status);
      const now = performance.now();
      next += intervalMs;
      if (next > now) await sleep(next - now);
      else next = now;
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      agent.destroy();
    },
  };
}
