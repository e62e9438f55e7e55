import { setMaxListeners } from 'node:events';
import { Worker, type Job } from 'bullmq';
import type { Config } from '../src/config/schema.js';
import type { ApplyEngine } from '../src/deploy/apply-engine.js';
import { EnvironmentLock } from '../src/deploy/environment-lock.js';
import { processDeployJob } from '../src/deploy/job-processor.js';
import type { ProcessDeps } from '../src/deploy/job-processor-deps.js';
import { JobRun } from '../src/deploy/job-run.js';
import { claimRepairPass, requeueLostJobs, REQUEUE_INTERVAL_MS } from '../src/deploy/queue-repair.js';
import { restoreMissingSchedulers, syncReconcileSchedulers } from '../src/deploy/reconcile-schedulers.js';
import { MAX_STALLED_COUNT, recordFailureOutsideProcessor } from '../src/deploy/stalled-failure.js';
import { queueDeploysOfChangedTargets } from '../src/deploy/target-change.js';
import { WorkerPresence } from '../src/deploy/worker-presence.js';
import { gitFetchLimitsFromEnv } from '../src/git/fetch-budget.js';
import { refuseUnknownFsckIds } from '../src/git/fetch-fsck.js';
import { removeStaleTrees, TREE_SWEEP_INTERVAL_MS } from '../src/git/checkout-folders.js';
import { MirrorCache } from '../src/git/mirror-cache.js';
import { countFromEnv, millisecondsFromEnv } from '../src/lib/env-settings.js';
import { errorMessage, UsageError } from '../src/lib/errors.js';
import type { Logger } from '../src/lib/logger.js';
import type { Metrics } from '../src/lib/metrics.js';
import { RepeatedErrorLog } from '../src/lib/repeated-error-log.js';
import { createRedis, waitForRedisSaying } from '../src/queue/connection.js';
import { DEPLOY_QUEUE, type DeployJobData } from '../src/queue/job-data.js';
import { createKeys } from '../src/queue/keys.js';
import { createDeployQueue, DeployProducer } from '../src/queue/producer.js';
import { JobStore } from '../src/status/job-store.js';
import { claimRetiredSweep, dropRetiredHistories } from '../src/status/retired-histories.js';
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
  /** fsck message ids a fetch lets through besides the built-in ones (PUSHGATE_GIT_FSCK_IGNORE). */
  fsckIgnore?: string[];
  /** How often to look for queued job records that lost their queue entry (see queue-repair). */
  requeueIntervalMs?: number;
  /** How long a job queued with another configuration of its environment waits for a worker that has it (CONFIG_SKEW_GRACE_MS). */
  configSkewGraceMs?: number;
  /** How often to remove checkouts of processes that were killed (TREE_SWEEP_INTERVAL_MS). */
  treeSweepIntervalMs?: number;
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
  'concurrency' | 'lockDurationMs' | 'shutdownDeadlineMs' | 'fetchTimeoutMs' | 'fetchMaxBytes' | 'fsckIgnore'
> {
  return {
    concurrency: countFromEnv(env, 'PUSHGATE_WORKER_CONCURRENCY'),
    lockDurationMs: millisecondsFromEnv(env, 'PUSHGATE_JOB_LOCK_MS'),
    shutdownDeadlineMs: millisecondsFromEnv(env, 'PUSHGATE_SHUTDOWN_TIMEOUT_MS'),
    ...gitFetchLimitsFromEnv(env),
  };
}

/** WORKER_METRICS_PORT: the port `pushgate worker` serves /metrics and /healthz on, if any. */
export function workerMetricsPortFromEnv(env: Record<string, string | undefined>): number | undefined {
  const raw = env.WORKER_METRICS_PORT;
  if (raw === undefined || raw === '') return undefined;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new UsageError(`WORKER_METRICS_PORT="${raw}" is not a port number`);
  return port;
}

/**
 * workerTuningFromEnv, with `PUSHGATE_GIT_FSCK_IGNORE`'s ids checked against the git that
 * will fetch: what `pushgate worker` and `pushgate start` refuse (exit 2) before they start.
 */
