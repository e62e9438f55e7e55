import type { Job } from 'bullmq';
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
  const record = await deps.store.get(jobId);
  if (!record || FINISHED_STATES.includes(record.state)) return;
  const logger = deps.logger.child({ jobId, environment: record.environment });
  const failure = new Error(
    `${error.message}: the worker running it stopped ${MAX_STALLED_COUNT + 1} times (died, or shut down mid-deploy); not retried`,
  );
  const environment = deps.config.environments.find((candidate) => candidate.name === record.environment);
  if (environment) {
    await deps.run(environment, record, logger).failed(failure, undefined);
    return;
  }
  await deps.store.finish(jobId, {
    state: 'failed',
    error: failure.message,
    finishedAt: new Date().toISOString(),
  });
  logger.error({ err: failure.message }, 'deploy failed');
}
