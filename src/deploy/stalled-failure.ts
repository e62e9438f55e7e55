import { UnrecoverableError, type Job } from 'bullmq';
import type { DeployJobData } from '../queue/job-data.js';
import { FINISHED_STATES } from '../status/job-record.js';
import type { ProcessDeps } from './job-processor-deps.js';

/** A deploy killed twice with its worker is a deploy that kills workers: the next stall fails it. */
export const MAX_STALLED_COUNT = 2;

/**
 * BullMQ fails a job that stalled more than MAX_STALLED_COUNT times (its workers died, or
 * shutdown handed it back mid-deploy) in the next worker that takes it, without running the
 * processor: nothing else would finish its record, which would stay active (and claim its
 * commit) for good. Failures the processor threw carry no deferred failure: it recorded them.
 */
export async function recordFailureOutsideProcessor(
  job: Job<DeployJobData>,
  error: Error,
  deps: Pick<ProcessDeps, 'config' | 'logger' | 'store' | 'run'>,
): Promise<void> {
  const jobId = job.id;
  if (jobId === undefined || !job.deferredFailure || error.message !== job.deferredFailure) return;
  await recordStalledFailure(jobId, error.message, deps);
}

/** BullMQ's reason for a job failed at its stall limit. */
const STALLED_REASON = 'job stalled more than allowable limit';

/**
 * A run of a job scheduler (a periodic re-sync) past the stall limit. BullMQ never fails those
 * (5.81.5's stalled check skips jobs of a scheduler), so one that kills its workers would be
 * taken again for good, its record `running` with its attempts growing: the processor fails it
 * here instead, as BullMQ fails any other job, before it runs. Undefined when under the limit.
 */
export async function failScheduledRunPastStallLimit(
  job: Job<DeployJobData>,
  jobId: string,
  deps: Pick<ProcessDeps, 'config' | 'logger' | 'store' | 'run'>,
): Promise<UnrecoverableError | undefined> {
  if (!job.repeatJobKey || job.stalledCounter <= MAX_STALLED_COUNT) return undefined;
  const message = await recordStalledFailure(jobId, STALLED_REASON, deps);
  return new UnrecoverableError(message);
}

/** Finishes the record of a job its workers kept dying in as `failed`; returns the error recorded. */
async function recordStalledFailure(
  jobId: string,
  reason: string,
  deps: Pick<ProcessDeps, 'config' | 'logger' | 'store' | 'run'>,
): Promise<string> {
  const failure = new Error(
    `${reason}: the worker running it stopped ${MAX_STALLED_COUNT + 1} times (died, or shut down mid-deploy); not retried`,
  );
  const record = await deps.store.get(jobId);
  if (!record || FINISHED_STATES.includes(record.state)) return failure.message;
  const logger = deps.logger.child({ jobId, environment: record.environment });
  const environment = deps.config.environments.find((candidate) => candidate.name === record.environment);
  if (environment) {
    await deps.run(environment, record, logger).failed(failure, undefined);
    return failure.message;
  }
  await deps.store.finish(jobId, {
    state: 'failed',
    error: failure.message,
    finishedAt: new Date().toISOString(),
  });
  logger.error({ err: failure.message }, 'deploy failed');
  return failure.message;
}
