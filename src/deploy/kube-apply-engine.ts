import type { Env } from '../config/load.js';
import type { Config, EnvironmentConfig } from '../config/schema.js';
import { ConfigError } from '../lib/errors.js';
import { createClusterClient, type ClusterClient, type ClusterClientOptions } from '../kube/cluster.js';
import { deployToCluster } from '../kube/deploy.js';
import { renderForCluster } from '../kube/render.js';
import type { ApplyEngine } from './apply-engine.js';

/** The client of the environment's cluster (one cached per cluster). */
export function clusterClientFor(
  config: Config,
  environment: EnvironmentConfig,
  env: Env,
  options: ClusterClientOptions = {},
): ClusterClient {
  const cluster = config.clusters.find((candidate) => candidate.name === environment.cluster);
  if (!cluster)
    throw new ConfigError(
      `environment ${environment.name}: cluster "${environment.cluster}" is not configured`,
    );
  return createClusterClient(cluster, env, options);
}

/** The real apply engine (src/kube) behind the worker's seam. */
export function createKubeApplyEngine(
  config: Config,
  env: Env,
  options: ClusterClientOptions = {},
): ApplyEngine {
  return {
    deploy: async (request) =>
      deployToCluster(clusterClientFor(config, request.environment, env, options), request),
    render: async (environment, manifests) =>
      renderForCluster(clusterClientFor(config, environment, env, options), { environment, manifests }),
  };
}