export async function checkedWorkerTuningFromEnv(
  env: Record<string, string | undefined>,
): Promise<ReturnType<typeof workerTuningFromEnv>> {
  const tuning = workerTuningFromEnv(env);
  await refuseUnknownFsckIds(tuning.fsckIgnore, env);
  return tuning;
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
    fsckIgnore: options.fsckIgnore,
  });
  const sweepTrees = (): void =>
    void removeStaleTrees().then((removed) => {
      if (removed > 0) logger.info({ removed }, 'removed checkouts that killed processes left behind');
    });
  sweepTrees();
  // A render or another worker sharing the temporary folder may be killed while this one runs on.
  const treeSweepTimer = setInterval(sweepTrees, options.treeSweepIntervalMs ?? TREE_SWEEP_INTERVAL_MS);
  treeSweepTimer.unref();
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
  // Its own: a shutdown stops a gc still running once the deploys are over, not before.
  const gcAborter = new AbortController();
  let collecting: Promise<void> | undefined;
  const collectGarbage = (): void => {
    if (gcAborter.signal.aborted) return;
    const run = (collecting ?? Promise.resolve()).then(() =>
      mirrors.collectGarbage(gcAborter.signal).then((failures) => {
        for (const failure of failures) logger.warn({ err: failure.message }, 'git gc of a mirror failed');
      }),
    );
    collecting = run;
    void run.finally(() => {
      if (collecting === run) collecting = undefined;
    });
  };
  /** The jobs this worker is running: see close(). */
  const running = new Set<Promise<unknown>>();
  const processor = (job: Job<DeployJobData>, token?: string) => {
    // Once the job has let go of its environment's lock: no deploy waits for the gc but one
    // that fetches the same mirror meanwhile.
    const run = processDeployJob(job, token, deps).finally(collectGarbage);
    running.add(run);
    run.then(
      () => running.delete(run),
      () => running.delete(run),
    );
    return run;
  };

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
  const workerErrors = new RepeatedErrorLog(logger, 'worker error');
  worker.on('error', workerErrors.report);
  workerConnection.on('ready', () => workerErrors.recovered('Redis answers again'));
  // Since when the worker's connection has been down: see close().
  let redisAwaySince: number | undefined;
  workerConnection.on('close', () => (redisAwaySince ??= Date.now()));
  workerConnection.on('ready', () => (redisAwaySince = undefined));
  // Awaited by close() within its deadline: written (and reported) before we disconnect.
  const recordings = new Set<Promise<void>>();
  // The worker that ran it died (or froze past its lock): said by the one that finds it, with
  // its environment, so a deploy that kills workers shows before it is failed for it.
  worker.on('stalled', (jobId) => {
    void store.get(jobId).then(
      (record) =>
        logger.warn(
          { jobId, environment: record?.environment },
          'job stalled: its worker stopped renewing it (died, or froze); queued again',
        ),
      () =>
        logger.warn({ jobId }, 'job stalled: its worker stopped renewing it (died, or froze); queued again'),
    );
  });
  worker.on('failed', (job, error) => {
    if (!job) return;
    const recording = recordFailureOutsideProcessor(job, error, deps)
      .catch((recordError: unknown) =>
        logger.error(
          { jobId: job.id, environment: job.data?.environment, err: errorMessage(recordError) },
          'could not record the failed job',
        ),
      )
      .finally(() => recordings.delete(recording));
    recordings.add(recording);
  });
  await worker.waitUntilReady();
  logger.info({ concurrency: worker.opts.concurrency, lockDurationMs }, 'deploy worker ready');

  const environments = config.environments.map((environment) => environment.name);
  let requeueing: Promise<void> | undefined;
  // What a Redis that lost writes may have lost: queue entries of queued jobs, and schedulers.
  const requeueIntervalMs = options.requeueIntervalMs ?? REQUEUE_INTERVAL_MS;
  const repairPass = (): Promise<void> =>
    requeueLostJobs({ store, queue, environments, logger })
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
      .catch((error: unknown) =>
        logger.warn({ err: errorMessage(error) }, 'could not queue the deploys of changed configurations'),
      )
      .then(() => claimRetiredSweep({ redis, keys }))
      .then((claimed) =>
        claimed
          ? dropRetiredHistories({
              redis,
              keys,
              runningEnvironments: () => presence.runningEnvironments(),
              ranLately: (environment) => presence.ranLately(environment),
              logger,
            })
          : undefined,
      )
      .catch((error: unknown) =>
        logger.warn({ err: errorMessage(error) }, 'could not drop the histories of removed environments'),
      )
      .then(() => undefined);
  const requeueTimer = setInterval(() => {
    requeueing ??= claimRepairPass({ redis, keys }, presence.configuration, requeueIntervalMs)
      .then((claimed) => (claimed ? repairPass() : undefined))
      .catch((error: unknown) =>
        logger.warn({ err: errorMessage(error) }, 'could not claim the periodic repair pass'),
      )
      .finally(() => (requeueing = undefined));
  }, requeueIntervalMs);
  requeueTimer.unref();

  return {
    worker,
    async close(deadlineMs = options.shutdownDeadlineMs ?? DEFAULT_SHUTDOWN_DEADLINE_MS) {
      clearInterval(requeueTimer);
      clearInterval(treeSweepTimer);
      // First: it takes no new jobs from now on, so other workers must not hand theirs to it.
      await settledWithin(presence.stop(), CLOSE_STEP_MS);
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<'deadline'>((resolve) => {
        timer = setTimeout(() => resolve('deadline'), deadlineMs);
      });
      // With Redis away, BullMQ's close waits on it however long; with no deploy running and
      // no failure being recorded there is nothing to finish, so the deadline has nothing to
      // wait for. Away for a while, not a reconnect's moment: a job BullMQ took just then
      // comes back when its lock lapses, as a killed worker's does.
      const idleWithoutRedis = (): boolean => {
        if (workerConnection.status === 'ready') return false;
        // Not ready with no `close` seen (a client state without that event): away from now.
        redisAwaySince ??= Date.now();
        return (
          running.size === 0 && recordings.size === 0 && Date.now() - redisAwaySince >= REDIS_AWAY_FOR_MS
        );
      };
      let poll: NodeJS.Timeout | undefined;
      const foundIdleWithoutRedis = new Promise<'idle without Redis'>((resolve) => {
        poll = setInterval(() => {
          if (idleWithoutRedis()) resolve('idle without Redis');
        }, IDLE_CHECK_MS);
      });
      // Already so (the withdrawal above waited on Redis meanwhile): BullMQ's close is not
      // begun, since how soon it ends then depends on where its loop was when Redis went.
      const result = idleWithoutRedis()
        ? ('idle without Redis' as const)
        : await Promise.race([
            worker
              .close()
              .then(() => Promise.all(recordings))
              .then(() => 'closed' as const),
            deadline,
            foundIdleWithoutRedis,
          ]);
      clearTimeout(timer);
      clearInterval(poll);
      if (result === 'idle without Redis') {
        logger.info('Redis does not answer and no deploy is running: stopping without waiting for it');
        await settledWithin(worker.close(true), CLOSE_STEP_MS);
      } else if (result === 'deadline') {
        // Stop the deploys and let their locks lapse: BullMQ's stalled check hands the jobs to another worker.
        logger.warn({ deadlineMs }, 'shutdown deadline passed, handing current jobs back');
        aborter.abort(new Error('worker shutting down'));
        // Bounded, as every step below: with Redis unreachable BullMQ's close waits on it for good,
        // and a worker that never exits holds its pod until SIGKILL.
        await settledWithin(worker.close(true), CLOSE_STEP_MS);
        // Aborted, a deploy ends within moments; one that does not (a wait that ignores the
        // signal) must not end on a closed connection: BullMQ then retries the job's move
        // without a pause, forever, and the process starves (not even SIGTERM is handled).
        await settledWithin(Promise.allSettled(running), CLOSE_STEP_MS);
      }
      // A gc still running gets a moment, then TERM, on which git removes its gc.pid (one left
      // behind would hold up the mirror's next gc for hours).
      await settledWithin(collecting, CLOSE_STEP_MS);
      gcAborter.abort(new Error('worker shutting down'));
      await settledWithin(collecting, CLOSE_STEP_MS);
      await settledWithin(options.reporter?.flush(STATUS_FLUSH_AT_SHUTDOWN_MS), CLOSE_STEP_MS);
      await settledWithin(options.reporter?.close(), CLOSE_STEP_MS);
      await settledWithin(requeueing, CLOSE_STEP_MS);
      await settledWithin(queue.close(), CLOSE_STEP_MS);
      if (running.size > 0) {
        // Left open: the deploy hands its job back when it ends, or the process exits first.
        logger.warn(
          { jobs: running.size },
          'deploys still running past the shutdown deadline: their Redis connections close as the process exits',
        );
        void Promise.allSettled(running).then(() => {
          redis.disconnect();
          workerConnection.disconnect();
        });
        return;
      }
      redis.disconnect();
      workerConnection.disconnect();
    },
  };
}

/** The longest one shutdown step may wait on Redis past the deadline. */
const CLOSE_STEP_MS = 3_000;
/**
 * The longest `close()` may take beyond its deadline with Redis unreachable: the presence
 * record's withdrawal before the deadline starts, and the eight bounded steps after it. A
 * termination grace period shorter than the deadline plus this may SIGKILL a closing worker.
 */
export const CLOSE_PAST_DEADLINE_MAX_MS = 9 * CLOSE_STEP_MS;
/** How often a stopping worker looks whether it is idle with Redis away. */
const IDLE_CHECK_MS = 250;
/** How long Redis must not have answered for a stopping idle worker to stop without it. */
const REDIS_AWAY_FOR_MS = 2_000;

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
