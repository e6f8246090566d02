// What the shared-memory log readers cost (src/varnish/vsl.ts, src/metrics/log-consumers.ts).
// One varnishd with a hand-written VCL that writes one `vgw-filters` record per request, as the
// generated VCL does for a rule with filters, serves cache hits (the highest request rate, so
// the most log records per second) to wrk, in three set-ups measured in interleaved rounds:
//   - no reader;
//   - the records reader (`varnishlog -g raw -I 'VCL_Log:^vgw-'`) with its real consumer
//     (RecordMetrics counting into the prom-client registry), in this process;
//   - the mirror reader (`varnishlog -g vxid -c -q 'VCL_Log ~ "^vgw-mirror "' -i ...`) with
//     its real consumer, while no request is mirrored: the price of grouping every
//     transaction to evaluate the query;
//   - the same reader while every request is mirrored (requests carry `X-Mirror: 1`, which
//     makes the VCL write a `vgw-mirror` record), with the real replayer sending each copy to
//     a second echo backend: the price and the ceiling of mirroring all traffic.
// Run: node bench/vsl-cost.ts
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RoutingIR } from '../src/ir/types.ts';
import { MirrorReplayer, type MirrorOutcome } from '../src/mirror/replayer.ts';
import { mirrorRequests } from '../src/mirror/requests.ts';
import { logConfig, RecordMetrics } from '../src/metrics/records.ts';
import { createGatewayMetrics } from '../src/metrics/registry.ts';
import { GATEWAY_PARAMS } from '../src/runtime/data-plane.ts';
import { silentLogger } from '../src/util/log.ts';
import { TCC_COMMAND } from '../src/varnish/cc.ts';
import { mirrorTransactionArgs, rawRecordArgs, VslReader } from '../src/varnish/vsl.ts';
import { groupCpuSeconds, machineCpuSeconds, startBareVarnish, startEcho, waitForQuietMachine } from './lib/procs.ts';
import { fmt, machineInfo, saveSection, table } from './lib/report.ts';
import { runWrk, wrkErrors, type WrkResult } from './lib/wrk.ts';

const THREADS = 2;
const CONNECTIONS = 50;
const WARMUP_S = 2;
const DURATION_S = 10;
const ROUNDS = 5;
const PROXY = { address: '127.0.5.4', port: 18280 };
const BACKEND = { address: '127.0.6.4', port: 18281 };
const SHADOW = { address: '127.0.6.5', port: 18282 };
const MIRROR_RECORD = 'vgw-mirror app/shadow:80';
const CACHE_HEADER = { 'X-Echo-Set-Header': 'Cache-Control:max-age=3600' };
const RECORD = 'vgw-filters app/web/0/0 RequestHeaderModifier';

const VCL = `vcl 4.1;
import std;
backend echo { .host = "${BACKEND.address}"; .port = "${BACKEND.port}"; }
sub vcl_recv {
  std.log("${RECORD}");
  if (req.http.X-Mirror) {
    std.log("${MIRROR_RECORD}");
    unset req.http.X-Mirror;
  }
}
sub vcl_backend_response {
  if (!beresp.http.Cache-Control && !beresp.http.Expires && !beresp.http.Surrogate-Control) {
    set beresp.ttl = 0s;
  }
}
`;

// The config the records stand for: one route whose rule applies one filter.
const IR: RoutingIR = {
  version: 4,
  sockets: [
    {
      name: 'a0',
      address: PROXY.address,
      port: PROXY.port,
      vhosts: [
        {
          hostname: '*',
          listener: 'app/gw/http',
          routes: [
            {
              id: 'app/web/0/0',
              match: { path: { type: 'PathPrefix', value: '/' }, headers: [], queryParams: [] },
              action: { filters: ['RequestHeaderModifier'], backends: [{ weight: 1, service: 0 }] },
            },
          ],
        },
      ],
    },
  ],
  services: [{ namespace: 'app', name: 'web', port: 80, portName: '' }],
};

