// Running a property: seed and run count from the environment (FUZZ_SEED, FUZZ_RUNS) or the
// caller, a bounded shrink, and a failure written to fuzz-failures/ with everything needed to
// replay it (seed, path, the shrunk input, as JSON and as manifests when it has them).
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import fc from 'fast-check';
import { yamlDocs } from '../integration/support/manifests.ts';

export interface FuzzSettings {
  runs: number;
  seed: number;
  /** Property evaluations allowed after the first failure, for shrinking. */
  shrinkBudget: number;
  failuresDir: string;
}

/** CI defaults, overridden by FUZZ_RUNS / FUZZ_SEED / FUZZ_SHRINK / FUZZ_FAILURES_DIR. */
export function fuzzSettings(defaults: { runs: number; shrinkBudget: number }): FuzzSettings {
  const num = (name: string, fallback: number) => {
    const v = process.env[name];
    if (v === undefined || v === '') return fallback;
    const n = Number(v);
    if (!Number.isSafeInteger(n)) throw new Error(`${name}=${v} is not an integer`);
    return n;
  };
  return {
    runs: num('FUZZ_RUNS', defaults.runs),
    seed: num('FUZZ_SEED', 0x5eed),
    shrinkBudget: num('FUZZ_SHRINK', defaults.shrinkBudget),
    failuresDir: resolve(process.env.FUZZ_FAILURES_DIR ?? 'fuzz-failures'),
  };
}

export interface FuzzFailure {
  property: string;
  file: string;
  report: string;
}

/**
 * Wraps a predicate so that, once it has failed, only `budget` more evaluations run: shrinking
 * against a real varnishd costs real time, and a partly shrunk counterexample beats none.
 */
export function budgeted<T>(budget: number, predicate: (value: T) => Promise<void>): (value: T) => Promise<boolean | void> {
  let failed = false;
  let after = 0;
  return async (value: T) => {
    if (failed && ++after > budget) return true;
    try {
      await predicate(value);
    } catch (err) {
      failed = true;
      throw err;
    }
  };
}

/** Runs `property`; on failure writes the counterexample and returns where it went. */
export async function runProperty<T>(
  name: string,
  arbitrary: fc.Arbitrary<T>,
  predicate: (value: T) => Promise<void>,
  settings: FuzzSettings,
  manifestsOf: (value: T) => object[] | undefined = () => undefined,
): Promise<FuzzFailure | null> {
  const property = fc.asyncProperty(arbitrary, budgeted(settings.shrinkBudget, predicate));
  const details = await fc.check(property, { numRuns: settings.runs, seed: settings.seed });
  if (!details.failed) return null;
  const value = details.counterexample?.[0] as T;
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const base = join(settings.failuresDir, `${name}-seed${settings.seed}-${stamp}`);
  await mkdir(settings.failuresDir, { recursive: true });
  const error = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
  const record = {
    property: name,
    seed: details.seed,
    path: details.counterexamplePath,
    runs: settings.runs,
    replay: `FUZZ_SEED=${details.seed} FUZZ_RUNS=${settings.runs} (fast-check path ${details.counterexamplePath})`,
    error,
    counterexample: value,
  };
  await writeFile(`${base}.json`, `${JSON.stringify(record, null, 2)}\n`);
  const manifests = manifestsOf(value);
  if (manifests) await writeFile(`${base}.yaml`, yamlDocs(manifests));
  const report = `${name} failed (seed ${details.seed}, path ${details.counterexamplePath}); counterexample in ${base}.json\n${error}`;
  return { property: name, file: `${base}.json`, report };
}
