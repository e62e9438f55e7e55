import type { Env } from '../config/load.js';
import type { Config, EnvironmentConfig } from '../config/schema.js';
import { ConfigError } from '../lib/errors.js';
import { createClusterClient, type ClusterClient } from '../kube/cluster.js';
import { deployToCluster } from '../kube/deploy.js';
import { renderForCluster } from '../kube/render.js';
import type { ApplyEngine } from './apply-engine.js';

/** The real apply engine (src/kube) behind the worker's seam: one cached client per cluster. */
export function createKubeApplyEngine(config: Config, env: Env): ApplyEngine {
  const clientFor = (environment: EnvironmentConfig): ClusterClient => {
    const cluster = config.clusters.find((candidate) => candidate.name === environment.cluster);
    if (!cluster)
      throw new ConfigError(
        `environment ${environment.name}: cluster "${environment.cluster}" is not configured`,
      );
    return createClusterClient(cluster, env);
  };
  return {
    deploy: async (request) => deployToCluster(clientFor(request.environment), request),
    render: async (environment, manifests) =>
      renderForCluster(clientFor(environment), { environment, manifests }),
  };
}