type Setup = 'none' | 'records' | 'mirror' | 'mirror-all';
const SETUPS: { setup: Setup; label: string }[] = [
  { setup: 'none', label: 'no reader' },
  { setup: 'records', label: 'records reader (-g raw -I VCL_Log:^vgw-)' },
  { setup: 'mirror', label: 'mirror reader (-g vxid -c -q ...), nothing mirrored' },
  { setup: 'mirror-all', label: 'mirror reader + replayer, every request mirrored' },
];

interface Measured {
  wrk: Omit<WrkResult, 'raw'>;
  errors: number;
  cpu: { varnishd: number; varnishlog: number; node: number; machine: number };
  /** Records (records reader) or transactions (mirror reader) consumed per request sent. */
  seenPerRequest?: number;
  /** Mirror outcomes per request sent (mirror-all). */
  mirrors?: Partial<Record<MirrorOutcome, number>>;
}

/** CPU seconds (user + system) of one process so far. */
async function pidCpuSeconds(pid: number | undefined): Promise<number> {
  if (!pid) return 0;
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  if (!stat) return 0;
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

async function main(): Promise<void> {
  const quiet = await waitForQuietMachine(60);
  const t0 = performance.now();
  const machine = machineInfo();
  const tmp = await mkdtemp(join(tmpdir(), 'vgw-bench-vsl-'));
  await chmod(tmp, 0o755);
  const backend = await startEcho(BACKEND.address, BACKEND.port);
  const shadow = await startEcho(SHADOW.address, SHADOW.port, 'bench-shadow');
  const outcomes = new Map<MirrorOutcome, number>();
  const replayer = new MirrorReplayer({ logger: silentLogger(), onOutcome: (_service, outcome) => outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1) });
  replayer.setEndpoints(new Map([['app/shadow:80', [{ address: SHADOW.address, port: SHADOW.port }]]]));
  const params: Record<string, string> = { ...GATEWAY_PARAMS, cc_command: TCC_COMMAND };
  const varnish = await startBareVarnish(join(tmp, 'varnish'), VCL, PROXY.address, PROXY.port, params);
  const metrics = createGatewayMetrics();
  const records = new RecordMetrics(metrics);
  await records.setConfig(logConfig(IR));
  let seen = 0;
  const runs = new Map<Setup, Measured[]>(SETUPS.map((s) => [s.setup, []]));
  const logger = silentLogger();
  const recLen = Number(params.vsl_reclen ?? 255);
  try {
    for (let round = 1; round <= ROUNDS; round++) {
      for (const { setup, label } of SETUPS) {
        let reader: VslReader | null = null;
        if (setup === 'records') {
          reader = new VslReader({ name: 'records', instanceDir: varnish.instanceDir, args: rawRecordArgs(), logger, onRecord: (r) => {
            seen++;
            records.count(r.payload);
          } });
        } else if (setup === 'mirror' || setup === 'mirror-all') {
          reader = new VslReader({ name: 'mirror', instanceDir: varnish.instanceDir, args: mirrorTransactionArgs(), logger, onTransaction: (tx) => {
            seen++;
            for (const req of mirrorRequests(tx, recLen)) replayer.replay(req);
          } });
        }
        reader?.start();
        await reader?.attached();
        const headers = setup === 'mirror-all' ? { ...CACHE_HEADER, 'X-Mirror': '1' } : CACHE_HEADER;
        const o = { url: `http://${PROXY.address}:${PROXY.port}/hit`, threads: THREADS, connections: CONNECTIONS, headers };
        outcomes.clear();
        const seen0 = seen;
        const warm = await runWrk({ ...o, durationS: WARMUP_S });
        const sample = async () => ({
          varnishd: await groupCpuSeconds(varnish.proc.proc.pid!),
          varnishlog: await pidCpuSeconds(reader?.pid),
          node: process.cpuUsage(),
          machine: await machineCpuSeconds(),
        });
        const s0 = await sample();
        const w0 = performance.now();
        const r = await runWrk({ ...o, durationS: DURATION_S });
        const wall = (performance.now() - w0) / 1000;
        const s1 = await sample();
        // varnishlog writes what it has read when the log goes idle: let it.
        await new Promise((resolve) => setTimeout(resolve, 1_000));
        await reader?.stop();
        const { raw: _raw, ...wrk } = r;
        const nodeS = (s1.node.user + s1.node.system - s0.node.user - s0.node.system) / 1e6;
        const m: Measured = {
          wrk,
          errors: wrkErrors(r),
          cpu: {
            varnishd: (s1.varnishd - s0.varnishd) / wall,
            varnishlog: (s1.varnishlog - s0.varnishlog) / wall,
            node: nodeS / wall,
            machine: (s1.machine.busy - s0.machine.busy) / wall,
          },
          ...(setup === 'none' ? {} : { seenPerRequest: (seen - seen0) / (warm.requests + r.requests) }),
          ...(setup === 'mirror-all' ? { mirrors: Object.fromEntries([...outcomes].map(([k, v]) => [k, v / (warm.requests + r.requests)])) } : {}),
        };
        runs.get(setup)!.push(m);
        const mirrored = m.mirrors ? `, mirrors/request ${Object.entries(m.mirrors).map(([k, v]) => `${k} ${fmt(v, 3)}`).join(' ')}` : '';
        console.log(`round ${round}, ${label}: ${fmt(m.wrk.rps, 0)} req/s, varnishd ${fmt(m.cpu.varnishd, 2)} cores, varnishlog ${fmt(m.cpu.varnishlog, 2)}, node ${fmt(m.cpu.node, 2)}${m.seenPerRequest === undefined ? '' : `, seen/request ${fmt(m.seenPerRequest, 3)}`}${mirrored}`);
      }
    }
  } finally {
    replayer.close();
    await varnish.stop();
    await backend.stop();
    await shadow.stop();
    await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
  }
  const durationS = (performance.now() - t0) / 1000;
  const results = SETUPS.map(({ setup, label }) => ({ setup, label, runs: runs.get(setup)! }));
  saveSection('vsl', {
    title: 'Cost of the shared-memory log readers',
    command: 'bench:vsl',
    machine,
    durationS,
    backgroundCores: quiet.backgroundCores,
    markdown: markdown(results),
    data: { threads: THREADS, connections: CONNECTIONS, warmupS: WARMUP_S, durationS: DURATION_S, rounds: ROUNDS, vcl: VCL, results },
  });
  console.log(`done in ${fmt(durationS)} s; bench/README.md updated`);
}

