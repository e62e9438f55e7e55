import { DelayedError, UnrecoverableError, type Job } from 'bullmq';
import { errorMessage } from '../lib/errors.js';
import { parseDeployJobData, type DeployJobData } from '../queue/job-data.js';
import { FINISHED_STATES } from '../status/job-record.js';
import { deployAttempt, settleFailedAttempt } from './job-attempt.js';
import { takeInJob } from './job-intake.js';
import type { ProcessDeps } from './job-processor-deps.js';
import type { JobRun } from './job-run.js';
import { environmentToDeploy } from './matching-worker.js';
import { failScheduledRunPastStallLimit } from './stalled-failure.js';
import { holdIfSuspended } from './suspension-hold.js';

/** The lock of a busy environment is tried again after this long (plus jitter). */
const LOCK_BUSY_DELAY_MS = 500;
/**
 * A job a suspension will hold, found while another deploy of the environment runs, asks for
 * the lock again this often: its held message is written once it has the lock, and the deploy
 * it waits for ends within its health timeout.
 */
const SUSPENDED_BUSY_RECHECK_MS = 5_000;

export async function processDeployJob(
  job: Job<DeployJobData>,
  token: string | undefined,
  deps: ProcessDeps,
): Promise<void> {
  const jobId = job.id;
  if (jobId === undefined) throw new UnrecoverableError('job without an id');
  let data: DeployJobData;
  try {
    data = parseDeployJobData(job.data);
  } catch (error) {
    deps.logger.error({ jobId, err: errorMessage(error) }, 'job data is not a deploy job');
    throw new UnrecoverableError(`invalid job data: ${errorMessage(error)}`);
  }
  const logger = deps.logger.child({ jobId, environment: data.environment });
  const pastStallLimit = await failScheduledRunPastStallLimit(job, jobId, deps);
  if (pastStallLimit) throw pastStallLimit;
  const record = await takeInJob(job, jobId, data, deps, logger);
  if (!record) return;

  const environment = await environmentToDeploy(job, token, data, deps, logger);
  if (!environment) return;

  const lock = await deps.locks.acquire(environment.name);
  if (!lock) {
    // A job a suspension will hold anyway need not ask for the lock twice a second.
    const held = record.attempts === 0 && (await deps.store.suspensions.get(environment.name)) !== null;
    logger.debug({ held }, 'environment busy, job delayed');
    const delayMs = held
      ? SUSPENDED_BUSY_RECHECK_MS
      : LOCK_BUSY_DELAY_MS + Math.floor(Math.random() * LOCK_BUSY_DELAY_MS);
    await job.moveToDelayed(Date.now() + delayMs, token);
    throw new DelayedError();
  }

  // Released whatever ends the attempt: a lock left behind renews itself for the life of the
  // process, and would hold every later job of the environment back.
  let run: JobRun | undefined;
  try {
    // Finished meanwhile by the deploy that held the lock (supersedeQueuedBehind): nothing to do.
    const current = await deps.store.get(jobId);
    if (current && FINISHED_STATES.includes(current.state)) {
      logger.info({ state: current.state }, 'job already finished');
      return;
    }

    await holdIfSuspended(job, token, environment, current ?? record, lock, deps, logger);

    run = deps.run(environment, current ?? record, logger);
    try {
      await deployAttempt(run, record, jobId, data, environment, lock, deps);
    } catch (error) {
      // A failed re-sync's steps are logged as they are, before what is said of the failure.
      run.logAsIs();
      await settleFailedAttempt(error, job, token, jobId, run, lock, deps, logger);
    }
  } finally {
    run?.logAsIs();
    await lock.release();
  }
}
