// `varnishd -C`: VCL to C, as varnishd does before every load, without starting a cache. It
// runs VCC only (the C compiler is not involved), which is where generated VCL can be wrong.
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type VccResult = { ok: true } | { ok: false; message: string };

export async function vccCompile(vcl: string): Promise<VccResult> {
  const dir = await mkdtemp(join(tmpdir(), 'vgw-fuzz-vcc-'));
  try {
    // varnishd drops privileges before reading the file.
    await chmod(dir, 0o755);
    const file = join(dir, 'fuzz.vcl');
    await writeFile(file, vcl, { mode: 0o644 });
    return await new Promise<VccResult>((resolve) => {
      execFile(
        'varnishd',
        ['-C', '-n', join(dir, 'n'), '-f', file, '-p', 'vcc_allow_inline_c=off'],
        { maxBuffer: 256 * 1024 * 1024, timeout: 60_000 },
        (err, _stdout, stderr) => {
          if (!err) return resolve({ ok: true });
          // The C source goes to stderr too; VCC's own complaint starts at its banner.
          const at = stderr.indexOf('Message from VCC-compiler');
          resolve({ ok: false, message: (at >= 0 ? stderr.slice(at) : `${err.message}\n${stderr.slice(-2000)}`).slice(0, 4000) });
        },
      );
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
