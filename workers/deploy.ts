import { setMaxListeners } from 'node:events';
import { DelayedError, UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Config, EnvironmentConfig } from '../src/config/schema.js';
import type { ApplyEngine } from '../src/deploy/apply-engine.js';
import { runDeployPipeline } from '../src/deploy/deploy-pipeline.js';
import {
  CONFIG_SKEW_GRACE_MS,
  CONFIG_SKEW_RECHECK_MS,
  NEWER_WORKER_RECHECK_MS,
  configSkew,
  describeTargetChange,
  environmentTarget,
} from '../src/deploy/config-skew.js';
import { EnvironmentLock, type HeldLock } from '../src/deploy/environment-lock.js';
import { attemptsAllowed, isPermanentFailure, resourcesOf } from '../src/deploy/failure.js';
import { JobRun } from '../src/deploy/job-run.js';
import { requeueLostJobs, REQUEUE_INTERVAL_MS } from '../src/deploy/queue-repair.js';
import { restoreMissingSchedulers, syncReconcileSchedulers } from '../src/deploy/reconcile-schedulers.js';
import { queueDeploysOfChangedTargets } from '../src/deploy/target-change.js';
import { WorkerPresence } from '../src/deploy/worker-presence.js';
import type { ProcessDeps } from '../src/deploy/job-processor-deps.js';
import { MAX_STALLED_COUNT, recordFailureOutsideProcessor } from '../src/deploy/stalled-failure.js';
import { gitFetchLimitsFromEnv } from '../src/git/fetch-budget.js';
import { MirrorCache, removeStaleTrees } from '../src/git/mirror-cache.js';
import { countFromEnv, millisecondsFromEnv } from '../src/lib/env-settings.js';
import { errorMessage } from '../src/lib/errors.js';
import type { Logger } from '../src/lib/logger.js';
import type { Metrics } from '../src/lib/metrics.js';
import { createRedis, waitForRedisSaying } from '../src/queue/connection.js';
import { DEPLOY_QUEUE, parseDeployJobData, type DeployJobData } from '../src/queue/job-data.js';
import { createKeys } from '../src/queue/keys.js';
import { createDeployQueue, DeployProducer } from '../src/queue/producer.js';
import { FINISHED_STATES, type JobRecord } from '../src/status/job-record.js';
import { JobStore } from '../src/status/job-store.js';
import { describeSuspension, type Suspension } from '../src/status/suspensions.js';
import type { CommitStatusReporter } from '../src/status/reporters/commit-status-reporter.js';

export const DEFAULT_CONCURRENCY = 4;
export const DEFAULT_LOCK_DURATION_MS = 30_000;
export const DEFAULT_SHUTDOWN_DEADLINE_MS = 60_000;
/**
 * How long close() waits for this worker's commit statuses: what is not delivered by then
 * stays in the outbox in Redis, and any other worker (or this one restarted) sends it.
 */
const STATUS_FLUSH_AT_SHUTDOWN_MS = 3_000;

export interface DeployWorkerOptions {
  config: Config;
  redisUrl: string;
  logger: Logger;
  metrics: Metrics;
  engine: ApplyEngine;
  /** Bare mirrors of the environment repositories. */
  cacheDir: string;
  gitToken?: string;
  /** Closed by close(): its Redis connection ends with the worker. */
  reporter?: CommitStatusReporter;
  /** Deploys in parallel (different environments; one environment is always one at a time). */
  concurrency?: number;
  /**
   * How long a job (and its environment lock) stays ours without renewal: a worker that dies
   * mid-job is replaced after about this long.
   */
  lockDurationMs?: number;
  /**
   * How long `close()` lets current deploys finish before it aborts them and hands them back:
   * a little less than the grace period the process gets before SIGKILL.
   */
  shutdownDeadlineMs?: number;
  fetchTimeoutMs?: number;
  /** The most one git fetch may write into the mirror cache (PUSHGATE_GIT_FETCH_MAX_BYTES). */
  fetchMaxBytes?: number;
  /** How often to look for queued job records that lost their queue entry (see queue-repair). */
  requeueIntervalMs?: number;
  /** How long a job queued with another configuration of its environment waits for a worker that has it (CONFIG_SKEW_GRACE_MS). */
  configSkewGraceMs?: number;
}

