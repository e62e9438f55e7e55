import type { Queue } from 'bullmq';
import type { Logger } from '../lib/logger.js';
import type { RedisClient } from '../queue/connection.js';
import type { Keys } from '../queue/keys.js';
import { DEPLOY_JOB_NAME, DEPLOY_JOB_OPTIONS, type DeployJobData } from '../queue/job-data.js';
import type { JobRecord } from '../status/job-record.js';
import type { JobStore } from '../status/job-store.js';
import { errorMessage } from '../lib/errors.js';

/** Only a queued record older than this is judged lost: a younger one may still have its enqueue in flight. */
export const REQUEUE_AFTER_MS = 2 * 60_000;
/** How often each worker looks. */
export const REQUEUE_INTERVAL_MS = 60_000;

/**
 * Whether this worker runs this interval's repair pass (lost queue entries, missing
 * schedulers, moves of a changed configuration): one worker of a configuration per interval
 * does, the first to ask, since each pass reads every environment's records and the others
 * would find the same. Workers of another configuration run their own: only the newest
 * configuration's workers move an environment. Held for most of an interval, so the holder's
 * next turn finds it lapsed; a holder gone is replaced within an interval.
 */
export async function claimRepairPass(
  { redis, keys }: { redis: RedisClient; keys: Keys },
  configuration: string,
  intervalMs: number,
): Promise<boolean> {
  const holdMs = Math.max(1, Math.floor(intervalMs * 0.9));
  return (await redis.set(keys.repairPass(configuration), '1', 'PX', holdMs, 'NX')) === 'OK';
}

/** Most queued records looked at per environment and pass: a backlog that large is not lost. */
const SCAN_LIMIT = 200;

export interface RequeueInput {
  store: JobStore;
  queue: Queue<DeployJobData>;
  environments: readonly string[];
  logger: Logger;
  now?: number;
  olderThanMs?: number;
}

/**
 * Re-queues every job whose record is `queued` but which has no live queue entry. The
 * receiver answers 503 when a claim's reply is lost (its entry is then removed), and a worker
 * drops an entry that arrives ahead of its record; either way a record can be left queued
 * with nothing to run it, and the receiver only repairs it when the same delivery or commit
 * comes again. Adding by job id is a no-op for BullMQ when the entry exists, so workers
 * running this side by side queue a job once. Returns the ids re-queued.
 */
export async function requeueLostJobs(input: RequeueInput): Promise<string[]> {
  const now = input.now ?? Date.now();
  const olderThanMs = input.olderThanMs ?? REQUEUE_AFTER_MS;
  const requeued: string[] = [];
  for (const environment of input.environments) {
    const records = await input.store.list({ environment, state: 'queued', limit: SCAN_LIMIT });
    for (const record of records) {
      if (now - Date.parse(record.receivedAt) < olderThanMs) continue;
      // One record that cannot be repaired must not stop the repair of the others.
      try {
        if (await requeueIfLost(input, environment, record)) requeued.push(record.id);
      } catch (error) {
        input.logger.warn(
          { jobId: record.id, environment, err: errorMessage(error) },
          'could not queue again a job record that lost its queue entry',
        );
      }
    }
  }
  return requeued;
}

async function requeueIfLost(input: RequeueInput, environment: string, record: JobRecord): Promise<boolean> {
  const state = await input.queue.getJobState(record.id);
  if (state !== 'unknown' && state !== 'completed' && state !== 'failed') return false;
  // Read again: the scan is older than the entry's state, and a job that completed meanwhile
  // (a re-sync that waited behind a long deploy, say) wrote its record before BullMQ knew.
  if ((await input.store.get(record.id))?.state !== 'queued') return false;
  if (record.trigger.kind === 'reconcile' && !record.target) {
    // A re-sync's id is its scheduler's (BullMQ takes no such custom id back), and the next
    // interval's run does the same work: this one is closed, not queued again. (One that
    // moves a changed configuration carries its target and an id of its own: queued again.)
    await input.store.update(record.id, {
      state: 'superseded',
      finishedAt: new Date().toISOString(),
      error: null,
      message: "lost its queue entry; the next interval's re-sync does its work",
      // Bookkeeping of a running job (JobStore.finish drops it too).
      creating: undefined,
      configuring: undefined,
    });
    input.logger.warn(
      { jobId: record.id, environment, entry: state },
      'queued re-sync lost its queue entry: closed',
    );
    return false;
  }
  // An entry that ended without touching the record (dropped as a duplicate) holds the id.
  if (state !== 'unknown') await input.queue.remove(record.id);
  await input.queue.add(
    DEPLOY_JOB_NAME,
    {
      environment,
      trigger: record.trigger,
      receivedAt: record.receivedAt,
      ...(record.target ? { target: record.target } : {}),
    },
    { ...DEPLOY_JOB_OPTIONS, jobId: record.id },
  );
  input.logger.warn(
    { jobId: record.id, environment, entry: state },
    'job record was queued without a queue entry: queued again',
  );
  return true;
}
