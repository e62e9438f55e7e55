import { randomUUID } from 'node:crypto';
import { Queue, type JobsOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import { PushgateError } from '../lib/errors.js';
import type { JobStore } from '../status/job-store.js';
import { DEPLOY_JOB_NAME, DEPLOY_QUEUE, type DeployJobData, type Trigger } from './job-data.js';
import type { Keys } from './keys.js';

/** Transient failures retry with exponential backoff: 1 s, 2 s, 4 s … about 8.5 minutes in all. */
export const DEPLOY_JOB_OPTIONS: JobsOptions = {
  attempts: 10,
  backoff: { type: 'exponential', delay: 1_000 },
  // The job records in the JobStore are the history; BullMQ keeps only a short tail.
  removeOnComplete: { count: 100 },
  removeOnFail: { count: 100 },
};

export function createDeployQueue(connection: Redis, keys: Keys): Queue<DeployJobData> {
  return new Queue<DeployJobData>(DEPLOY_QUEUE, { connection, prefix: keys.bullPrefix });
}

export interface EnqueuedJob {
  id: string;
  environment: string;
  /** False when an existing job was returned (redelivery, or the same commit already queued or live). */
  created: boolean;
}

export class DeployProducer {
  constructor(
    private readonly queue: Queue<DeployJobData>,
    private readonly store: JobStore,
  ) {}

  /** Resolves only once the job is written to Redis, so a 202 always means a durable job. */
  async enqueue(
    environment: string,
    trigger: Trigger,
    receivedAt = new Date().toISOString(),
  ): Promise<EnqueuedJob> {
    const request = { id: randomUUID(), environment, trigger, receivedAt };
    try {
      const outcome = await this.store.claim(request);
      if (outcome.created) {
        await this.addToQueue(outcome.id, { environment, trigger, receivedAt }).catch(
          async (error: unknown) => {
            await this.store.release(request).catch(() => undefined);
            throw error;
          },
        );
        return { id: outcome.id, environment, created: true };
      }
      const existing = await this.store.get(outcome.id);
      // Re-adding a queued job is a no-op for BullMQ, and repairs a claim whose queue write
      // was lost with the process that made it.
      if (existing?.state === 'queued') {
        await this.addToQueue(existing.id, {
          environment,
          trigger: existing.trigger,
          receivedAt: existing.receivedAt,
        });
      }
      return { id: outcome.id, environment, created: false };
    } catch (error) {
      if (error instanceof PushgateError) throw error;
      throw new PushgateError('unavailable', 'the job queue (Redis) is unavailable', {
        status: 503,
        cause: error,
      });
    }
  }

  private async addToQueue(id: string, data: DeployJobData): Promise<void> {
    await this.queue.add(DEPLOY_JOB_NAME, data, { ...DEPLOY_JOB_OPTIONS, jobId: id });
  }
}