export interface DeployWorker {
  worker: Worker<DeployJobData>;
  /** Finishes the current jobs; past the deadline, aborts them and hands them back to the queue. */
  close(deadlineMs?: number): Promise<void>;
}

/**
 * Env knobs for `pushgate worker`: PUSHGATE_WORKER_CONCURRENCY, PUSHGATE_JOB_LOCK_MS,
 * PUSHGATE_SHUTDOWN_TIMEOUT_MS, and the git fetch limits (gitFetchLimitsFromEnv).
 */
export function workerTuningFromEnv(
  env: Record<string, string | undefined>,
): Pick<
  DeployWorkerOptions,
  'concurrency' | 'lockDurationMs' | 'shutdownDeadlineMs' | 'fetchTimeoutMs' | 'fetchMaxBytes'
> {
  return {
    concurrency: countFromEnv(env, 'PUSHGATE_WORKER_CONCURRENCY'),
    lockDurationMs: millisecondsFromEnv(env, 'PUSHGATE_JOB_LOCK_MS'),
    shutdownDeadlineMs: millisecondsFromEnv(env, 'PUSHGATE_SHUTDOWN_TIMEOUT_MS'),
    ...gitFetchLimitsFromEnv(env),
  };
}

export async function startDeployWorker(options: DeployWorkerOptions): Promise<DeployWorker> {
  const { config, logger, metrics } = options;
  const lockDurationMs = options.lockDurationMs ?? DEFAULT_LOCK_DURATION_MS;
  const keys = createKeys(config.redis.prefix);
  // Job records and locks on a connection of their own: the Worker's blocks on BZPOPMIN.
  const endpoint = { url: options.redisUrl, cluster: config.redis.cluster };
  const redis = createRedis(endpoint, 'worker');
  try {
    await waitForRedisSaying(redis, (error) =>
      logger.warn({ err: error.message }, 'Redis does not answer yet; the worker takes jobs once it does'),
    );
  } catch (error) {
    redis.disconnect();
    throw error;
  }
  const store = new JobStore(redis, keys);
  const locks = new EnvironmentLock(redis, keys, lockDurationMs);
  const mirrors = new MirrorCache({
    dir: options.cacheDir,
    token: options.gitToken,
    fetchTimeoutMs: options.fetchTimeoutMs,
    fetchMaxBytes: options.fetchMaxBytes,
  });
  void removeStaleTrees().then((removed) => {
    if (removed > 0) logger.info({ removed }, 'removed checkouts that killed workers left behind');
  });
  const queue = createDeployQueue(redis, keys);
  const aborter = new AbortController();
  // Every Kubernetes request in flight, of every job, listens on this one signal: dozens at
  // once is normal, not a leak, and must not print MaxListenersExceededWarning.
  setMaxListeners(0, aborter.signal);

  await syncReconcileSchedulers({ queue, redis, keys }, config, logger);
  // Announced before this worker queues a deploy of its configuration: from then on, a worker
  // on another configuration hands such jobs back rather than deploying them its way.
  const presence = new WorkerPresence(redis, keys, config);
  await presence.start();
  const producer = new DeployProducer(queue, store, redis);
  const moves = { config, store, producer, presence, redis, keys, logger };
  await queueDeploysOfChangedTargets(moves);

  const deps: ProcessDeps = {
    config,
    logger,
    store,
    locks,
    run: (environment, record, jobLogger) =>
      new JobRun({ store, metrics, reporter: options.reporter }, environment, record, jobLogger),
    pipeline: { mirrors, store, engine: options.engine },
    signal: aborter.signal,
    ...(options.configSkewGraceMs !== undefined ? { configSkewGraceMs: options.configSkewGraceMs } : {}),
    presence,
  };
  const processor = (job: Job<DeployJobData>, token?: string) => processDeployJob(job, token, deps);

  // BullMQ does not close a connection it was given: we do, in close().
  const workerConnection = createRedis(endpoint, 'worker');
  // Ready first: BullMQ duplicates it for its blocking reads at once, and a cluster client's
  // duplicate starts from the nodes it knows then (the URL's alone, before its first refresh).
  if (endpoint.cluster) {
    await waitForRedisSaying(workerConnection, (error) =>
      logger.warn(
        { err: error.message },
        'Redis Cluster does not answer yet; the worker takes jobs once it does',
      ),
    ).catch(async (error: unknown) => {
      await settledWithin(presence.stop(), CLOSE_STEP_MS);
      workerConnection.disconnect();
      redis.disconnect();
      throw error;
    });
  }
  const worker = new Worker<DeployJobData>(DEPLOY_QUEUE, processor, {
    connection: workerConnection,
    prefix: keys.bullPrefix,
    concurrency: options.concurrency ?? DEFAULT_CONCURRENCY,
    lockDuration: lockDurationMs,
    stalledInterval: Math.max(1_000, Math.floor(lockDurationMs / 2)),
    maxStalledCount: MAX_STALLED_COUNT,
  });
  worker.on('error', (error) => logger.error({ err: errorMessage(error) }, 'worker error'));
  // Awaited by close() within its deadline: written (and reported) before we disconnect.
  const recordings = new Set<Promise<void>>();
  worker.on('failed', (job, error) => {
    if (!job) return;
    const recording = recordFailureOutsideProcessor(job, error, deps)
      .catch((recordError: unknown) =>
        logger.error({ jobId: job.id, err: errorMessage(recordError) }, 'could not record the failed job'),
      )
      .finally(() => recordings.delete(recording));
    recordings.add(recording);
  });
  await worker.waitUntilReady();
  logger.info({ concurrency: worker.opts.concurrency, lockDurationMs }, 'deploy worker ready');

  const environments = config.environments.map((environment) => environment.name);
  let requeueing: Promise<void> | undefined;
  // What a Redis that lost writes may have lost: queue entries of queued jobs, and schedulers.
  const requeueTimer = setInterval(() => {
    requeueing ??= requeueLostJobs({ store, queue, environments, logger })
      .then(
        () => undefined,
        (error: unknown) =>
          logger.warn({ err: errorMessage(error) }, 'could not look for jobs that lost their queue entry'),
      )
      .then(() => restoreMissingSchedulers({ queue, redis, keys }, config, logger))
      .catch((error: unknown) =>
        logger.warn({ err: errorMessage(error) }, 'could not look for missing reconcile schedulers'),
      )
      // A rollback that became the newest configuration, a move that failed: see target-change.
      .then(() => queueDeploysOfChangedTargets(moves))
      .then(() => undefined)
      .finally(() => (requeueing = undefined));
  }, options.requeueIntervalMs ?? REQUEUE_INTERVAL_MS);
  requeueTimer.unref();

  return {
    worker,
    async close(deadlineMs = options.shutdownDeadlineMs ?? DEFAULT_SHUTDOWN_DEADLINE_MS) {
      clearInterval(requeueTimer);
      // First: it takes no new jobs from now on, so other workers must not hand theirs to it.
      await settledWithin(presence.stop(), CLOSE_STEP_MS);
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<'deadline'>((resolve) => {
        timer = setTimeout(() => resolve('deadline'), deadlineMs);
      });
      const closed = worker.close().then(() => Promise.all(recordings));
      const result = await Promise.race([closed.then(() => 'closed' as const), deadline]);
      clearTimeout(timer);
      if (result === 'deadline') {
        // Stop the deploys and let their locks lapse: BullMQ's stalled check hands the jobs to another worker.
        logger.warn({ deadlineMs }, 'shutdown deadline passed, handing current jobs back');
        aborter.abort(new Error('worker shutting down'));
        // Bounded, as every step below: with Redis unreachable BullMQ's close waits on it for good,
        // and a worker that never exits holds its pod until SIGKILL.
        await settledWithin(worker.close(true), CLOSE_STEP_MS);
      }
      await settledWithin(options.reporter?.flush(STATUS_FLUSH_AT_SHUTDOWN_MS), CLOSE_STEP_MS);
      await settledWithin(options.reporter?.close(), CLOSE_STEP_MS);
      await settledWithin(requeueing, CLOSE_STEP_MS);
      await settledWithin(queue.close(), CLOSE_STEP_MS);
      redis.disconnect();
      workerConnection.disconnect();
    },
  };
}

