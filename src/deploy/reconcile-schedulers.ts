import type { Queue } from 'bullmq';
import type { RedisClient } from '../queue/connection.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../lib/logger.js';
import { DEPLOY_JOB_NAME, DEPLOY_JOB_OPTIONS, type DeployJobData } from '../queue/job-data.js';
import type { Keys } from '../queue/keys.js';

const SCHEDULER_PREFIX = 'reconcile:';

export function reconcileSchedulerId(environment: string): string {
  return `${SCHEDULER_PREFIX}${environment}`;
}

export interface SchedulerStore {
  queue: Queue<DeployJobData>;
  redis: RedisClient;
  keys: Keys;
}

/**
 * One BullMQ job scheduler per environment with `reconcileInterval` > 0, so the branch head
 * is re-applied periodically (drift correction, missed webhooks) however many workers run;
 * schedulers of environments that are gone or set to 0 are removed. Every worker calls this
 * at start: upserting is idempotent. Removing one sets `reconcile-removed:<env>`, so workers
 * still on the old configuration do not take the removal for a loss and restore it;
 * upserting one clears it.
 */
export async function syncReconcileSchedulers(
  { queue, redis, keys }: SchedulerStore,
  config: Config,
  logger: Logger,
): Promise<void> {
  const wanted = wantedSchedulers(config);
  for (const [id, every] of wanted) {
    await upsertScheduler(queue, id, every);
    await redis.del(keys.reconcileRemoved(environmentOf(id)));
  }
  const existing = await queue.getJobSchedulers(0, -1);
  for (const scheduler of existing) {
    const id = scheduler.key;
    if (id.startsWith(SCHEDULER_PREFIX) && !wanted.has(id)) {
      // Marked, so that workers still on the old configuration (a rolling update) do not
      // take the removal for a loss and restore it.
      await redis.set(keys.reconcileRemoved(environmentOf(id)), new Date().toISOString());
      await queue.removeJobScheduler(id);
      logger.info({ scheduler: id }, 'reconcile scheduler removed');
    }
  }
}

/**
 * Re-creates the schedulers Redis no longer has (a failover or restart that lost writes):
 * they are made at worker start only, and the periodic re-sync is what catches up after
 * such a loss. Workers call this periodically; upserting only the missing leaves the others'
 * next run where it is.
 */
export async function restoreMissingSchedulers(
  { queue, redis, keys }: SchedulerStore,
  config: Config,
  logger: Logger,
): Promise<void> {
  for (const [id, every] of wantedSchedulers(config)) {
    // A removed scheduler may still read back, without its `every`.
    if ((await queue.getJobScheduler(id))?.every) continue;
    if ((await redis.exists(keys.reconcileRemoved(environmentOf(id)))) === 1) continue;
    await upsertScheduler(queue, id, every);
    logger.warn({ scheduler: id }, 'reconcile scheduler was missing from Redis (data lost?): re-created');
  }
}

function wantedSchedulers(config: Config): Map<string, number> {
  const wanted = new Map<string, number>();
  for (const environment of config.environments) {
    if (environment.reconcileInterval > 0)
      wanted.set(reconcileSchedulerId(environment.name), environment.reconcileInterval);
  }
  return wanted;
}

function environmentOf(schedulerId: string): string {
  return schedulerId.slice(SCHEDULER_PREFIX.length);
}

async function upsertScheduler(queue: Queue<DeployJobData>, id: string, every: number): Promise<void> {
  const environment = environmentOf(id);
  const current = await queue.getJobScheduler(id);
  // BullMQ keeps a scheduler's phase (`offset`, up to the interval it was made with) when its
  // `every` changes, and aligns a run that fell due while no worker ran to it: after a change
  // from 10m to 3s the next run came up to 10 minutes late. A phase within the interval mends
  // it; this one puts the first run of a changed interval a second from now, as BullMQ's own
  // (run at once) would, rather than a whole new interval away.
  const stalePhase =
    current?.every !== undefined && (current.every !== every || (current.offset ?? 0) >= every);
  const offset = Math.max(1, (Date.now() + Math.min(1_000, every - 1)) % every);
  await queue.upsertJobScheduler(
    id,
    { every, ...(stalePhase ? { offset } : {}) },
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
