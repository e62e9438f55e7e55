import { randomUUID } from 'node:crypto';
import { Queue, RedisConnection } from 'bullmq';
import { ZodError } from 'zod';
import { redisModeProblem, type RedisClient } from './connection.js';
import { PushgateError } from '../lib/errors.js';
import { jobStatusUrl } from '../http/status-url.js';
import type { ClaimRequest, JobStore } from '../status/job-store.js';
import { EnqueueBatch } from './enqueue-batch.js';
import {
  DEPLOY_JOB_NAME,
  DEPLOY_JOB_OPTIONS,
  DEPLOY_QUEUE,
  type DeployJobData,
  type EnvironmentTarget,
  type Trigger,
} from './job-data.js';
import type { Keys } from './keys.js';

/**
 * BullMQ's connection wrapper re-emits the end of its wait for 'ready' as an 'error' event,
 * also once the queue is closed: close() removes every listener first, so when Redis never
 * answered (a hung server) that late event crashed the process with a stack trace after its
 * message. The connection's errors are ioredis's, heard there (createRedis): unheard here they
 * are dropped, for the connection's whole life.
 */
class QuietRedisConnection extends RedisConnection {
  override emit(event: string | symbol, ...args: unknown[]): boolean {
    if (event === 'error' && this.listenerCount('error') === 0) return false;
    return super.emit(event, ...args);
  }
}

export function createDeployQueue(connection: RedisClient, keys: Keys): Queue<DeployJobData> {
  // No version check: it is an INFO sent once at start-up, and on the fail-fast producer
  // connection a slow answer times out and fails the queue for good (every webhook 503
  // until a restart). The workers' BullMQ Worker still checks the Redis version.
  const queue = new Queue<DeployJobData>(
    DEPLOY_QUEUE,
    { connection, prefix: keys.bullPrefix, skipVersionCheck: true },
    QuietRedisConnection,
  );
  // Its errors are the connection's, which surface on the commands that need it (and in
  // each process's own log lines); unheard, BullMQ prints them raw to stderr, outside the
  // JSON log, several a second while Redis is away.
  queue.on('error', () => undefined);
  return queue;
}

/** How many of an environment's newest jobs a resume looks through for held ones. */
const HELD_SCAN = 200;

export interface EnqueuedJob {
  id: string;
  environment: string;
  /**
   * False when an existing job was returned: a redelivery, the same commit already queued or
   * live, or (a manual sync) the environment's sync that is queued and has not started.
   */
  created: boolean;
  /**
   * The commit the answer names: the trigger's; on a redelivered id, the one its job was
   * queued for (another body does not change it). None for a sync of the branch head.
   */
  sha?: string;
}

export class DeployProducer {
  private readonly batch: EnqueueBatch;

  constructor(
    private readonly queue: Queue<DeployJobData>,
    private readonly store: JobStore,
    /** The connection both the queue and the store use: one socket keeps their order. */
    private readonly redis: RedisClient,
  ) {
    this.batch = new EnqueueBatch(queue, store, redis);
  }

