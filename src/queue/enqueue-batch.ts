import { Job, type JobJson, type Queue } from 'bullmq';
import { Redis } from 'ioredis';
import type { RedisClient } from './connection.js';
import type { ClaimOutcome, ClaimRequest, JobStore } from '../status/job-store.js';
import { DEPLOY_JOB_NAME, DEPLOY_JOB_OPTIONS, type DeployJobData } from './job-data.js';

/** What Redis answered for one enqueue: its claim, then its queue entry. */
export interface BatchReply {
  claim: PromiseSettledResult<ClaimOutcome>;
  entry: PromiseSettledResult<void>;
}

interface Pending {
  request: ClaimRequest;
  data: DeployJobData;
  resolve(reply: BatchReply): void;
}

/**
 * A deploy job as BullMQ serialises it (`Job.asJSON`: option names encoded, defaults filled
 * in), for a placeholder id. Every deploy job has the same name and options, so only its id,
 * data and timestamp differ; a test holds this to what `Queue.add` writes.
 */
function deployJobTemplate(queue: Queue<DeployJobData>): JobJson {
  const placeholder = 'template';
  const job = new Job(
    queue,
    DEPLOY_JOB_NAME,
    {} as DeployJobData,
    { ...DEPLOY_JOB_OPTIONS, jobId: placeholder },
    placeholder,
  );
  return job.asJSON();
}

function failed(reason: unknown): BatchReply {
  const rejected = { status: 'rejected', reason } as const;
  return { claim: rejected, entry: rejected };
}

/**
 * Sends the claims and queue entries of every enqueue started in one turn of the event loop
 * in one socket write (the socket is corked while they are issued), so a burst of webhooks
 * costs one write and one read of replies instead of two of each per webhook, and its claims
 * go in one script call (Redis spends about a fifth less on a claim in a batch of four or
 * more). An ioredis pipeline would do the same but costs more to build than the commands it
 * carries.
 * The claims go before the entries, so Redis decides a claim before a worker can see its
 * entry.
 */
export class EnqueueBatch {
  private pending: Pending[] = [];
  /** BullMQ's own form of a deploy job, made once; each entry changes only what is its own. */
  private readonly template: JobJson;

  constructor(
    private readonly queue: Queue<DeployJobData>,
    private readonly store: JobStore,
    /** The connection the queue and the store share. */
    private readonly redis: RedisClient,
  ) {
    this.template = deployJobTemplate(queue);
  }

  /** Never rejects: every failure is in the reply, so the caller can undo what did land. */
  send(request: ClaimRequest, data: DeployJobData): Promise<BatchReply> {
    return new Promise((resolve) => {
      this.pending.push({ request, data, resolve });
      if (this.pending.length === 1) setImmediate(() => void this.flush());
    });
  }

  private async flush(): Promise<void> {
    const batch = this.pending;
    this.pending = [];
    let client: Awaited<Queue['client']>;
    try {
      // Resolves once BullMQ has defined its scripts on the connection.
      client = await this.queue.client;
    } catch (error) {
      for (const pending of batch) pending.resolve(failed(error));
      return;
    }
    if (!(this.redis instanceof Redis)) {
      await this.flushInOrder(client, batch);
      return;
    }
    // Undefined before the first connection.
    const socket = this.redis.stream as Redis['stream'] | undefined;
    socket?.cork();
    try {
      const claims = this.store.claimMany(batch.map((pending) => pending.request));
      batch.forEach((pending, index) => {
        const claim = claims.then((outcomes) => outcomes[index]!);
        const entry = this.addEntry(client, pending.request.id, pending.data);
        void Promise.allSettled([claim, entry]).then(([claimed, added]) =>
          pending.resolve({ claim: claimed, entry: added }),
        );
      });
    } finally {
      socket?.uncork();
    }
  }

  /**
   * On a Redis Cluster: the claims, answered, then the entries. A cluster client redirects or
   * resends each command on its own (MOVED, ASK, a failover), so sending them together would
   * not keep the claim ahead of its entry, which a worker drops when it finds no record first.
   */
  private async flushInOrder(client: Awaited<Queue['client']>, batch: Pending[]): Promise<void> {
    const claims = this.store.claimMany(batch.map((pending) => pending.request));
    const settled = await claims.then(
      (outcomes) =>
        outcomes.map((value): PromiseSettledResult<ClaimOutcome> => ({ status: 'fulfilled', value })),
      (reason: unknown) =>
        batch.map((): PromiseSettledResult<ClaimOutcome> => ({ status: 'rejected', reason })),
    );
    batch.forEach((pending, index) => {
      const claim = settled[index]!;
      // A claim Redis did not answer is a 503 now: its entry would only hold that answer back
      // past the second a webhook sender is owed (a hung node times out once more).
      if (claim.status === 'rejected') {
        pending.resolve({ claim, entry: { status: 'rejected', reason: claim.reason as unknown } });
        return;
      }
      void Promise.allSettled([this.addEntry(client, pending.request.id, pending.data)]).then(([added]) =>
        pending.resolve({ claim, entry: added }),
      );
    });
  }

  /**
   * Issues the command now (BullMQ sends it before its first await); resolves on the reply.
   * What `Queue.add` writes, through the same BullMQ script call, without building a `Job`
   * per webhook (about 5% of the receiver's instructions per webhook).
   */
  private async addEntry(client: Awaited<Queue['client']>, id: string, data: DeployJobData): Promise<void> {
    const { template } = this;
    const job: JobJson = {
      ...template,
      id,
      data: JSON.stringify(data),
      timestamp: Date.now(),
      opts: { ...template.opts, jobId: id },
    };
    await this.queue.scripts.addJob(client, job, job.opts, id);
  }
}
