import { waitForShutdownSignal } from '../lib/shutdown.js';
import { startWorkerFromRuntime } from '../deploy/worker-process.js';
import { createMetrics, initialiseSeries, statusProviders } from '../lib/metrics.js';
import { serveWorkerMetrics } from '../http/worker-metrics-server.js';
import { metricsTokens } from '../http/auth.js';
import { kubeconfigProblems } from '../kube/cluster.js';
import { loadRuntime, requireRedisEndpoint } from '../runtime.js';
import { checkedWorkerTuningFromEnv, workerMetricsPortFromEnv } from '../../workers/deploy.js';
import type { CommandArgs } from './command.js';

/** `pushgate worker`: takes deploy jobs until SIGTERM/SIGINT, then finishes (or hands back) the current ones. */
export async function runWorker(args: CommandArgs): Promise<number> {
  const runtime = loadRuntime(args.config, args.env);
  const { url: redisUrl } = requireRedisEndpoint(runtime.config, 'worker');
  // Bad tuning variables are invalid configuration (exit 2): refused before anything starts.
  await checkedWorkerTuningFromEnv(args.env);
  // Not fatal: the other clusters' deploys go on, and a kubeconfig mounted late is read at the next job.
  for (const problem of kubeconfigProblems(runtime.config.clusters, args.env)) {
    runtime.logger.warn(
      { cluster: problem.cluster, err: problem.message },
      'cluster kubeconfig cannot be loaded: deploys to it fail until it is fixed',
    );
  }
  const metrics = createMetrics();
  initialiseSeries(metrics, {
    environments: runtime.config.environments.map((environment) => environment.name),
    statusProviders: statusProviders(runtime.secrets),
  });
  const port = workerMetricsPortFromEnv(args.env);
  // Up before the worker waits for Redis: its liveness probe must not restart a worker that
  // is only waiting (and saying so in its log).
  const server =
    port === undefined ? undefined : await serveWorkerMetrics(port, metrics, metricsTokens(runtime.secrets));
  if (server) runtime.logger.info({ port }, 'worker metrics listening');
  const closeServer = (): Promise<void> =>
    new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  let worker;
  try {
    worker = await startWorkerFromRuntime(runtime, redisUrl, metrics);
  } catch (error) {
    await closeServer();
    throw error;
  }

  const signal = await waitForShutdownSignal();
  runtime.logger.info({ signal }, 'worker stopping');
  await worker.close();
  await closeServer();
  runtime.logger.info('worker stopped');
  return 0;
}
