import { DelayedError, UnrecoverableError, type Job } from 'bullmq';
import { errorMessage } from '../lib/errors.js';
import { parseDeployJobData, type DeployJobData } from '../queue/job-data.js';
import { FINISHED_STATES } from '../status/job-record.js';
import { configSkew, describeTargetChange, environmentTarget } from './config-skew.js';
import { runDeployPipeline } from './deploy-pipeline.js';
import { attemptsAllowed, isPermanentFailure, resourcesOf } from './failure.js';
import { headMovedPastRunningDeploy } from './job-intake.js';
import type { ProcessDeps } from './job-processor-deps.js';
import { awaitMatchingWorker } from './matching-worker.js';
import { supersedeQueuedBehind } from './queued-behind.js';
import { markHeld, SUSPENDED_RECHECK_MS } from './suspension-hold.js';

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
  // Scheduler jobs reuse their template's data; each is "received" when it falls due: the
  // scheduler creates it one interval ahead, as a delayed job.
  const receivedAt =
    data.trigger.kind === 'reconcile'
      ? new Date(job.timestamp + (job.opts.delay ?? 0)).toISOString()
      : data.receivedAt;
  if (data.trigger.kind !== 'reconcile' && !(await deps.store.get(jobId))) {
    // The producer sends a claim just ahead of its queue entry, in one socket write; when the
    // claim returned an existing job (a redelivery), this entry has no record and is not a job
    // of its own. (Should Redis have dropped the claim script from its cache, ioredis resends
    // the claim after the entry: an entry dropped here then leaves a queued record, which
    // requeueLostJobs queues again.)
    logger.info('queue entry without a job record (a duplicate delivery): dropped');
    return;
  }
  if (
    data.trigger.kind === 'reconcile' &&
    !(await deps.store.get(jobId)) &&
    (await deps.store.suspensions.get(data.environment))
  ) {
    // A suspended environment is not re-synced: drift is left as it is, as `flux suspend` leaves it.
    logger.info('environment suspended: this re-sync run skipped');
    return;
  }
  if (
    data.trigger.kind === 'reconcile' &&
    (await deps.locks.isBusy(data.environment)) &&
    !(await deps.store.get(jobId)) &&
    !(await headMovedPastRunningDeploy(data.environment, deps, logger))
  ) {
    // The deploy running applies the branch head already. Delayed instead, runs due while a
    // deploy outlasts the interval (a long health wait) would pile up and all run after it.
    logger.info('environment busy: this re-sync run skipped, the deploy running applies the branch head');
    return;
  }
  if (
    data.trigger.kind === 'reconcile' &&
    !deps.config.environments.some((candidate) => candidate.name === data.environment) &&
    !(await deps.store.get(jobId))
  ) {
    // A scheduler of a configuration this worker is not on (a change rolling out): the next
    // run, or a worker on that configuration, does the work.
    logger.info("environment not in this worker's configuration: this re-sync run skipped");
    return;
  }
  const record = await deps.store.ensure({
    id: jobId,
    environment: data.environment,
    trigger: data.trigger,
    receivedAt,
  });
  if (FINISHED_STATES.includes(record.state)) {
    // Re-delivered after it finished (e.g. the worker died between writing the record and acking).
    logger.info({ state: record.state }, 'job already finished');
    return;
  }

  const environment = deps.config.environments.find((candidate) => candidate.name === data.environment);
  if (!environment) {
    const unknown = `environment "${data.environment}" is not in this worker's configuration`;
    // Returns only when the job was finished meanwhile; else hands it back or fails it.
    await awaitMatchingWorker(
      job,
      token,
      deps,
      logger,
      `a worker with the receiver's configuration (${unknown})`,
      {
        fail: unknown,
      },
    );
    return;
  }
  const newest = await deps.presence?.newest(environment.name);
  const skew = configSkew(data.target, environment);
  if (newest && !newest.mine) {
    // A running worker has a newer configuration of the environment: it does the environment's
    // deploys, this job's too, whichever receiver queued it, so an old worker never moves the
    // environment back. No grace: for as long as such a worker runs, or ran lately (see
    // VANISHED_HOLD_MS).
    const change = describeTargetChange(environmentTarget(environment), newest.target) || 'other settings';
    const newer = `a worker with the newest configuration of ${environment.name} (${change})`;
    if ((await awaitMatchingWorker(job, token, deps, logger, newer, 'wait')) === 'finished') return;
  } else if (newest && skew !== undefined) {
    // This worker's configuration is the newest running: the receiver's is older (the
    // workers rolled first) or not running yet (the receiver rolled first; the workers that
    // have it move the environment once they start, see target-change).
    logger.info(
      { skew },
      'queued with another configuration than the newest running, which this worker has: deploying with it',
    );
  } else if (skew !== undefined) {
    // Nothing known of the running workers (Redis lost their entries): the receiver's says.
    const receivers = `a worker with the receiver's configuration (${skew})`;
    if ((await awaitMatchingWorker(job, token, deps, logger, receivers, 'deploy')) === 'finished') return;
  }

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

  // Finished meanwhile by the deploy that held the lock (supersedeQueuedBehind): nothing to do.
  const current = await deps.store.get(jobId);
  if (current && FINISHED_STATES.includes(current.state)) {
    await lock.release();
    logger.info({ state: current.state }, 'job already finished');
    return;
  }

  const suspension = await deps.store.suspensions.get(environment.name).catch(async (error: unknown) => {
    await lock.release();
    throw error;
  });
  // Only a job that has not started is held. One that has (a deploy a dead worker left half
  // done, one retrying after a transient failure, one a stopping worker handed back) was
  // running when the environment was suspended, and finishes, as the deploy running does.
  if (suspension && (current ?? record).attempts === 0) {
    // Held, still queued, until the environment is resumed; written under the lock, which
    // a deploy that supersedes queued jobs holds too.
    try {
      await markHeld(environment, current ?? record, suspension, deps, logger);
    } finally {
      await lock.release();
    }
    await job.moveToDelayed(Date.now() + SUSPENDED_RECHECK_MS, token);
    throw new DelayedError();
  }

  const run = deps.run(environment, current ?? record, logger);
  try {
    // Counted on the record: BullMQ does not count a run a dead worker left behind (a stall).
    await run.started(record.attempts + 1);
    const result = await runDeployPipeline(deps.pipeline, {
      jobId,
      environment,
      trigger: data.trigger,
      lock,
      logger,
      onDeploying: async (sha) => {
        await lock.assertHeld();
        await run.deploying(sha);
      },
      supersedeQueuedBehind: (head, jobIds) =>
        supersedeQueuedBehind(jobId, head, jobIds, lock, environment, deps),
      // Only while the lock is ours: a worker that lost it must not rewrite the record of
      // the one that took the job over.
      onWritten: (resources) =>
        lock.assertHeld().then(
          () => run.written(resources),
          () => undefined,
        ),
      onCreating: (resources) =>
        lock.assertHeld().then(
          () => run.creating(resources),
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
    else await run.succeeded(result.sha, result.resources, result.warnings);
  } catch (error) {
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
  } finally {
    await lock.release();
  }
}
