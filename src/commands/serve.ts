import { createApp } from '../http/app.js';
import { serverEndpoints } from '../http/endpoints.js';
import { listen, type RunningServer } from '../http/server.js';
import { createMetrics, initialiseSeries } from '../lib/metrics.js';
import { waitForShutdownSignal } from '../lib/shutdown.js';
import { errorMessage } from '../lib/errors.js';
import { RedisModeError, waitForRedis } from '../queue/connection.js';
import { connectProducer, loadRuntime, requireRedisEndpoint } from '../runtime.js';
import type { CommandArgs } from './command.js';
import { logStartupWarnings } from './startup-warnings.js';

const REDIS_START_WAIT_MS = 5_000;

/** `pushgate serve`: the webhook receiver and status API, until SIGTERM/SIGINT. */
export async function runServe(args: CommandArgs): Promise<number> {
  const runtime = loadRuntime(args.config, args.env);
  const { config, secrets, logger } = runtime;
  const services = connectProducer(requireRedisEndpoint(config, 'serve'), config.redis.prefix);
  let server: RunningServer;
  try {
    const metrics = createMetrics();
    initialiseSeries(metrics, { webhooks: true });
    const app = createApp({ config, secrets, logger, metrics, ...services });
    // Give Redis a moment so the first deliveries are not refused; past that, serve anyway:
    // /readyz says 503 and webhooks get 503 (the sender redelivers) until Redis answers.
    // Except when Redis is not in the mode redis.cluster says: no wait can mend that (exit 2).
    await waitForRedis(services.redis, REDIS_START_WAIT_MS).catch((error: unknown) => {
      if (error instanceof RedisModeError) throw error;
      logger.warn({ err: errorMessage(error) }, 'Redis does not answer yet; webhooks get 503 until it does');
    });
    server = await listen(app, config.server.host, config.server.port);
  } catch (error) {
    // A port taken or an address this machine lacks: the connection still retrying Redis
    // would keep the process alive after the error is printed.
    await services.close();
    throw error;
  }
  logger.info(
    {
      url: server.url,
      ...serverEndpoints(server, config.server.publicUrl),
      config: runtime.configPath,
      environments: config.environments.length,
    },
    'pushgate serve listening',
  );
  logStartupWarnings(logger, config, secrets, server);

  const signal = await waitForShutdownSignal();
  logger.info({ signal }, 'shutting down: no new connections, finishing requests in flight');
  await server.close();
  await services.close();
  logger.info('stopped');
  return 0;
}
