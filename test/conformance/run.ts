// Gateway API conformance (HTTPRoute/Gateway traffic and status-only tests of upstream v1.6.x)
// against `vgw serve` and `vgw check` (standalone mode), or with --cluster against the operator
// and its gateway pods on the local cluster. Usage:
//   node test/conformance/run.ts [--cluster] [--only Name1,Name2 [--force]] [--verbose] [--list]
//                                [--keep] [--timeout SECONDS] [--ready-timeout SECONDS]
//   node test/conformance/run.ts --update-docs   (rewrites the run/skip table in the docs)
// See docs/conformance.md.
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadCases } from './data.ts';
import { CLUSTER_FEATURES, SUPPORTED_FEATURES } from '../../src/gatewayapi/features.ts';
import { ClusterStage } from './cluster-stage.ts';
import { DEFAULT_CONVERGENCE } from './converge.ts';
import { EchoFleet } from './fleet.ts';
import { planAll } from './plan.ts';
import { killAllChildren, type Serve } from './product.ts';
import { generateConformanceObjects } from './generated-objects.ts';
import { formatOutcome, formatSummary, planMarkdown } from './report.ts';
import { runStatusOnlyTest, runTrafficTest, type RunnerEnv } from './runner.ts';
import { StandaloneStage } from './standalone-stage.ts';
import { statusOnlyExpectations } from './status-only.ts';
import { AddressBook } from './world.ts';

interface Args {
  cluster: boolean;
  only?: string[];
  verbose: boolean;
  list: boolean;
  updateDocs: boolean;
  force: boolean;
  keep: boolean;
  timeoutMs: number;
  readyTimeoutMs: number;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { cluster: false, verbose: false, list: false, updateDocs: false, force: false, keep: false, timeoutMs: DEFAULT_CONVERGENCE.timeoutMs, readyTimeoutMs: 60_000 };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split(/=(.*)/s, 2);
    const value = () => {
      const v = inline ?? argv[++i];
      if (v === undefined) usage(`${flag} needs a value`);
      return v;
    };
    const seconds = () => {
      const n = Number(value());
      if (!(n > 0)) usage(`${flag} needs a positive number of seconds`);
      return n * 1000;
    };
    switch (flag) {
      case '--cluster':
        args.cluster = true;
        break;
      case '--only':
        args.only = value().split(',').map((s) => s.trim()).filter(Boolean);
        break;
      case '--verbose':
      case '-v':
        args.verbose = true;
        break;
      case '--list':
        args.list = true;
        break;
      case '--force':
        args.force = true;
        break;
      case '--update-docs':
        args.updateDocs = true;
        break;
      case '--keep':
        args.keep = true;
        break;
      case '--timeout':
        args.timeoutMs = seconds();
        break;
      case '--ready-timeout':
        args.readyTimeoutMs = seconds();
        break;
      case '--help':
      case '-h':
        usage();
        break;
      default:
        usage(`unknown argument ${argv[i]}`);
    }
  }
  return args;
}

