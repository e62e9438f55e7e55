import { DelayedError, type Job } from 'bullmq';
import type { EnvironmentConfig } from '../config/schema.js';
import type { Logger } from '../lib/logger.js';
import type { DeployJobData } from '../queue/job-data.js';
import type { JobRecord } from '../status/job-record.js';
import { describeSuspension, type Suspension } from '../status/suspensions.js';
import type { HeldLock } from './environment-lock.js';
import type { ProcessDeps } from './job-processor-deps.js';

/**
 * A job held by a suspension looks again this often: a resume queues a deploy of the head and
 * wakes the held jobs at once (DeployProducer.wakeHeld), so this is only the backstop for a
 * wake that failed or came before the job was put back. Long, as a suspension can last days:
 * each look takes the environment's lock and writes BullMQ events.
 */
const SUSPENDED_RECHECK_MS = 60_000;

/** Says on the job's record, and as the commit's pending status, that a suspension holds it (once). */
export async function markHeld(
  environment: EnvironmentConfig,
  record: JobRecord,
  suspension: Suspension,
  deps: ProcessDeps,
  logger: Logger,
): Promise<void> {
  const message = `held: ${environment.name} is ${describeSuspension(suspension)}; deploys once resumed`;
  if (record.message === message) return;
  const reason = suspension.reason ? ` (${suspension.reason})` : '';
  await deps
    .run(environment, record, logger)
    .held(message, `Held: ${environment.name} is suspended${reason}`);
  logger.info({ reason: suspension.reason }, 'environment suspended: job held until it is resumed');
}

/**
 * Holds the job while its environment is suspended: throws DelayedError once it is marked
 * held, the lock released (as it is when this throws anything else).
 */
export async function holdIfSuspended(
  job: Job<DeployJobData>,
  token: string | undefined,
  environment: EnvironmentConfig,
  record: JobRecord,
  lock: HeldLock,
  deps: ProcessDeps,
  logger: Logger,
): Promise<void> {
  const suspension = await deps.store.suspensions.get(environment.name).catch(async (error: unknown) => {
    await lock.release();
    throw error;
  });
  // Only a job that has not started is held. One that has (a deploy a dead worker left half
  // done, one retrying after a transient failure, one a stopping worker handed back) was
  // running when the environment was suspended, and finishes, as the deploy running does.
  if (suspension && record.attempts === 0) {
    // Held, still queued, until the environment is resumed; written under the lock, which
    // a deploy that supersedes queued jobs holds too.
    try {
      await markHeld(environment, record, suspension, deps, logger);
    } finally {
      await lock.release();
    }
    await job.moveToDelayed(Date.now() + SUSPENDED_RECHECK_MS, token);
    throw new DelayedError();
  }
}