/** Mean over the rounds of each mirror outcome per request, e.g. "ok 0.412, dropped 0.588". */
function mirrorOutcomes(runs: Measured[]): string {
  const keys = [...new Set(runs.flatMap((m) => Object.keys(m.mirrors ?? {})))].sort();
  if (keys.length === 0) return 'none';
  return keys.map((k) => `${k} ${fmt(runs.reduce((n, m) => n + (m.mirrors?.[k as MirrorOutcome] ?? 0), 0) / runs.length, 3)}`).join(', ');
}

function markdown(results: { setup: Setup; label: string; runs: Measured[] }[]): string {
  const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
  const perReq = (runs: Measured[], cores: (m: Measured) => number) => mean(runs.map((m) => (1e6 * cores(m)) / m.wrk.rps));
  const summary = results.map(({ setup, label, runs }) => {
    const rps = runs.map((m) => m.wrk.rps);
    const seen = runs.map((m) => m.seenPerRequest).filter((x) => x !== undefined);
    return {
      setup,
      label,
      rpsMean: mean(rps),
      rpsMin: Math.min(...rps),
      rpsMax: Math.max(...rps),
      errors: runs.reduce((n, m) => n + m.errors, 0),
      varnishd: perReq(runs, (m) => m.cpu.varnishd),
      varnishlog: perReq(runs, (m) => m.cpu.varnishlog),
      node: perReq(runs, (m) => m.cpu.node),
      seen: seen.length ? `${fmt(Math.min(...seen), 3)}–${fmt(Math.max(...seen), 3)}` : '—',
    };
  });
  const none = summary[0];
  const rows = summary.map((r) => [
    r.label,
    fmt(r.rpsMean, 0),
    `${fmt(r.rpsMin, 0)}–${fmt(r.rpsMax, 0)}`,
    `${fmt((100 * r.rpsMean) / none.rpsMean, 1)} %`,
    r.errors,
    fmt(r.varnishd, 1),
    fmt(r.varnishlog, 2),
    fmt(r.node, 2),
    r.setup === 'none' ? '—' : `${fmt((100 * (r.varnishlog + r.node)) / none.varnishd, 1)} %`,
    r.seen,
  ]);
  const cost = (r: (typeof summary)[number]) =>
    `${fmt(r.varnishlog + r.node, 2)} µs of CPU per request (varnishlog ${fmt(r.varnishlog, 2)}, Node ${fmt(r.node, 2)}), ` +
    `${fmt((100 * (r.varnishlog + r.node)) / none.varnishd, 1)} % of the ${fmt(none.varnishd, 1)} µs varnishd spends on a cache hit`;
  const spread = (r: (typeof summary)[number]) => (r.rpsMax - r.rpsMin) / r.rpsMean;
  const noisy = summary.slice(1).every((r) => Math.abs(r.rpsMean - none.rpsMean) / none.rpsMean < Math.max(spread(r), spread(none)));
  return [
    'Run with `node bench/vsl-cost.ts` (`npm run bench:vsl`).',
    '',
    `wrk ${THREADS} threads, ${CONNECTIONS} connections, ${DURATION_S} s per measurement after a ${WARMUP_S} s warm-up, keep-alive,`,
    'cache hits only (the echo backend answers `Cache-Control: max-age=3600`, so after the first request',
    'varnishd serves everything from cache): the highest request rate, so the most log records per',
    'second. varnishd is a bare one with the gateway parameters (`GATEWAY_PARAMS`, so `vsl_reclen` 4084) and',
    `a hand-written VCL that writes \`std.log("${RECORD}")\` for every request. Each reader runs`,
    'with its real consumer in the benchmark process (Node), and only while its set-up is measured.',
    `The set-ups are measured in ${ROUNDS} interleaved rounds; req/s is the mean and range over the rounds.`,
    'CPU is measured from /proc during each measured run and divided by the requests served, then',
    'averaged over the rounds: "µs/req" is CPU time per request. "readers / varnishd" puts varnishlog + Node',
    'against varnishd\'s own CPU per request without a reader. "seen / request" is records (records reader) or',
    'transactions (mirror reader) consumed per request sent: 1 means nothing was lost; 0 is expected for the',
    'mirror reader when nothing is mirrored (nothing matches its query). In the last set-up every request',
    `carries \`X-Mirror: 1\`, which makes the VCL write \`std.log("${MIRROR_RECORD}")\` too, and the replayer`,
    '(at most 256 mirrors in flight, keep-alive) sends each copy to a second echo process; its CPU is in the',
    'Node column, the mirror echo\'s is not counted.',
    '',
    table(
      ['set-up', 'req/s (mean)', 'range', 'vs none', 'errors', 'varnishd µs/req', 'varnishlog µs/req', 'Node µs/req', 'readers / varnishd', 'seen / request'],
      rows,
    ),
    '',
    `**Records reader:** ${cost(summary[1])}, and it read every record.`,
    `**Mirror reader, nothing mirrored:** ${cost(summary[2])}.`,
    `**Every request mirrored:** ${cost(summary[3])}; per request sent, mirror outcomes ${mirrorOutcomes(results[3].runs)}.`,
    noisy
      ? 'The req/s differences between set-ups are smaller than the round-to-round range on this machine, so they do not show the cost; the CPU per request does.'
      : 'Compare the req/s differences with the round-to-round ranges before reading them as the cost.',
    'On this 2-CPU machine wrk, varnishd and the readers compete for the same cores; with a core to spare the readers\' CPU would not come out of varnishd\'s.',
  ].join('\n');
}

await main();
