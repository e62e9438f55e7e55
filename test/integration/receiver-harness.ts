import { configSchema, type Config } from '../../src/config/schema.js';
import type { Secrets } from '../../src/config/secrets.js';
import { createApp } from '../../src/http/app.js';
import { listen, type RunningServer } from '../../src/http/server.js';
import { createLogger } from '../../src/lib/logger.js';
import { createMetrics, type Metrics } from '../../src/lib/metrics.js';
import { waitForRedis } from '../../src/queue/connection.js';
import { connectProducer, type ProducerServices } from '../../src/runtime.js';
import { uniquePrefix } from '../helpers/redis.js';

export const GITHUB_REPO = 'acme/env-config';
export const GITLAB_PROJECT = 'platform/deploy/env-config';

/** Environments the receiver tests route to: two fed by one GitHub branch, one by GitLab. */
export const TEST_ENVIRONMENTS = [
  { name: 'staging', provider: 'github', repo: GITHUB_REPO, branch: 'env/staging' },
  { name: 'production', provider: 'github', repo: GITHUB_REPO, branch: 'env/production' },
  { name: 'production-eu', provider: 'github', repo: GITHUB_REPO, branch: 'env/production' },
  { name: 'gl-staging', provider: 'gitlab', repo: GITLAB_PROJECT, branch: 'env/staging' },
] as const;

export function testConfig(
  redisUrl: string,
  server: Record<string, unknown> = {},
  redisCluster = false,
  prefix = uniquePrefix('receiver'),
): Config {
  return configSchema.parse({
    server: { host: '127.0.0.1', port: 0, ...server },
    redis: { url: redisUrl, prefix, cluster: redisCluster },
    clusters: [{ name: 'local' }],
    environments: TEST_ENVIRONMENTS.map((environment) => ({
      name: environment.name,
      repo: {
        provider: environment.provider,
        name: environment.repo,
        url: `https://git.example.invalid/${environment.repo}.git`,
      },
      branch: environment.branch,
      cluster: 'local',
      // Two environments of one branch deploy to two places (here, namespaces).
      namespace: environment.name,
    })),
  });
}

export function testSecrets(overrides: Partial<Secrets> = {}): Secrets {
  return {
    githubWebhookSecrets: ['github-secret'],
    gitlabWebhookTokens: ['gitlab-token'],
    gitlabSigningTokens: [],
    gitToken: undefined,
    githubToken: undefined,
    gitlabToken: undefined,
    apiTokens: [],
    ...overrides,
  };
}

export interface Receiver {
  url: string;
  config: Config;
  services: ProducerServices;
  metrics: Metrics;
  /** Every log line the app wrote, parsed. */
  logs: Record<string, unknown>[];
  /** The raw log output, to check that no secret ever reached it. */
  logText(): string;
  close(): Promise<void>;
}

/** The real app on a spare loopback port, with its own Redis prefix. */
export async function startReceiver(
  redisUrl: string,
  options: {
    secrets?: Partial<Secrets>;
    server?: Record<string, unknown>;
    now?: () => number;
    /** `redis.cluster` */
    redisCluster?: boolean;
    /** Serve even when Redis is not usable (the readiness tests). */
    skipRedisWait?: boolean;
    /** `redis.prefix` (default: one of its own). */
    prefix?: string;
  } = {},
): Promise<Receiver> {
  const config = testConfig(redisUrl, options.server, options.redisCluster, options.prefix);
  const services = connectProducer({ url: redisUrl, cluster: config.redis.cluster }, config.redis.prefix);
  if (!options.skipRedisWait) await waitForRedis(services.redis, 5_000);
  const metrics = createMetrics();
  const raw: string[] = [];
  const logger = createLogger({
    level: 'debug',
    destination: { write: (line: string) => void raw.push(line) },
  });
  const app = createApp({
    config,
    secrets: testSecrets(options.secrets),
    logger,
    metrics,
    producer: services.producer,
    store: services.store,
    queue: services.queue,
    redis: services.redis,
    now: options.now,
  });
  const server: RunningServer = await listen(app, '127.0.0.1', 0);
  return {
    url: server.url,
    config,
    services,
    metrics,
    get logs() {
      return raw.map((line) => JSON.parse(line) as Record<string, unknown>);
    },
    logText: () => raw.join(''),
    async close() {
      await server.close(1_000);
      await services.close();
    },
  };
}

/** Number of BullMQ jobs in any state: proof that something was, or was not, queued. */
export async function queuedCount(receiver: Receiver): Promise<number> {
  return receiver.services.queue.getJobCountByTypes(
    'waiting',
    'delayed',
    'active',
    'prioritized',
    'completed',
    'failed',
  );
}
