// vgw serve DIR: standalone gateway. Runs until SIGINT/SIGTERM.
import { startAdminServer } from '../standalone/admin.ts';
import { StandaloneServer } from '../standalone/server.ts';
import { createLogger } from '../util/log.ts';
import { parseDirArgs, PATH_NORMALIZATION_OPTION, pathNormalizationOf, reportUsage, UsageError } from './args.ts';

export async function runServe(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseDirArgs(argv, {
      address: { type: 'string', default: '127.0.0.1' },
      'admin-port': { type: 'string', default: '9901' },
      'admin-address': { type: 'string', default: '127.0.0.1' },
      'work-dir': { type: 'string' },
      shards: { type: 'string' },
      ...PATH_NORMALIZATION_OPTION,
    });
    pathNormalizationOf(parsed.values['path-normalization']);
    const shards = parsed.values.shards;
    if (shards !== undefined && !/^([1-9]|[1-5][0-9]|6[0-4])$/.test(shards)) throw new UsageError('--shards must be 1-64');
    const port = Number(parsed.values['admin-port']);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError('--admin-port must be a port number');
  } catch (err) {
    return reportUsage(err);
  }
  const log = createLogger();
  const v = parsed.values;
  const server = new StandaloneServer({
    dir: parsed.dir,
    defaultAddress: v.address as string,
    workDir: v['work-dir'] as string | undefined,
    shards: v.shards === undefined ? undefined : Number(v.shards),
    pathNormalization: pathNormalizationOf(v['path-normalization']),
    logger: log,
  });
  let admin;
  try {
    admin = await startAdminServer(v['admin-address'] as string, Number(v['admin-port']), () => server.state, server.metrics.registry);
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
