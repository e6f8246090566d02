// vgw serve DIR: standalone gateway. Runs until SIGINT/SIGTERM.
import { startAdminServer } from '../standalone/admin.ts';
import { StandaloneServer } from '../standalone/server.ts';
import { createLogger } from '../util/log.ts';
import type { z } from 'zod';
import { checkFlags, parseDirArgs, PATH_NORMALIZATION_OPTION, reportUsage } from './args.ts';
import { serveFlags } from '../util/flags.ts';

export async function runServe(argv: string[]): Promise<number> {
  let dir: string;
  let flags: z.output<typeof serveFlags>;
  try {
    const parsed = parseDirArgs(argv, {
      address: { type: 'string', default: '127.0.0.1' },
      'admin-port': { type: 'string', default: '9901' },
      'admin-address': { type: 'string', default: '127.0.0.1' },
      'work-dir': { type: 'string' },
      shards: { type: 'string' },
      http2: { type: 'boolean', default: false },
      ...PATH_NORMALIZATION_OPTION,
    });
    dir = parsed.dir;
    flags = checkFlags(serveFlags, parsed.values);
  } catch (err) {
    return reportUsage(err);
  }
  const log = createLogger();
  const server = new StandaloneServer({
    dir,
    defaultAddress: flags.address,
    workDir: flags['work-dir'],
    shards: flags.shards,
    pathNormalization: flags['path-normalization'],
    http2: flags.http2,
    logger: log,
  });
  let admin;
  try {
    admin = await startAdminServer(flags['admin-address'], flags['admin-port'], () => server.state, server.metrics.registry);
  } catch (err) {
    process.stderr.write(`vgw: admin endpoint: ${(err as Error).message}\n`);
    return 2;
  }
  log.info({ event: 'admin-listening', address: admin.address() }, 'admin endpoint up');
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ event: 'shutdown', signal }, 'stopping');
    admin.close();
    await server.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
  try {
    await server.start();
  } catch (err) {
    // Only set-up failures reach here (e.g. an unusable --work-dir); config errors are
    // reported and waited out, since a fixed manifest can still go live.
    process.stderr.write(`vgw: ${(err as Error).message}\n`);
    admin.close();
    await server.stop().catch(() => undefined);
    return 2;
  }
  return 0;
}
