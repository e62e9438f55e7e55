import { waitForShutdownSignal } from '../lib/shutdown.js';
import { warnUnreachableClusters } from '../deploy/cluster-reachability.js';
import { startWorkerFromRuntime } from '../deploy/worker-process.js';
import { checkedWorkerTuningFromEnv, type DeployWorker } from '../../workers/deploy.js';
import { createApp } from '../http/app.js';
import { serverEndpoints } from '../http/endpoints.js';
import { listen } from '../http/server.js';
import { startEmbeddedRedis, type EmbeddedRedis } from '../lib/embedded-redis.js';
import { embeddedRedisDir } from '../lib/embedded-redis-url-file.js';
import { createMetrics, initialiseSeries, statusProviders } from '../lib/metrics.js';
import { withoutPassword } from '../lib/redact-secrets.js';
import { connectProducer, loadRuntime } from '../runtime.js';
import type { CommandArgs } from './command.js';
import { logStartupWarnings } from './startup-warnings.js';

/**
 * `pushgate start`: receiver and worker in one process. Without redis.url it runs a private
 * redis-server (data under .pushgate/redis) and stops it last, after the worker drained. Its
 * URL, password included, is in .pushgate/redis/url while it runs, where status and sync find it.
 */
export async function runStart(args: CommandArgs): Promise<number> {
  // SPEC §2: `url: ${REDIS_URL}` is optional here; unset, start runs its own redis-server.
  const runtime = loadRuntime(args.config, args.env, { unsetWhenVariableMissing: ['redis.url'] });
  const { config, secrets, logger } = runtime;
  // Bad tuning variables are invalid configuration (exit 2): refused before anything starts.
  await checkedWorkerTuningFromEnv(runtime.env);
  let embedded: EmbeddedRedis | undefined;
  let redisUrl = config.redis.url;
  if (!redisUrl) {
    embedded = await startEmbeddedRedis({ dataDir: embeddedRedisDir(), logger, env: args.env });
    redisUrl = embedded.url;
    logger.info(
      { url: withoutPassword(redisUrl), urlFile: embedded.urlFile, pid: embedded.pid },
      'embedded redis-server started',
    );
  }
  try {
    const metrics = createMetrics();
    initialiseSeries(metrics, {
      webhooks: true,
      environments: config.environments.map((environment) => environment.name),
      statusProviders: statusProviders(secrets),
    });
    // An embedded redis-server is standalone: redis.cluster needs redis.url (the schema says so).
    const services = connectProducer({ url: redisUrl, cluster: config.redis.cluster }, config.redis.prefix);
    let worker: DeployWorker | undefined;
    let server: Awaited<ReturnType<typeof listen>> | undefined;
    try {
      const app = createApp({ config, secrets, logger, metrics, ...services });
      // The same server as `serve`: slow-client timeouts, keep-alive past a load balancer's.
      // Listening before the worker waits for Redis, as `serve` does: /healthz answers and a
      // webhook gets 503 (its sender redelivers) while Redis is away, instead of no answer.
      server = await listen(app, config.server.host, config.server.port);
      worker = await startWorkerFromRuntime(runtime, redisUrl, metrics);
    } catch (error) {
      // An open connection (or worker) would keep the process alive after the error is printed.
      await server?.close();
      await worker?.close();
      await services.close();
      throw error;
    }
    logger.info(
      {
        url: server.url,
        port: server.port,
        ...serverEndpoints(server, config.server.publicUrl),
        environments: config.environments.map((e) => e.name),
      },
      'pushgate started',
    );
    logStartupWarnings(logger, config, secrets, server);
    void warnUnreachableClusters(config, args.env, logger);
    if (config.environments.length === 0) {
      logger.warn(
        { config: runtime.configPath },
        'no environments configured: add one under environments, with a cluster whose kubeconfig (or context) ' +
          'reaches your API server; for a local one, run npm run cluster -- up and point clusters[].kubeconfig at the path it prints',
      );
    }

    const signal = await waitForShutdownSignal();
    logger.info({ signal }, 'pushgate stopping');
    // Stop taking webhooks first, then let the worker finish, then the connections, Redis last.
    await server.close();
    await worker.close();
    await services.close();
    logger.info('pushgate stopped');
    return 0;
  } finally {
    await embedded?.stop();
  }
}
