import { DelayedError, UnrecoverableError, type Job } from 'bullmq';
import type { EnvironmentConfig } from '../config/schema.js';
import { errorMessage } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import type { DeployJobData } from '../queue/job-data.js';
import { FINISHED_STATES, type JobRecord } from '../status/job-record.js';
import { runDeployPipeline } from './deploy-pipeline.js';
import type { HeldLock } from './environment-lock.js';
import { attemptsAllowed, isPermanentFailure, resourcesOf } from './failure.js';
import type { ProcessDeps } from './job-processor-deps.js';
import type { JobRun } from './job-run.js';
import { supersedeQueuedBehind } from './queued-behind.js';

/** One attempt of the deploy, under the environment's lock: the pipeline run and its outcome recorded. */
export async function deployAttempt(
  run: JobRun,
  record: JobRecord,
  jobId: string,
  data: DeployJobData,
  environment: EnvironmentConfig,
  lock: HeldLock,
  deps: ProcessDeps,
): Promise<void> {
  // Counted on the record: BullMQ does not count a run a dead worker left behind (a stall).
  await run.started(record.attempts + 1);
  const result = await runDeployPipeline(deps.pipeline, {
    jobId,
    environment,
    trigger: data.trigger,
    lock,
    // The run's: a re-sync's holds its step lines until it is known whether it changes anything.
    logger: run.logger,
    onDeployRun: (afterOtherDeploy) => run.deployRunStarted(afterOtherDeploy),
    onDeploying: async (sha) => {
      await lock.assertHeld();
      await run.deploying(sha);
    },
    supersedeQueuedBehind: (head, queued) =>
      supersedeQueuedBehind(jobId, head, queued, lock, environment, deps),
    // Only while the lock is ours: a worker that lost it must not rewrite the record of
    // the one that took the job over.
    onWritten: (resources) =>
      lock.assertHeld().then(
        () => run.written(resources),
        () => undefined,
      ),
    onChanging: (resources) =>
      lock.assertHeld().then(
        () => run.changing(resources),
        () => undefined,
      ),
    onProgress: (message) =>
      void lock.assertHeld().then(
        () => run.progress(message),
        () => undefined,
      ),
    signal: deps.signal,
  });
  // Recorded only while the lock is still ours: a worker that lost it (stalled past its TTL,
  // say in the health wait) must not record its commit over a newer deploy that took over.
  await lock.assertHeld();
  if (result.outcome === 'superseded') await run.superseded(result.announcedSha, result.head);
  else if (result.overtaken)
    await run.overtaken(result.sha, result.overtaken, result.resources, result.warnings);
  else await run.succeeded(result.sha, result.resources, result.warnings, lock.fence);
}

/**
 * What a failed attempt leaves of the job: retried, failed, handed back, or left to the
 * worker that took it over. Returns only when this attempt had recorded the job as finished.
 */
export async function settleFailedAttempt(
  error: unknown,
  job: Job<DeployJobData>,
  token: string | undefined,
  jobId: string,
  run: JobRun,
  lock: HeldLock,
  deps: ProcessDeps,
  logger: Logger,
): Promise<void> {
  if (run.finished) {
    // The record is final (written by this attempt); what failed after it is bookkeeping
    // and must not reopen, retry or fail a finished deploy.
    logger.warn({ err: errorMessage(error) }, 'error after the job was recorded as finished');
    return;
  }
  // A worker that lost the job (stalled past its locks) must not reopen a record that the
  // worker which took the job over has finished meanwhile.
  const current = await deps.store.get(jobId);
  if (current && FINISHED_STATES.includes(current.state)) {
    logger.warn({ err: errorMessage(error), state: current.state }, 'job finished elsewhere meanwhile');
    throw error;
  }
  if (await lock.isLost()) {
    // Still running elsewhere: the worker that took the job over (this one stalled past its
    // locks: a Redis restart, a pause) writes its record, so no failed or queued from here.
    // Handed back should BullMQ still count the job ours; else the move fails, as it should.
    logger.warn(
      { err: errorMessage(error) },
      'lost the environment lock mid-deploy: the job and its record are left to the worker that took it over',
    );
    await job.moveToDelayed(Date.now(), token).catch(() => undefined);
    throw new DelayedError();
  }
  if (deps.signal?.aborted) {
    // Shutdown past its deadline: not a failure of the deploy, so it spends no retry and
    // waits out no backoff; the next worker resumes it at once.
    await run.handedBack(resourcesOf(error));
    await job.moveToDelayed(Date.now(), token);
    throw new DelayedError();
  }
  const permanent = isPermanentFailure(error);
  const configured = job.opts.attempts ?? 1;
  const allowed = attemptsAllowed(error, configured);
  if (permanent || job.attemptsMade + 1 >= allowed) {
    await run.failed(error, resourcesOf(error));
    // Ended before BullMQ's own count of attempts runs out: else it would retry all the same.
    if (permanent || allowed < configured) throw new UnrecoverableError(errorMessage(error));
    throw error;
  }
  await run.willRetry(error, resourcesOf(error));
  throw error;
}
