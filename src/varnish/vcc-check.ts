// `varnishd -C`: VCC translates a VCL file to C and exits, without a running varnishd and
// without the C compiler. It compiles every regex literal with PCRE2 as it goes, so it is the
// authority on both "does this VCL compile" and "does PCRE2 accept this pattern".
//
// varnishd -C needs a work directory (-n); it removes it when done, so each run gets its own
// under a fresh temporary directory. varnishd may drop privileges to its own user, which must
// be able to read the VCL file: the directory is made world-readable.
//
// After VCC, varnishd 7.1 -C also runs the C compiler (gcc -O2 by default: seconds on a large
// VCL) and test-loads the result. Only VCC's verdict matters here, so the C compiler is a
// no-op (`cc_command=exec true`) and the load failure that follows counts as success: VCC has
// printed the generated C source by then, which a VCC error never does.
import { spawn } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface VccCheckOptions {
  /** varnishd binary; default "varnishd" on PATH. */
  varnishdPath?: string;
  /** A run that takes longer is killed and reported as unavailable; default 60 s. */
  timeoutMs?: number;
}

export type VccResult =
  | { ok: true }
  /** VCC refused the VCL: its message (without the C source), and the line it names, if any. */
  | { ok: false; message: string; line?: number };

/** varnishd -C could not be run at all (binary missing, killed, unexpected output). */
export class VccUnavailableError extends Error {
  override name = 'VccUnavailableError';
}

/** Output kept from one run: VCC's errors come first; a success prints the whole C source. */
const MAX_OUTPUT = 64 * 1024;
const VCL_NAME = 'check.vcl';
const NO_CC = 'cc_command=exec true';
/** Start of the C source VCC prints once it has translated the VCL. */
const C_SOURCE_MARKER = '---===###';

export async function vccCheck(vcl: string, options: VccCheckOptions = {}): Promise<VccResult> {
  const dir = await mkdtemp(join(tmpdir(), 'vgw-vcc-'));
  try {
    await chmod(dir, 0o755);
    const file = join(dir, VCL_NAME);
    await writeFile(file, vcl, { mode: 0o644 });
    const args = ['-C', '-p', NO_CC, '-n', join(dir, 'work'), '-f', file];
    const { code, output } = await run(options.varnishdPath ?? 'varnishd', args, options.timeoutMs ?? 60_000);
    // User text can appear in the C source (regex literals) and in VCC's source excerpt, so
    // only what comes first decides: VCC's message, or the C source.
    const vccAt = output.indexOf('Message from VCC-compiler:');
    const sourceAt = output.indexOf(C_SOURCE_MARKER);
    if (vccAt >= 0 && (sourceAt < 0 || vccAt < sourceAt)) return parseVccError(output);
    if (code === 0 || sourceAt >= 0) return { ok: true };
    throw new VccUnavailableError(`varnishd -C failed without a VCC message: ${output.trim().slice(0, 500)}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** VCC's message ("Message from VCC-compiler:" up to its source excerpt) and the line it names. */
export function parseVccError(output: string): VccResult & { ok: false } {
  const start = output.indexOf('Message from VCC-compiler:');
  if (start < 0) throw new VccUnavailableError(`varnishd -C failed without a VCC message: ${output.trim().slice(0, 500)}`);
  const body = output.slice(start + 'Message from VCC-compiler:'.length).split('\nRunning VCC-compiler failed')[0];
  // VCC writes its message before or after the location, depending on the error; the location
  // is followed by the source line and a marker line (----###---), which are not the message.
  const lines = body.split('\n');
  const locationAt = lines.findIndex((l) => /^\('[^']*' Line \d+ Pos \d+\)/.test(l.trim()));
  const location = locationAt < 0 ? null : /Line (\d+)/.exec(lines[locationAt]);
  const dropped = new Set<number>();
  if (locationAt >= 0) {
    dropped.add(locationAt);
    if (locationAt + 1 < lines.length) dropped.add(locationAt + 1);
    if (/^[-#]+$/.test(lines[locationAt + 2]?.trim() ?? '')) dropped.add(locationAt + 2);
  }
  const message = lines
    .filter((_, i) => !dropped.has(i))
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .join(' ')
    .slice(0, 500);
  return location ? { ok: false, message, line: Number(location[1]) } : { ok: false, message };
}

function run(cmd: string, args: string[], timeoutMs: number): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    let output = '';
    const keep = (chunk: Buffer) => {
      if (output.length < MAX_OUTPUT) output += chunk.toString('utf8', 0, Math.min(chunk.length, MAX_OUTPUT - output.length));
    };
    const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    proc.stdout.on('data', keep);
    proc.stderr.on('data', keep);
    const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
    proc.on('error', (err) => {
      clearTimeout(timer);
      reject(new VccUnavailableError(`cannot run ${cmd} -C: ${err.message}`));
    });
    proc.on('close', (code, signal) => {
      clearTimeout(timer);
      if (signal) reject(new VccUnavailableError(`${cmd} -C was killed (${signal})`));
      else resolve({ code: code ?? 1, output });
    });
  });
}
