// Reading VCC's error output (varnishd -C): the message, wherever VCC puts it relative to the
// location, and the VCL line it names.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseVccError, VccUnavailableError } from '../../src/varnish/vcc-check.ts';

test('message before the location (regex errors)', () => {
  const out = [
    "Could not delete 'vcl_boot.1/vgc.sym': No such file or directory",
    'Message from VCC-compiler:',
    'Regexp compilation error:',
    '',
    'invalid range in character class',
    '',
    "('/tmp/x/check.vcl' Line 4 Pos 17) -- (Pos 15)",
    '  if (req.url ~ "^(?:[\\w-.]+)$") { return (synth(200)); }',
    '---------------------------------------------------------',
    '',
    'Running VCC-compiler failed, exited with 2',
    'VCL compilation failed',
  ].join('\n');
  assert.deepEqual(parseVccError(out), { ok: false, message: 'Regexp compilation error: invalid range in character class', line: 4 });
});

test('message after the location and its source excerpt', () => {
  const out = [
    'Message from VCC-compiler:',
    "('/tmp/x/boot.vcl' Line 210 Pos 17) -- (Pos 21)",
    '  header.regsub(bereq, "x", "y");',
    '----------------#####------------',
    "Not available in subroutine 'vcl_pipe'.",
    'Running VCC-compiler failed, exited with 2',
  ].join('\n');
  assert.deepEqual(parseVccError(out), { ok: false, message: "Not available in subroutine 'vcl_pipe'.", line: 210 });
});

test('output without a VCC message means varnishd -C itself failed', () => {
  assert.throws(() => parseVccError('Error: Cannot open -n directory\n'), VccUnavailableError);
});
