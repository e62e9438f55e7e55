import { createApp } from '../http/app.js';
import { listen } from '../http/server.js';
import { createMetrics } from '../lib/metrics.js';
import { waitForShutdownSignal } from '../lib/shutdown.js';
import { waitForRedis } from '../queue/connection.js';
import { connectProducer, loadRuntime, requireRedisUrl } from '../runtime.js';
import type { CommandArgs } from './command.js';

/** `pushgate serve`: the webhook receiver and status API, until SIGTERM/SIGINT. */
export async function runServe(args: CommandArgs): Promise<number> {
  const runtime = loadRuntime(args.config, args.env);
  const { config, secrets, logger } = runtime;
  const services = connectProducer(requireRedisUrl(config, 'serve'), config.redis.prefix);
  const metrics = createMetrics();
  const app = createApp({ config, secrets, logger, metrics, ...services });
  const server = await listen(app, config.server.host, config.server.port);
  logger.info(
    { url: server.url, config: runtime.configPath, environments: config.environments.length },
    'pushgate serve listening',
  );
  // Not fatal: /readyz says 503 and webhooks get 503 until Redis answers.
  waitForRedis(services.redis, 5_000).catch(() =>
    logger.warn('Redis does not answer yet; webhooks get 503 until it does'),
  );

  const signal = await waitForShutdownSignal();
  logger.info({ signal }, 'shutting down: no new connections, finishing requests in flight');
  await server.close();
  await services.close();
  logger.info('stopped');
  return 0;
}
