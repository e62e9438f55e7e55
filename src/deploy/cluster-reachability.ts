import type { Env } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { errorMessage } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { createClusterClient } from '../kube/cluster.js';

const CHECK_TIMEOUT_MS = 3_000;

/**
 * Asks each cluster an environment uses for /version and, when one does not answer, logs how
 * to point pushgate at one. Only advice at start-up: deploys retry on their own once it is up.
 */
export async function warnUnreachableClusters(config: Config, env: Env, logger: Logger): Promise<void> {
  const used = new Set(config.environments.map((environment) => environment.cluster));
  await Promise.all(
    config.clusters
      .filter((cluster) => used.has(cluster.name))
      .map(async (cluster) => {
        try {
          const client = createClusterClient(cluster, env);
          // Throttled waits are not logged: no job to name, and the timeout ends them anyway.
          await client.transport.request({
            method: 'GET',
            path: '/version',
            signal: AbortSignal.timeout(CHECK_TIMEOUT_MS),
          });
        } catch (error) {
          logger.warn(
            {
              cluster: cluster.name,
              kubeconfig: cluster.kubeconfig ?? env.KUBECONFIG ?? '~/.kube/config',
              err: errorMessage(error),
            },
            'cluster not reachable: set clusters[].kubeconfig (and context) to one that reaches your API server, ' +
              'or run npm run cluster -- up and use the kubeconfig path it prints',
          );
        }
      }),
  );
}