  /**
   * Resolves only once the job is written to Redis, so a 202 always means a durable job.
   *
   * A manual sync (trigger `manual`) is answered with the environment's earlier sync while
   * that one is queued and has not started: it deploys the branch head as it is when it
   * starts, which covers this request too, so ten presses of sync queue one deploy. Once it
   * has started, a sync gets a job of its own. `pendingSync: 'lead'` (a resume) always queues
   * its own, which later syncs then join: it must deploy at once, and a sync queued before the
   * suspension waits, held, for its wake-up.
   *
   * The claim and the queue entry go out together, one round trip shared with every other
   * enqueue of the same event-loop turn. When the claim finds an existing job, the candidate
   * queue entry has no record; it is removed here, and a worker that takes it first drops it.
   */
  async enqueue(
    environment: string,
    trigger: Trigger,
    receivedAt = new Date().toISOString(),
    /** The base of the status URL the caller answers with (`publicBase`), kept on a new job's record. */
    statusBase?: string,
    /** Webhook jobs: where the receiver's configuration sends the environment's pushes. */
    target?: EnvironmentTarget,
    options: { pendingSync?: 'join' | 'lead' } = {},
  ): Promise<EnqueuedJob> {
    const id = randomUUID();
    const request: ClaimRequest = {
      id,
      environment,
      trigger,
      receivedAt,
      ...(statusBase ? { statusUrl: jobStatusUrl(statusBase, id) } : {}),
      ...(target ? { target } : {}),
      ...(trigger.kind === 'manual' ? { pendingSync: options.pendingSync ?? 'join' } : {}),
    };
    const data: DeployJobData = { environment, trigger, receivedAt, ...(target ? { target } : {}) };
    try {
      // Fail fast: waiting for a connection would hold the webhook sender past its timeout.
      if (this.redis.status !== 'ready') throw new Error(`Redis connection is ${this.redis.status}`);
      const modeProblem = redisModeProblem(this.redis);
      if (modeProblem) throw new Error(modeProblem);
      const { claim, entry } = await this.batch.send(request, data);
      if (claim.status === 'rejected') {
        // Not awaited: with Redis hung it would wait out a second timeout before the 503.
        void this.queue.remove(request.id).catch(() => undefined);
        throw claim.reason;
      }
      const outcome = claim.value;
      if (outcome.created) {
        if (entry.status === 'rejected') {
          await this.store.release(request).catch(() => undefined);
          throw entry.reason;
        }
        return { id: outcome.id, environment, created: true, ...(trigger.sha ? { sha: trigger.sha } : {}) };
      }
      const [, existing] = await Promise.all([
        this.queue.remove(request.id).catch(() => 0),
        this.store.get(outcome.id),
      ]);
      // Re-adding a queued job is a no-op for BullMQ, and repairs a claim whose queue write
      // was lost with the process that made it.
      if (existing?.state === 'queued') {
        await this.addToQueue(existing.id, {
          environment,
          trigger: existing.trigger,
          receivedAt: existing.receivedAt,
          ...(existing.target ? { target: existing.target } : {}),
        });
      }
      // A redelivery answers as the first delivery did; a push of a commit the job already
      // deploys (it caught up to it) names that commit, not the one the job was queued for.
      const sha = outcome.matchedBy === 'delivery' && existing ? existing.trigger.sha : trigger.sha;
      return { id: outcome.id, environment, created: false, ...(sha ? { sha } : {}) };
    } catch (error) {
      // A record that does not parse is a fault to fix, not an outage to retry: a 503 would
      // have the sender redeliver it for good.
      if (error instanceof PushgateError || error instanceof ZodError || error instanceof SyntaxError)
        throw error;
      throw new PushgateError('unavailable', 'the job queue (Redis) is unavailable', {
        status: 503,
        cause: error,
      });
    }
  }

  /**
   * Runs now the jobs a suspension held, once it is lifted: each waits out a long recheck
   * delay otherwise. Called after the resume's own deploy is queued, which goes first and
   * supersedes those of older commits. Only jobs that never started: a delayed job that has
   * is waiting out its retry backoff, which a resume must not cut short. Returns how many.
   */
  async wakeHeld(environment: string): Promise<number> {
    const ids = await this.store.queuedJobIds(environment, '', HELD_SCAN);
    let woken = 0;
    for (const record of await this.store.getMany(ids)) {
      if (record.state !== 'queued' || record.attempts !== 0) continue;
      const job = await this.queue.getJob(record.id);
      if (!job || !(await job.isDelayed())) continue;
      // Taken meanwhile by its own recheck: nothing to wake.
      woken += await job.promote().then(
        () => 1,
        () => 0,
      );
    }
    return woken;
  }

  private async addToQueue(id: string, data: DeployJobData): Promise<void> {
    await this.queue.add(DEPLOY_JOB_NAME, data, { ...DEPLOY_JOB_OPTIONS, jobId: id });
  }
}
