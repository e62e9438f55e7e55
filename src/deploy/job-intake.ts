import type { Job } from 'bullmq';
import type { EnvironmentConfig } from '../config/schema.js';
import { errorMessage } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import type { DeployJobData } from '../queue/job-data.js';
import { FINISHED_STATES, type JobRecord } from '../status/job-record.js';
import type { ProcessDeps } from './job-processor-deps.js';

/**
 * Whether the branch has moved past the commit the environment's running deploy applies (a
 * push whose webhook was lost): then a re-sync due meanwhile is queued rather than skipped,
 * and the running deploy's health wait, seeing it, gives way (see watchForNewerCommit).
 */
export async function headMovedPastRunningDeploy(
  environmentName: string,
  jobId: string,
  deps: Pick<ProcessDeps, 'config' | 'store' | 'pipeline' | 'signal'>,
  logger: Logger,
): Promise<boolean> {
  const environment = deps.config.environments.find((candidate) => candidate.name === environmentName);
  if (!environment) return false;
  try {
    // One queued re-sync deploys whatever the head is by its turn: never a pile of them.
    const queued = await deps.store.getMany(await deps.store.queuedJobIds(environmentName, ''));
    if (queued.some((record) => record.trigger.kind === 'reconcile')) return false;
    if (!(await mustQueue(environment, deps))) return false;
  } catch (error) {
    logger.warn({ err: errorMessage(error) }, 'could not fetch the branch while its environment is busy');
  }
  // Two re-syncs due together (on one worker or two) both find none queued: one queues.
  return deps.store.claimQueuedResync(environmentName, jobId);
}

async function mustQueue(
  environment: EnvironmentConfig,
  deps: Pick<ProcessDeps, 'store' | 'pipeline' | 'signal'>,
): Promise<boolean> {
  const { deployingSha, deployStarting } = await deps.store.environmentStatus(environment.name);
  // Not known what the running deploy chose (still fetching): queued, at worst a quiet re-apply.
  if (deployStarting || deployingSha === null) return true;
  const { repo, branch } = environment;
  const head = await deps.pipeline.mirrors.fetchBranch(
    { url: repo.url, provider: repo.provider },
    branch,
    deps.signal,
  );
  return head !== deployingSha;
}

/**
 * The record of the job this queue entry runs; undefined when it is not to run (an entry
 * without a record, a re-sync run skipped, a job that finished already).
 */
export async function takeInJob(
  job: Job<DeployJobData>,
  jobId: string,
  data: DeployJobData,
  deps: ProcessDeps,
  logger: Logger,
): Promise<JobRecord | undefined> {
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
    return undefined;
  }
  if (
    data.trigger.kind === 'reconcile' &&
    !(await deps.store.get(jobId)) &&
    (await deps.store.suspensions.get(data.environment))
  ) {
    // A suspended environment is not re-synced: drift is left as it is, as `flux suspend` leaves it.
    logger.info('environment suspended: this re-sync run skipped');
    return undefined;
  }
  if (
    data.trigger.kind === 'reconcile' &&
    (await deps.locks.isBusy(data.environment)) &&
    !(await deps.store.get(jobId)) &&
    !(await headMovedPastRunningDeploy(data.environment, jobId, deps, logger))
  ) {
    // The deploy running applies the branch head already. Delayed instead, runs due while a
    // deploy outlasts the interval (a long health wait) would pile up and all run after it.
    logger.info('environment busy: this re-sync run skipped, the deploy running applies the branch head');
    return undefined;
  }
  if (
    data.trigger.kind === 'reconcile' &&
    !deps.config.environments.some((candidate) => candidate.name === data.environment) &&
    !(await deps.store.get(jobId))
  ) {
    // A scheduler of a configuration this worker is not on (a change rolling out): the next
    // run, or a worker on that configuration, does the work.
    logger.info("environment not in this worker's configuration: this re-sync run skipped");
    return undefined;
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
    return undefined;
  }
  return record;
}
