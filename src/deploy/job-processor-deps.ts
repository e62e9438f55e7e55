import type { Config, EnvironmentConfig } from '../config/schema.js';
import type { Logger } from '../lib/logger.js';
import type { JobRecord } from '../status/job-record.js';
import type { JobStore } from '../status/job-store.js';
import type { runDeployPipeline } from './deploy-pipeline.js';
import type { EnvironmentLock } from './environment-lock.js';
import type { JobRun } from './job-run.js';
import type { WorkerPresence } from './worker-presence.js';

export interface ProcessDeps {
  config: Config;
  logger: Logger;
  store: JobStore;
  locks: EnvironmentLock;
  run: (environment: EnvironmentConfig, record: JobRecord, logger: Logger) => JobRun;
  pipeline: Parameters<typeof runDeployPipeline>[0];
  signal: AbortSignal;
  /** CONFIG_SKEW_GRACE_MS unless a test shortens it. */
  configSkewGraceMs?: number;
  /**
   * Which configurations the running workers have (absent: the receiver's configuration
   * decides, as when Redis knows of no worker).
   */
  presence?: WorkerPresence;
}
