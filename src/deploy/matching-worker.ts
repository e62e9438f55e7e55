import { DelayedError, UnrecoverableError, type Job } from 'bullmq';
import type { EnvironmentConfig } from '../config/schema.js';
import type { Logger } from '../lib/logger.js';
import type { DeployJobData } from '../queue/job-data.js';
import { FINISHED_STATES } from '../status/job-record.js';
import {
  CONFIG_SKEW_GRACE_MS,
  CONFIG_SKEW_RECHECK_MS,
  NEWER_WORKER_RECHECK_MS,
  configSkew,
  describeTargetChange,
  environmentTarget,
} from './config-skew.js';
import type { ProcessDeps } from './job-processor-deps.js';
import { markHeld } from './suspension-hold.js';

/**
 * A job that another worker's configuration should run (a change rolling out, see config-skew
 * and worker-presence): handed back, its record saying whom it waits for. With 'wait', for
 * as long as it is handed back; else until the grace is over, then, `orElse`, failed (this
 * worker lacks the environment) or deployed with this worker's configuration ('proceed').
 * 'finished': the job was finished meanwhile, nothing to do.
 */
export async function awaitMatchingWorker(
  job: Job<DeployJobData>,
  token: string | undefined,
  deps: ProcessDeps,
  logger: Logger,
  waitingFor: string,
  /** `fail`: this worker lacks the environment, and this says so. */
  orElse: { fail: string } | 'deploy' | 'wait',
): Promise<'proceed' | 'finished'> {
  const jobId = job.id!;
  const { environment } = job.data;
  const since = orElse === 'wait' ? Date.now() : await deps.store.skewSince(jobId);
  const grace = deps.configSkewGraceMs ?? CONFIG_SKEW_GRACE_MS;
  const waiting = orElse === 'wait' || Date.now() - since < grace;
  if (!waiting && orElse === 'deploy') {
    logger.warn({ waitingFor }, "no such worker took the job: deploying with this one's configuration");
    return 'proceed';
  }
  // Written under the environment's lock, as every write to a queued job's record: a deploy
  // finishing the jobs queued behind it holds it. Busy: offered again, and written then.
  const lock = await deps.locks.acquire(environment);
  if (lock) {
    try {
      const current = await deps.store.get(jobId);
      if (!current || FINISHED_STATES.includes(current.state)) {
        logger.info({ state: current?.state }, 'job already finished');
        return 'finished';
      }
      if (!waiting) {
        const reason = typeof orElse === 'object' ? orElse.fail : waitingFor;
        const message = `${reason} (nor, for ${grace / 1000} s, in that of any worker that took the job)`;
        await deps.store.finish(jobId, {
          state: 'failed',
          error: message,
          finishedAt: new Date().toISOString(),
        });
        logger.error(message);
        throw new UnrecoverableError(message);
      }
      // A suspended environment's job says it is held, whichever worker looks at it: an old
      // worker would hold it too, and the one it waits for holds it anyway.
      const configured = deps.config.environments.find((candidate) => candidate.name === environment);
      const suspension =
        orElse === 'wait' && configured && current.attempts === 0
          ? await deps.store.suspensions.get(environment)
          : null;
      const until = orElse === 'wait' ? '' : `; until ${new Date(since + grace).toISOString()}`;
      const message = `waiting for ${waitingFor}${until}`;
      if (configured && suspension) {
        await markHeld(configured, current, suspension, deps, logger);
      } else if (current.message !== message) {
        await deps.store.update(jobId, { message });
        logger.warn({ waitingFor }, 'job handed back: another worker has the configuration to run it with');
      }
    } finally {
      await lock.release();
    }
  }
  const recheckMs = orElse === 'wait' ? NEWER_WORKER_RECHECK_MS : CONFIG_SKEW_RECHECK_MS;
  await job.moveToDelayed(Date.now() + recheckMs, token);
  throw new DelayedError();
}

/**
 * The environment as this worker has it, once this worker is the one to deploy it; undefined
 * when the job was finished meanwhile. Else hands the job back, or fails it (awaitMatchingWorker).
 */
export async function environmentToDeploy(
  job: Job<DeployJobData>,
  token: string | undefined,
  data: DeployJobData,
  deps: ProcessDeps,
  logger: Logger,
): Promise<EnvironmentConfig | undefined> {
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
    return undefined;
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
    if ((await awaitMatchingWorker(job, token, deps, logger, newer, 'wait')) === 'finished') return undefined;
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
    if ((await awaitMatchingWorker(job, token, deps, logger, receivers, 'deploy')) === 'finished')
      return undefined;
  }
  return environment;
}
