import type { Runtime } from '../runtime.js';
import { defaultGitCacheDir } from '../git/mirror-cache.js';
import { closeClusterClients } from '../kube/cluster.js';
import type { Metrics } from '../lib/metrics.js';
import { createCommitStatusReporter } from '../status/reporters/commit-status-reporter.js';
import { startDeployWorker, workerTuningFromEnv, type DeployWorker } from '../../workers/deploy.js';
import { createKubeApplyEngine } from './kube-apply-engine.js';

/** The deploy worker as `pushgate worker` and `pushgate start` run it, from the loaded runtime. */
export async function startWorkerFromRuntime(
  runtime: Runtime,
  redisUrl: string,
  metrics: Metrics,
): Promise<DeployWorker> {
  const { config, secrets, logger, env } = runtime;
  const worker = await startDeployWorker({
    config,
    redisUrl,
    logger,
    metrics,
    engine: createKubeApplyEngine(config, env, { logger }),
    cacheDir: defaultGitCacheDir(env),
    gitToken: secrets.gitToken,
    reporter: createCommitStatusReporter(config, secrets, logger, { redisUrl, metrics }),
    ...workerTuningFromEnv(env),
  });
  return {
    worker: worker.worker,
    async close(deadlineMs) {
      await worker.close(deadlineMs);
      // Keep-alive connections to the API servers would keep the process alive.
      closeClusterClients();
    },
  };
}
