// CPU time and allocation of one route change, full translation against incremental
// translation (TranslationMemo), on the bench:scale workload built in memory: one Gateway with
// one HTTP listener, one Service, N HTTPRoutes, route i with host r<i>.scale.test, one rule
// matching prefix /p<i> and header x-bench: on. Each change replaces one route by a new object
// whose prefix flips (generation + 1); the other routes keep their identity, as the manifest
// loader hands them out. Both translations see the same snapshot and get their own previous
// statuses, as `vgw serve` passes them.
//
// CPU is process.cpuUsage() (user + system) around the translate() call, after a forced GC, so
// it is the translation's own work without collecting earlier garbage. "allocated" is the heap
// growth over the call (the young generation is made large enough that no GC runs during it;
// a run where one did is left out). Medians over --changes changes after --warmup ones.
// Flags: --sizes 1000,5000,10000 --changes 20 --warmup 5
import assert from 'node:assert/strict';
import { PerformanceObserver } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { translate, type TranslateOptions, type TranslateResult } from '../src/gatewayapi/translator.ts';
import { TranslationMemo } from '../src/gatewayapi/translation-memo.ts';
import { indexStatuses, type PreviousStatuses } from '../src/gatewayapi/status.ts';
import { CONTROLLER_NAME } from '../src/gatewayapi/features.ts';
import type { Gateway, GatewayClass, HTTPRoute, ResourceSnapshot, Service } from '../src/gatewayapi/types.ts';
import { emptySnapshot } from '../src/gatewayapi/types.ts';

const { values: flags } = parseArgs({
  options: {
    sizes: { type: 'string', default: '1000,5000,10000' },
    changes: { type: 'string', default: '20' },
    warmup: { type: 'string', default: '5' },
  },
});
const SIZES = flags.sizes.split(',').map(Number);
const CHANGES = Number(flags.changes);
const WARMUP = Number(flags.warmup);

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
let gcRuns = 0;
new PerformanceObserver((list) => {
  gcRuns += list.getEntries().length;
}).observe({ entryTypes: ['gc'] });

const NAMESPACE = 'bench';
const API = 'gateway.networking.k8s.io/v1';

function route(i: number, flipped: boolean, generation: number): HTTPRoute {
  return {
    apiVersion: API,
    kind: 'HTTPRoute',
    metadata: { name: `r${i}`, namespace: NAMESPACE, generation },
    spec: {
      parentRefs: [{ name: 'bench-gw' }],
      hostnames: [`r${i}.scale.test`],
      rules: [
        {
          matches: [{ path: { type: 'PathPrefix', value: `/p${i}${flipped ? 'b' : ''}` }, headers: [{ name: 'x-bench', value: 'on' }] }],
          backendRefs: [{ name: 'echo', port: 8080 }],
        },
      ],
    },
  };
}

/** The same Gateway, class and Service objects every time (only routes change). */
const WORLD = (() => {
  const gatewayClass: GatewayClass = { apiVersion: API, kind: 'GatewayClass', metadata: { name: 'vgw-bench' }, spec: { controllerName: CONTROLLER_NAME } };
  const gateway: Gateway = {
    apiVersion: API,
    kind: 'Gateway',
    metadata: { name: 'bench-gw', namespace: NAMESPACE },
    spec: { gatewayClassName: 'vgw-bench', addresses: [{ type: 'IPAddress', value: '127.0.114.1' }], listeners: [{ name: 'http', protocol: 'HTTP', port: 18580 }] },
  };
  const service: Service = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'echo', namespace: NAMESPACE }, spec: { ports: [{ port: 8080 }] } };
  return { gatewayClass, gateway, service };
})();

function world(routes: HTTPRoute[]): ResourceSnapshot {
  return { ...emptySnapshot(), gatewayClasses: [WORLD.gatewayClass], gateways: [WORLD.gateway], services: [WORLD.service], httpRoutes: routes };
}

interface Sample {
  cpuMs: number;
  allocatedMb: number | null;
}

