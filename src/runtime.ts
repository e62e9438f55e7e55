import type { Queue } from 'bullmq';
import { loadConfig, resolveConfigPath, type Env, type LoadOptions } from './config/load.js';
import type { Config } from './config/schema.js';
import { readSecrets, type Secrets } from './config/secrets.js';
import { createLogger, logLevelFromEnv, type Logger } from './lib/logger.js';
import { ConfigError } from './lib/errors.js';
import { createRedis, type RedisClient, type RedisEndpoint } from './queue/connection.js';
import type { DeployJobData } from './queue/job-data.js';
import { createKeys, type Keys } from './queue/keys.js';
import { createDeployQueue, DeployProducer } from './queue/producer.js';
import { JobStore } from './status/job-store.js';

export interface Runtime {
  configPath: string;
  config: Config;
  secrets: Secrets;
  logger: Logger;
  env: Env;
}

export function loadRuntime(configFlag: string | undefined, env: Env, options: LoadOptions = {}): Runtime {
  const configPath = resolveConfigPath(configFlag, env);
  const config = loadConfig(configPath, env, options);
  const secrets = readSecrets(env);
  const logger = createLogger({ level: logLevelFromEnv(env.LOG_LEVEL) });
  return { configPath, config, secrets, logger, env };
}

/** The Redis-side services the receiver (and the CLI) use: fail-fast connection, queue, job records. */
export interface ProducerServices {
  keys: Keys;
  redis: RedisClient;
  store: JobStore;
  queue: Queue<DeployJobData>;
  producer: DeployProducer;
  close(): Promise<void>;
}

export function requireRedisEndpoint(config: Config, command: string): RedisEndpoint {
  const url = config.redis.url;
  if (!url) {
    throw new ConfigError(
      `redis.url is not set: set REDIS_URL (redis://host:6379) for pushgate ${command}, or use pushgate start, which runs its own redis-server`,
    );
  }
  return { url, cluster: config.redis.cluster };
}

export function connectProducer(endpoint: RedisEndpoint, prefix: string): ProducerServices {
  const keys = createKeys(prefix);
  const redis = createRedis(endpoint, 'producer');
  const store = new JobStore(redis, keys);
  const queue = createDeployQueue(redis, keys);
  const producer = new DeployProducer(queue, store, redis);
  return {
    keys,
    redis,
    store,
    queue,
    producer,
    async close() {
      // The queue's connection drops errors once closed (createDeployQueue): a connection that
      // never became ready needs no settling first.
      await queue.close().catch(() => undefined);
      redis.disconnect();
    },
  };
}
