// SupervisedProcess with real processes: the whole tree is gone once stop() resolves (a
// grandchild ignoring SIGTERM included), crashes are restarted with growing delays, output is
// split into bounded lines.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, test } from 'node:test';
import { SupervisedProcess, type ProcessLine } from '../../src/util/supervised-process.ts';
import { eventually } from './support/poll.ts';

/** True while `pid` is a process that has not exited (a zombie counts as gone). */
async function alive(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
  if (stat === null) return false;
  const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  return state !== 'Z' && state !== 'X';
}

function collect(p: SupervisedProcess): ProcessLine[] {
  const lines: ProcessLine[] = [];
  p.on('line', (l) => lines.push(l));
  return lines;
}

describe('SupervisedProcess', () => {
  test('stop() leaves no process of the tree, a grandchild that ignores SIGTERM included', async () => {
    // The grandchild ignores TERM and leaves the process group (setsid when available), so only
    // the parent-pid tracking finds it; it prints its pid once it is set up.
    const script = `
      grandchild='trap "" TERM; echo "grandchild $$"; while :; do sleep 0.05; done'
      if command -v setsid >/dev/null; then setsid sh -c "$grandchild" & else sh -c "$grandchild" & fi
      while :; do sleep 0.05; done`;
    const p = new SupervisedProcess({ command: 'sh', args: ['-c', script], stopGraceMs: 300 });
    const lines = collect(p);
    p.start();
    const root = p.pid!;
    await eventually('the grandchild reports its pid', () => lines.some((l) => l.text.startsWith('grandchild ')));
    const grandchild = Number(lines.find((l) => l.text.startsWith('grandchild '))!.text.split(' ')[1]);
    assert.ok(await alive(grandchild));
    const left = await p.stop();
    assert.deepEqual(left, []);
    assert.equal(await alive(root), false, 'the process itself is gone');
    assert.equal(await alive(grandchild), false, 'the grandchild that ignored SIGTERM is gone');
    assert.equal(p.running, false);
  });

  test('a crashing process is restarted with growing delays until stop()', async () => {
    const p = new SupervisedProcess({
      command: 'sh',
      args: ['-c', 'echo up; exit 3'],
      restart: { initialDelayMs: 10, maxDelayMs: 40, stableRunMs: 60_000 },
    });
    const delays: number[] = [];
    const exits: (number | null)[] = [];
    const starts: boolean[] = [];
    p.on('restarting', (r) => delays.push(r.delayMs));
    p.on('exited', (e) => exits.push(e.code));
    p.on('started', (s) => starts.push(s.restart));
    p.start();
    await eventually('four restarts', () => delays.length >= 4);
    await p.stop();
    assert.deepEqual(delays.slice(0, 4), [10, 20, 40, 40], 'doubling, bounded by maxDelayMs');
    assert.ok(exits.slice(0, 4).every((c) => c === 3));
    assert.equal(starts[0], false);
    assert.ok(starts.slice(1).every((r) => r));
    const restarts = p.restarts;
    assert.equal(p.running, false);
    // No restart after stop(): the count stays.
    await new Promise((r) => setImmediate(r));
    assert.equal(p.restarts, restarts);
  });

  test('without a restart policy an exit is final', async () => {
    const p = new SupervisedProcess({ command: 'sh', args: ['-c', 'exit 0'] });
    const exits: { pid: number; code: number | null; signal: string | null; expected: boolean }[] = [];
    p.on('exited', (e) => exits.push(e));
    p.start();
    await eventually('the exit', () => exits.length === 1);
    assert.deepEqual(exits, [{ pid: exits[0].pid, code: 0, signal: null, expected: false }]);
    assert.equal(p.restarts, 0);
    assert.deepEqual(await p.stop(), []);
  });

  test('a command that cannot be started is reported as an exit with the error', async () => {
    const p = new SupervisedProcess({ command: '/nonexistent/vgw-test-binary', args: [] });
    const exits: { code: number | null; error?: string }[] = [];
    p.on('exited', (e) => exits.push(e));
    p.start();
    await eventually('the failed start', () => exits.length === 1);
    // With setpriv the exec fails in the child (exit code), without it spawn fails (error).
    assert.ok(exits[0].error !== undefined || (exits[0].code !== null && exits[0].code !== 0), JSON.stringify(exits[0]));
    assert.equal(p.running, false);
    await p.stop();
  });

  test('lines: split across chunks, stdout and stderr apart, the partial last line passed on', async () => {
    const script = `printf 'one\\ntw'; sleep 0.05; printf 'o\\nthree'; printf 'err\\n' >&2`;
    const p = new SupervisedProcess({ command: 'sh', args: ['-c', script] });
    const lines = collect(p);
    p.start();
    await eventually('every line', () => lines.length === 4);
    const out = lines.filter((l) => l.stream === 'stdout').map((l) => l.text);
    assert.deepEqual(out, ['one', 'two', 'three']);
    assert.deepEqual(lines.filter((l) => l.stream === 'stderr').map((l) => l.text), ['err']);
    assert.ok(lines.every((l) => !l.truncated));
    await p.stop();
  });

  test('output is bounded: long lines are cut, only the last lines are kept', async () => {
    // A 100 000-char line, then 50 short ones.
    const script = `head -c 100000 /dev/zero | tr '\\0' x; echo; i=0; while [ $i -lt 50 ]; do echo "line $i"; i=$((i+1)); done`;
    const p = new SupervisedProcess({ command: 'sh', args: ['-c', script], maxLineLength: 1000, keepLines: 10 });
    const lines = collect(p);
    p.start();
    await eventually('every line', () => lines.length === 51);
    assert.equal(lines[0].text, 'x'.repeat(1000));
    assert.equal(lines[0].truncated, true);
    assert.equal(lines[1].text, 'line 0', 'the tail of the cut line is dropped, the next line is whole');
    assert.equal(lines[1].truncated, false);
    const kept = p.output();
    assert.equal(kept.length, 10);
    assert.equal(kept.at(-1), 'line 49');
    await p.stop();
  });

  test('a line that ends exactly at the limit is not marked as cut', async () => {
    const p = new SupervisedProcess({ command: 'sh', args: ['-c', 'printf "abcd\\nefghij\\n"'], maxLineLength: 4 });
    const lines = collect(p);
    p.start();
    await eventually('both lines', () => lines.length === 2);
    assert.deepEqual(lines.map((l) => [l.text, l.truncated]), [['abcd', false], ['efgh', true]]);
    await p.stop();
  });
});
