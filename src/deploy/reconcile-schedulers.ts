import type { JobsOptions, Queue } from 'bullmq';
import { createHash } from 'node:crypto';
import type { RedisClient } from '../queue/connection.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../lib/logger.js';
import { DEPLOY_JOB_NAME, DEPLOY_JOB_OPTIONS, type DeployJobData } from '../queue/job-data.js';
import type { Keys } from '../queue/keys.js';

const SCHEDULER_PREFIX = 'reconcile:';

/**
 * Re-syncs queue behind pushes and manual syncs: BullMQ hands out its wait list (where every
 * other job goes) before any prioritized job. A fleet's re-syncs piled up behind slow health
 * waits would otherwise hold a push back for minutes.
 */
export const RESYNC_PRIORITY = 1;

/** The first run of a new scheduler, or of a changed interval, comes within this. */
const FIRST_RUN_WINDOW_MS = 60_000;

/** How a re-sync run is queued, whether by its scheduler or at once. */
const RESYNC_JOB_OPTIONS: Omit<JobsOptions, 'jobId' | 'repeat' | 'delay'> = {
  // Fewer than a push's: the next interval's run retries anyway.
  attempts: 3,
  backoff: DEPLOY_JOB_OPTIONS.backoff,
  removeOnComplete: { count: 100 },
  removeOnFail: { count: 100 },
  priority: RESYNC_PRIORITY,
};

/**
 * Where in its interval an environment's re-syncs fall (BullMQ's `offset`, at least 1, as 0
 * means none to it): set by the name, so a fleet's are spread over the interval and keep
 * their places whichever worker makes or restores the scheduler. Set by the time a
 * scheduler is made, as BullMQ does, every environment made in the same second would be
 * re-synced in the same second, every interval.
 */
export function reconcilePhase(environment: string, every: number): number {
  if (every <= 1) return 1;
  return 1 + (createHash('sha256').update(environment).digest().readUInt32BE(0) % (every - 1));
}

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
    await upsertScheduler({ queue, redis, keys }, id, every);
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
    await upsertScheduler({ queue, redis, keys }, id, every);
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

async function upsertScheduler(
  { queue, redis, keys }: SchedulerStore,
  id: string,
  every: number,
): Promise<void> {
  const environment = environmentOf(id);
  const current = await queue.getJobScheduler(id);
  const phase = reconcilePhase(environment, every);
  // New, restored after a loss, or of a changed interval: its first run comes soon (below),
  // not up to an interval away at its phase.
  const fresh = current?.every !== every;
  // BullMQ keeps the next run of a scheduler whose interval did not change, whatever offset
  // an upsert gives: one at another phase (made by an earlier version) is made again. Its
  // next run, not its stored offset, tells: the two disagree when an earlier version's
  // worker restored it between this one's remove and upsert.
  if (!fresh && Number(current.next) % every !== phase) await queue.removeJobScheduler(id);
  // receivedAt of each run is the BullMQ job's own timestamp (the worker creates the record).
  const data: DeployJobData = {
    environment,
    trigger: { kind: 'reconcile' },
    receivedAt: new Date().toISOString(),
  };
  await queue.upsertJobScheduler(
    id,
    { every, offset: phase },
    { name: DEPLOY_JOB_NAME, data, opts: RESYNC_JOB_OPTIONS },
  );
  if (!fresh) return;
  // Within a minute, at the environment's place in it: a fleet whose interval changed, or
  // whose schedulers Redis lost, is spread even so.
  const delay = reconcilePhase(environment, FIRST_RUN_WINDOW_MS) - 1;
  // Its place in the interval may come soon enough: no second run shortly beside it.
  const next = Number((await queue.getJobScheduler(id))?.next);
  // Gone meanwhile (a worker of a newer configuration removed it): no run of its own either.
  if (!Number.isFinite(next) || next - Date.now() <= delay + FIRST_RUN_WINDOW_MS) return;
  // Workers starting together each find it fresh: the one that claims it queues the run. A
  // job id of the minute would not do (workers a moment apart across a minute's turn name two
  // runs), nor one of the next run (kept when re-sync is turned off and on again, so the
  // second first run would be taken for the first). The claim outlives any such start.
  const claim = await redis.set(
    keys.resyncFirstRunClaim(environment),
    String(next),
    'PX',
    FIRST_RUN_WINDOW_MS,
    'NX',
  );
  if (claim !== 'OK') return;
  const jobId = `resync-${environment}-${every}-${Date.now()}`;
  await queue.add(DEPLOY_JOB_NAME, data, { ...RESYNC_JOB_OPTIONS, jobId, delay });
}
