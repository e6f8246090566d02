// Which commands start themselves again with their heap settings, and when a flag the user
// gave wins (the behaviour of the running process is checked in lifeline.test.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HEAP_GROWING_FLAG, restartArgs, runtimeFlags, SEMI_SPACE_FLAG } from '../../src/cli/heap-tuning.ts';

test('long-running commands restart once with the young-generation limit, before the other Node flags', () => {
  for (const command of ['serve', 'chaperone', 'operator']) {
    assert.deepEqual(restartArgs(command, [], undefined), [SEMI_SPACE_FLAG]);
    assert.deepEqual(restartArgs(command, ['--enable-source-maps'], ''), [SEMI_SPACE_FLAG, '--enable-source-maps']);
    // The restarted process sees the flag and runs on.
    assert.equal(restartArgs(command, [SEMI_SPACE_FLAG], undefined), null);
    assert.deepEqual(runtimeFlags(command, []), [HEAP_GROWING_FLAG]);
  }
});

test('one-shot commands are left alone', () => {
  for (const command of ['check', 'vcl', 'explain', 'echo', 'help', undefined]) {
    assert.equal(restartArgs(command, [], undefined), null);
    assert.deepEqual(runtimeFlags(command, []), []);
  }
});

test('a value the user gave, on the command line or in NODE_OPTIONS, is kept', () => {
  assert.equal(restartArgs('serve', ['--max-semi-space-size=64'], undefined), null);
  assert.equal(restartArgs('serve', [], '--max-old-space-size=512 --max-semi-space-size=2'), null);
  assert.equal(restartArgs('serve', ['--max-semi-space-size', '8'], undefined), null);
  assert.deepEqual(runtimeFlags('serve', ['--heap-growing-percent=0']), []);
  // Other flags do not count as the same one.
  assert.deepEqual(restartArgs('serve', ['--max-semi-space-size-foo=1'], undefined), [SEMI_SPACE_FLAG, '--max-semi-space-size-foo=1']);
});