function usage(problem?: string): never {
  if (problem) console.error(`run.ts: ${problem}`);
  console.error('usage: node test/conformance/run.ts [--cluster] [--only Name1,Name2 [--force]] [--verbose] [--list] [--keep] [--timeout S] [--ready-timeout S]');
  console.error('       node test/conformance/run.ts --update-docs');
  process.exit(problem ? 2 : 0);
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const cases = loadCases();
  if (args.force && !args.only) usage('--force needs --only');
  // Forcing a named test runs it whatever the supported features say, as upstream's RunTest does.
  const everyFeature = [...new Set([...cases.trafficTests, ...cases.statusOnlyTests].flatMap((t) => t.features))];
  // A cluster adds what only generated objects can show (GatewayInfrastructurePropagation).
  const claimed = args.cluster ? CLUSTER_FEATURES : SUPPORTED_FEATURES;
  let plan = planAll(cases, args.force ? everyFeature : claimed);
  if (args.only) {
    const unknown = args.only.filter((n) => !plan.some((p) => p.name === n));
    if (unknown.length) usage(`no such test: ${unknown.join(', ')}`);
    plan = plan.filter((p) => args.only!.includes(p.name));
  }

  if (args.updateDocs) {
    if (args.cluster) usage('--update-docs describes the standalone run; leave out --cluster');
    await updateDocs(planMarkdown(plan));
    return 0;
  }

  if (args.list) {
    for (const p of plan) console.log(p.decision.run ? `run   ${p.name} (${p.kind})${p.decision.note ? `, ${p.decision.note}` : ''}` : `skip  ${p.name}: ${p.decision.reason}`);
    const runs = plan.filter((p) => p.decision.run).length;
    console.log(`${runs} to run, ${plan.length - runs} skipped (source ${cases.source.repository} ${cases.source.tag})`);
    return 0;
  }

  const workDir = await mkdtemp(path.join(os.tmpdir(), 'vgw-conformance-'));
  // varnishd drops privileges and must still reach its files below this folder.
  await chmod(workDir, 0o755);
  const fleet = new EchoFleet();
  let current: Serve | undefined;
  let cluster: ClusterStage | undefined;
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    console.error(`\n${signal}: stopping`);
    void (async () => {
      await Promise.race([Promise.all([current?.stop(), cluster?.stop()]), new Promise((r) => setTimeout(r, 5000))]);
      killAllChildren();
      await fleet.closeAll();
      process.exit(130);
    })();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', killAllChildren);

  const setupStarted = Date.now();
  // The suite's Setup objects (certificates, CAs): made once, present in every test as upstream's are.
  const generated = await generateConformanceObjects(path.join(workDir, 'generated'));
  if (args.cluster) {
    console.log('starting the local cluster, installing vgw and applying the base manifests');
    cluster = await ClusterStage.start({ workDir, readyTimeoutMs: Math.max(args.readyTimeoutMs, 120_000), statusTimeoutMs: Math.max(args.timeoutMs, 60_000), generated: generated.objects });
    console.log(`(cluster ready in ${((Date.now() - setupStarted) / 1000).toFixed(0)} s)`);
  }
  const stage = cluster ?? new StandaloneStage({ workDir, book: new AddressBook(), fleet, readyTimeoutMs: args.readyTimeoutMs, onServe: (s) => (current = s), generated: generated.objects });
  const env: RunnerEnv = {
    stage,
    convergence: { ...DEFAULT_CONVERGENCE, timeoutMs: args.timeoutMs },
    caseConcurrency: 16,
    trust: generated.secrets,
  };

  const byName = new Map(cases.trafficTests.map((t) => [t.name, t]));
  const statusOnly = new Map(cases.statusOnlyTests.map((t) => [t.name, t]));
  const passed: string[] = [];
  const failed: string[] = [];
  const skipped: { name: string; reason: string }[] = [];
  const started = Date.now();
  try {
    for (const p of plan) {
      if (!p.decision.run) {
        skipped.push({ name: p.name, reason: p.decision.reason });
        continue;
      }
      try {
        const traffic = byName.get(p.name);
        const so = statusOnly.get(p.name);
        const outcome = traffic ? await runTrafficTest(traffic, env) : await runStatusOnlyTest(p.name, so!.manifests, statusOnlyExpectations(so!)!, env);
        (outcome.ok ? passed : failed).push(p.name);
        console.log(formatOutcome(outcome, args.verbose));
      } catch (err) {
        failed.push(p.name);
        console.log(`=== FAIL ${p.name}: harness error: ${(err as Error).stack ?? String(err)}`);
      }
    }
  } finally {
    await fleet.closeAll();
    await cluster?.stop();
  }
  console.log(`(${((Date.now() - started) / 1000).toFixed(0)} s; work folder ${failed.length || args.keep ? workDir : 'removed'})`);
  if (!failed.length && !args.keep) await rm(workDir, { recursive: true, force: true });
  console.log(formatSummary(passed, failed, skipped));
  return failed.length ? 1 : 0;
}

const DOCS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../docs/conformance.md');
const BEGIN = '<!-- plan:begin (generated by `node test/conformance/run.ts --update-docs`) -->';
const END = '<!-- plan:end -->';

async function updateDocs(table: string): Promise<void> {
  const text = await readFile(DOCS, 'utf8');
  const start = text.indexOf(BEGIN);
  const end = text.indexOf(END);
  if (start < 0 || end < start) throw new Error(`${DOCS}: markers ${BEGIN} ... ${END} not found`);
  await writeFile(DOCS, `${text.slice(0, start + BEGIN.length)}\n${table}\n${text.slice(end)}`);
  console.log(`updated ${DOCS}`);
}

process.exit(await main());
