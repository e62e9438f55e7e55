import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseConfigText } from '../../src/config/load.js';
import type { Config, EnvironmentConfig } from '../../src/config/schema.js';
import type { ApplyEngine } from '../../src/deploy/apply-engine.js';
import { createKubeApplyEngine } from '../../src/deploy/kube-apply-engine.js';
import { silentLogger, type Logger } from '../../src/lib/logger.js';
import { createMetrics, type Metrics } from '../../src/lib/metrics.js';
import { waitForRedis } from '../../src/queue/connection.js';
import type { Trigger } from '../../src/queue/job-data.js';
import { connectProducer, type ProducerServices } from '../../src/runtime.js';
import { FINISHED_STATES, type JobRecord } from '../../src/status/job-record.js';
import type { CommitStatusReporter } from '../../src/status/reporters/commit-status-reporter.js';
import { startDeployWorker, type DeployWorker } from '../../workers/deploy.js';
import { createEnvRepo, type EnvRepo } from '../helpers/env-repo.js';
import { kubeconfigPathFromTest } from '../helpers/kube.js';
import { uniquePrefix } from '../helpers/redis.js';

export interface EnvironmentOptions {
  namespace: string;
  healthTimeout?: string;
  reconcileInterval?: string;
  allowNamespaces?: string[];
  allowEmpty?: boolean;
}

/** The config a real deployment would have: one cluster (the test API server), one environment per repo. */
export function testConfigText(options: {
  prefix: string;
  redisUrl: string;
  /** `redis.cluster`: the URL names a node of a Redis Cluster. */
  redisCluster?: boolean;
  environments: { name: string; repo: EnvRepo; env: EnvironmentOptions }[];
  providers?: { github?: string; gitlab?: string };
  /** Another kubeconfig for the cluster (default: the test API server's). */
  kubeconfig?: string;
}): string {
  const environments = options.environments
    .map(
      ({ name, repo, env }) => `
  - name: ${name}
    repo: { provider: github, name: acme/${name}-config, url: "${repo.url}" }
    branch: ${repo.branch}
    path: manifests
    cluster: test
    namespace: ${env.namespace}
    allow: { namespaces: ${JSON.stringify(env.allowNamespaces ?? [env.namespace])} }
    healthTimeout: ${env.healthTimeout ?? '30s'}
    reconcileInterval: ${env.reconcileInterval ?? '0'}${env.allowEmpty ? '\n    allowEmpty: true' : ''}`,
    )
    .join('\n');
  const providers = options.providers
    ? `providers:\n  github: { apiUrl: "${options.providers.github ?? 'https://api.github.com'}" }\n  gitlab: { url: "${options.providers.gitlab ?? 'https://gitlab.com'}" }\n`
    : '';
  return `server: { port: 8080, publicUrl: "http://pushgate.test" }
redis: { prefix: ${options.prefix}, url: "${options.redisUrl}", cluster: ${options.redisCluster ?? false} }
${providers}clusters:
  - name: test
    kubeconfig: ${options.kubeconfig ?? kubeconfigPathFromTest()}
environments:${environments}
`;
}

export interface WorkerHarness {
  config: Config;
  /** The same configuration as YAML, for commands run with --config. */
  configText: string;
  services: ProducerServices;
  metrics: Metrics;
  cacheDir: string;
  environment(name: string): EnvironmentConfig;
  startWorker(options?: {
    /** Where this worker reaches Redis (default: where the harness does): a proxy, say. */
    redisUrl?: string;
    engine?: ApplyEngine;
    reporter?: CommitStatusReporter;
    concurrency?: number;
    lockDurationMs?: number;
    shutdownDeadlineMs?: number;
    fetchMaxBytes?: number;
    requeueIntervalMs?: number;
    configSkewGraceMs?: number;
    treeSweepIntervalMs?: number;
    logger?: Logger;
  }): Promise<DeployWorker>;
  /** What the receiver does on a verified push: enqueue through DeployProducer. */
  webhook(environment: string, sha: string, deliveryId?: string): Promise<string>;
  /** What `pushgate sync` does: joins the environment's sync that is queued and not started. */
  manual(environment: string): Promise<string>;
  /** A manual deploy of its own, as a resume queues one: never joins another. */
  manualOwn(environment: string): Promise<string>;
  waitForJob(id: string, timeoutMs?: number): Promise<JobRecord>;
  close(): Promise<void>;
}

export async function createWorkerHarness(options: {
  redisUrl: string;
  redisCluster?: boolean;
  /** `redis.prefix` (default: one of its own). */
  prefix?: string;
  environments: { name: string; repo: EnvRepo; env: EnvironmentOptions }[];
  providers?: { github?: string; gitlab?: string };
  kubeconfig?: string;
}): Promise<WorkerHarness> {
  const prefix = options.prefix ?? uniquePrefix('worker');
  const configText = testConfigText({
    prefix,
    redisUrl: options.redisUrl,
    redisCluster: options.redisCluster,
    environments: options.environments,
    providers: options.providers,
    kubeconfig: options.kubeconfig,
  });
  const config = parseConfigText(configText, 'test-config.yaml', {});
  const services = connectProducer({ url: options.redisUrl, cluster: config.redis.cluster }, prefix);
  await waitForRedis(services.redis, 5_000);
  const cacheDir = await mkdtemp(path.join(tmpdir(), 'pushgate-worker-cache-'));
  const metrics = createMetrics();
  const workers: DeployWorker[] = [];
  const enqueue = async (
    environment: string,
    trigger: Trigger,
    options: Parameters<ProducerServices['producer']['enqueue']>[5] = {},
  ) => (await services.producer.enqueue(environment, trigger, undefined, undefined, undefined, options)).id;

  return {
    config,
    configText,
    services,
    metrics,
    cacheDir,
    environment: (name) => config.environments.find((e) => e.name === name)!,
    async startWorker(workerOptions = {}) {
      const worker = await startDeployWorker({
        config,
        redisUrl: workerOptions.redisUrl ?? options.redisUrl,
        logger: workerOptions.logger ?? silentLogger(),
        metrics,
        engine: workerOptions.engine ?? createKubeApplyEngine(config, process.env),
        cacheDir,
        reporter: workerOptions.reporter,
        concurrency: workerOptions.concurrency,
        lockDurationMs: workerOptions.lockDurationMs,
        shutdownDeadlineMs: workerOptions.shutdownDeadlineMs,
        fetchMaxBytes: workerOptions.fetchMaxBytes,
        requeueIntervalMs: workerOptions.requeueIntervalMs,
        configSkewGraceMs: workerOptions.configSkewGraceMs,
        treeSweepIntervalMs: workerOptions.treeSweepIntervalMs,
      });
      workers.push(worker);
      return worker;
    },
    webhook: (environment, sha, deliveryId = randomUUID()) =>
      enqueue(environment, { kind: 'webhook', provider: 'github', deliveryId, sha, pusher: 'octocat' }),
    manual: (environment) => enqueue(environment, { kind: 'manual' }),
    manualOwn: (environment) => enqueue(environment, { kind: 'manual' }, { pendingSync: 'lead' }),
    async waitForJob(id, timeoutMs = 45_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const record = await services.store.get(id);
        if (record && FINISHED_STATES.includes(record.state)) return record;
        if (Date.now() > deadline)
          throw new Error(`job ${id} not finished within ${timeoutMs} ms: ${JSON.stringify(record)}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
    async close() {
      await Promise.all(workers.map((worker) => worker.close(5_000)));
      await services.close();
      await rm(cacheDir, { recursive: true, force: true });
    },
  };
}

export { createEnvRepo };