function measure(run: () => TranslateResult): { result: TranslateResult; sample: Sample } {
  gc();
  const gcBefore = gcRuns;
  const heapBefore = process.memoryUsage().heapUsed;
  const cpu = process.cpuUsage();
  const result = run();
  const used = process.cpuUsage(cpu);
  const heapAfter = process.memoryUsage().heapUsed;
  // The observer reports GCs asynchronously; a GC during the call also shows as a heap drop.
  const clean = gcRuns === gcBefore && heapAfter >= heapBefore;
  return { result, sample: { cpuMs: (used.user + used.system) / 1000, allocatedMb: clean ? (heapAfter - heapBefore) / 2 ** 20 : null } };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

interface Row {
  mode: string;
  routes: number;
  full: Sample[];
  incremental: Sample[];
}

/** `mode`: standalone (one data plane, combined IR only) or operator (an IR per Gateway). */
async function runSize(n: number, mode: 'standalone' | 'operator'): Promise<Row> {
  const routes = Array.from({ length: n }, (_, i) => route(i, false, 1));
  const flipped = new Array<boolean>(n).fill(false);
  const generations = new Array<number>(n).fill(1);
  const base: Omit<TranslateOptions, 'now'> =
    mode === 'standalone' ? { defaultAddress: '127.0.0.1', perGateway: false } : { defaultAddress: '0.0.0.0', sharedDataPlane: false };
  const memo = new TranslationMemo();
  let previousFull: PreviousStatuses | undefined;
  let previousIncremental: PreviousStatuses | undefined;
  const row: Row = { mode, routes: n, full: [], incremental: [] };
  // The first translation fills the memo; it is a full one either way.
  previousIncremental = indexStatuses(translate(world(routes), { ...base, now: new Date(0).toISOString(), memo }).statuses);
  previousFull = previousIncremental;
  for (let change = 0; change < WARMUP + CHANGES; change++) {
    // Spread the changed routes over the table (a prime stride), as edits to random files would.
    const i = (change * 7919) % n;
    flipped[i] = !flipped[i];
    routes[i] = route(i, flipped[i], ++generations[i]);
    const snapshot = world([...routes]);
    const now = new Date(1000 * (change + 1)).toISOString();
    const full = measure(() => translate(snapshot, { ...base, now, ...(previousFull ? { previous: previousFull } : {}) }));
    const incremental = measure(() => translate(snapshot, { ...base, now, ...(previousIncremental ? { previous: previousIncremental } : {}), memo }));
    if (change < 2) assert.deepStrictEqual(incremental.result, full.result, 'incremental translation differs from full translation');
    previousFull = indexStatuses(full.result.statuses);
    previousIncremental = indexStatuses(incremental.result.statuses);
    if (change >= WARMUP) {
      row.full.push(full.sample);
      row.incremental.push(incremental.sample);
    }
    // Let the GC observer's entries arrive before the next measurement.
    await new Promise((resolve) => setImmediate(resolve));
  }
  return row;
}

function fmtMs(samples: Sample[]): string {
  return median(samples.map((s) => s.cpuMs)).toFixed(1);
}

function fmtMb(samples: Sample[]): string {
  const clean = samples.map((s) => s.allocatedMb).filter((v): v is number => v !== null);
  return clean.length ? `${median(clean).toFixed(1)} (${clean.length})` : '—';
}

const rows: Row[] = [];
for (const mode of ['standalone', 'operator'] as const) {
  for (const n of SIZES) {
    const row = await runSize(n, mode);
    rows.push(row);
    console.error(`${mode} ${n}: full ${fmtMs(row.full)} ms, incremental ${fmtMs(row.incremental)} ms`);
  }
}

console.log(`\nOne route change, translate() only; median of ${CHANGES} changes after ${WARMUP} warm-up changes; Node ${process.version}.`);
console.log('CPU is user + system time of the call; allocated is heap growth over the call in MiB (in brackets: changes measured without a GC during the call).\n');
console.log('| mode | routes | full CPU ms | incremental CPU ms | speed-up | full allocated MiB | incremental allocated MiB |');
console.log('| --- | --- | --- | --- | --- | --- | --- |');
for (const r of rows) {
  const full = median(r.full.map((s) => s.cpuMs));
  const inc = median(r.incremental.map((s) => s.cpuMs));
  console.log(`| ${r.mode} | ${r.routes.toLocaleString('en-US')} | ${fmtMs(r.full)} | ${fmtMs(r.incremental)} | ${(full / inc).toFixed(1)}× | ${fmtMb(r.full)} | ${fmtMb(r.incremental)} |`);
}
