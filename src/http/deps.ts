import type { Queue } from 'bullmq';
import type { RedisClient } from '../queue/connection.js';
import type { Config } from '../config/schema.js';
import type { Secrets } from '../config/secrets.js';
import type { Logger } from '../lib/logger.js';
import type { Metrics } from '../lib/metrics.js';
import type { DeployJobData } from '../queue/job-data.js';
import type { DeployProducer } from '../queue/producer.js';
import type { JobStore } from '../status/job-store.js';

/** Everything the HTTP side uses, passed in so tests build it from real parts on spare ports. */
export interface AppDeps {
  config: Config;
  secrets: Secrets;
  logger: Logger;
  producer: Pick<DeployProducer, 'enqueue' | 'wakeHeld'>;
  store: JobStore;
  queue: Queue<DeployJobData>;
  /** The fail-fast producer connection: /readyz pings it. */
  redis: RedisClient;
  /** Shared with the worker in `pushgate start`, so one /metrics shows both. */
  metrics: Metrics;
  /** Milliseconds since the epoch; injectable for the webhook timestamp window. */
  now?: () => number;
}
