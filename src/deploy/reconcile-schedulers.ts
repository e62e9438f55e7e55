import type { Queue } from 'bullmq';
import type { Config } from '../config/schema.js';
import type { Logger } from '../lib/logger.js';
import { DEPLOY_JOB_NAME, DEPLOY_JOB_OPTIONS, type DeployJobData } from '../queue/job-data.js';

const SCHEDULER_PREFIX = 'reconcile:';

export function reconcileSchedulerId(environment: string): string {
  return `${SCHEDULER_PREFIX}${environment}`;
}

/**
 * One BullMQ job scheduler per environment with `reconcileInterval` > 0, so the branch head
 * is re-applied periodically (drift correction, missed webhooks) however many workers run;
 * schedulers of environments that are gone or set to 0 are removed. Every worker calls this
 * at start: upserting is idempotent.
 */
export async function syncReconcileSchedulers(
  queue: Queue<DeployJobData>,
  config: Config,
  logger: Logger,
): Promise<void> {
  const wanted = new Map<string, number>();
  for (const environment of config.environments) {
    if (environment.reconcileInterval > 0)
      wanted.set(reconcileSchedulerId(environment.name), environment.reconcileInterval);
  }
  for (const [id, every] of wanted) {
    const environment = id.slice(SCHEDULER_PREFIX.length);
    await queue.upsertJobScheduler(
      id,
      { every },
      {
        name: DEPLOY_JOB_NAME,
        // receivedAt of each run is the BullMQ job's own timestamp (the worker creates the record).
        data: { environment, trigger: { kind: 'reconcile' }, receivedAt: new Date().toISOString() },
        opts: {
          // Fewer than a push's: the next interval's run retries anyway.
          attempts: 3,
          backoff: DEPLOY_JOB_OPTIONS.backoff,
          removeOnComplete: { count: 100 },
          removeOnFail: { count: 100 },
        },
      },
    );
  }
  const existing = await queue.getJobSchedulers(0, -1);
  for (const scheduler of existing) {
    const id = scheduler.key;
    if (id.startsWith(SCHEDULER_PREFIX) && !wanted.has(id)) {
      await queue.removeJobScheduler(id);
      logger.info({ scheduler: id }, 'reconcile scheduler removed');
    }
  }
}