/** The longest one shutdown step may wait on Redis past the deadline. */
const CLOSE_STEP_MS = 3_000;

/** Waits for `work` to settle, at most `ms`; never rejects. */
async function settledWithin(work: Promise<unknown> | undefined, ms: number): Promise<void> {
  if (!work) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    work.catch(() => undefined),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
    }),
  ]);
  clearTimeout(timer);
}

/**
 * Webhook jobs queued behind a deploy of `head` for other commits would give way to it when
 * their turn came (newest wins: the head has a running job). They are finished now, so
 * `pushgate status` and their commits show it at once, not after this deploy's health wait.
 * Those of `head` itself are finished too (coveredBy): this deploy is theirs. Runs under the
 * environment's lock, which their own runs need first. Manual syncs stay queued: they were
 * asked for. Bookkeeping: a failure here never fails the deploy.
 */
async function supersedeQueuedBehind(
  deployJobId: string,
  head: string,
  jobIds: readonly string[],
  lock: HeldLock,
  environment: EnvironmentConfig,
  deps: Pick<ProcessDeps, 'logger' | 'store' | 'run'>,
): Promise<void> {
  try {
    for (const record of await deps.store.getMany(jobIds)) {
      const announced = record.trigger.kind === 'webhook' ? record.trigger.sha?.toLowerCase() : undefined;
      if (record.state !== 'queued' || announced === undefined) continue;
      // Queued with another configuration of the environment (a change rolling out): left to
      // its own turn, which deploys it (or finds its head live) with the newest configuration.
      if (configSkew(record.target, environment) !== undefined) continue;
      // Its own run starts only under the lock: while ours, the record stays queued. (A check
      // of the health wait that ends after the deploy finds the lock gone: its turn will do.)
      const held = await lock.assertHeld().then(
        () => true,
        () => false,
      );
      if (!held) return;
      const logger = deps.logger.child({ jobId: record.id, environment: environment.name });
      // One of this very commit (held by a suspension, or claimed just before a sync or re-sync
      // chose it) would only apply it again after this deploy, and wait out its health again.
      const run = deps.run(environment, record, logger);
      if (announced === head.toLowerCase()) await run.coveredBy(deployJobId, head);
      else await run.superseded(announced, head);
    }
  } catch (error) {
    deps.logger.warn(
      { environment: environment.name, err: errorMessage(error) },
      'could not finish the jobs queued behind this deploy',
    );
  }
}

/**
 * Whether the branch has moved past the commit the environment's running deploy applies (a
 * push whose webhook was lost): then a re-sync due meanwhile is queued rather than skipped,
 * and the running deploy's health wait, seeing it, gives way (see watchForNewerCommit).
 */
async function headMovedPastRunningDeploy(
  environmentName: string,
  deps: Pick<ProcessDeps, 'config' | 'store' | 'pipeline' | 'signal'>,
  logger: Logger,
): Promise<boolean> {
  const environment = deps.config.environments.find((candidate) => candidate.name === environmentName);
  if (!environment) return false;
  try {
    // One queued re-sync deploys whatever the head is by its turn: never a pile of them.
    const queued = await deps.store.getMany(await deps.store.queuedJobIds(environmentName, ''));
    if (queued.some((record) => record.trigger.kind === 'reconcile')) return false;
    const { deployingSha, deployStarting } = await deps.store.environmentStatus(environmentName);
    // Not known what the running deploy chose (still fetching): queued, at worst a quiet re-apply.
    if (deployStarting || deployingSha === null) return true;
    const { repo, branch } = environment;
    const head = await deps.pipeline.mirrors.fetchBranch(
      { url: repo.url, provider: repo.provider },
      branch,
      deps.signal,
    );
    return head !== deployingSha;
  } catch (error) {
    logger.warn({ err: errorMessage(error) }, 'could not fetch the branch while its environment is busy');
    return true;
  }
}

/** The lock of a busy environment is tried again after this long (plus jitter). */
const LOCK_BUSY_DELAY_MS = 500;
/**
 * A job held by a suspension looks again this often: a resume queues a deploy of the head and
 * wakes the held jobs at once (DeployProducer.wakeHeld), so this is only the backstop for a
 * wake that failed or came before the job was put back. Long, as a suspension can last days:
 * each look takes the environment's lock and writes BullMQ events.
 */
const SUSPENDED_RECHECK_MS = 60_000;
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

/** Says on the job's record, and as the commit's pending status, that a suspension holds it (once). */
async function markHeld(
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
 * A job that another worker's configuration should run (a change rolling out, see config-skew
 * and worker-presence): handed back, its record saying whom it waits for. With 'wait', for
 * as long as it is handed back; else until the grace is over, then, `orElse`, failed (this
 * worker lacks the environment) or deployed with this worker's configuration ('proceed').
 * 'finished': the job was finished meanwhile, nothing to do.
 */
async function awaitMatchingWorker(
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
