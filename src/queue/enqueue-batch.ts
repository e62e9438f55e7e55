import { Job, type Queue } from 'bullmq';
import {
  CLAIM_COMMAND,
  claimOutcome,
  type ClaimOutcome,
  type ClaimRequest,
  type JobStore,
} from '../status/job-store.js';
import { DEPLOY_JOB_NAME, DEPLOY_JOB_OPTIONS, type DeployJobData } from './job-data.js';

export type Written<T> = { ok: true; value: T } | { ok: false; error: unknown };

/** What Redis answered for one enqueue: its claim, then its queue entry. */
export interface BatchReply {
  claim: Written<ClaimOutcome>;
  entry: Written<void>;
}

interface Pending {
  request: ClaimRequest;
  data: DeployJobData;
  resolve(reply: BatchReply): void;
}

type Pipeline = ReturnType<Awaited<Queue['client']>['pipeline']>;

/** ioredis pipelines count their queued commands; BullMQ's interface does not declare it. */
function queued(pipeline: Pipeline): number {
  return (pipeline as unknown as { length: number }).length;
}

function failed(error: unknown): BatchReply {
  return { claim: { ok: false, error }, entry: { ok: false, error } };
}

/**
 * Sends the claims and queue entries of every enqueue started in one turn of the event loop
 * as one pipeline: one socket write and one read for a burst of webhooks instead of two of
 * each per webhook. The claim of an enqueue goes before its entry, so Redis decides the claim
 * before a worker can see the entry.
 */
export class EnqueueBatch {
  private pending: Pending[] = [];

  constructor(
    private readonly queue: Queue<DeployJobData>,
    private readonly store: JobStore,
  ) {}

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
    try {
      // Resolves once BullMQ has defined its scripts on the connection; a pipeline made
      // before then would lack them.
      const client = await this.queue.client;
      const pipeline = client.pipeline();
      const entryErrors = new Map<number, unknown>();
      for (const [index, { request, data }] of batch.entries()) {
        pipeline.runCommand(CLAIM_COMMAND, this.store.claimArgs(request));
        const before = queued(pipeline);
        try {
          const options = { ...DEPLOY_JOB_OPTIONS, jobId: request.id };
          const job = new Job(this.queue, DEPLOY_JOB_NAME, data, options, request.id);
          // In a pipeline the promise only says the command was queued; its reply comes from exec.
          job.addJob(pipeline).catch(() => undefined);
        } catch (error) {
          entryErrors.set(index, error);
        }
        if (queued(pipeline) === before && !entryErrors.has(index)) {
          entryErrors.set(index, new Error(`job ${request.id} was not added to the pipeline`));
        }
      }
      const replies: [Error | null, unknown][] = (await pipeline.exec()) ?? [];
      let at = 0;
      for (const [index, pending] of batch.entries()) {
        const [claimError, claimReply] = replies[at++] ?? [new Error('no reply for the claim'), null];
        const claim: Written<ClaimOutcome> = claimError
          ? { ok: false, error: claimError }
          : { ok: true, value: claimOutcome(claimReply) };
        let entry: Written<void>;
        if (entryErrors.has(index)) {
          entry = { ok: false, error: entryErrors.get(index) };
        } else {
          const [entryError, entryReply] = replies[at++] ?? [new Error('no reply for the queue entry'), null];
          entry = entryError
            ? { ok: false, error: entryError }
            : typeof entryReply === 'number' && entryReply < 0
              ? {
                  ok: false,
                  error: new Error(`BullMQ refused job ${pending.request.id} (code ${entryReply})`),
                }
              : { ok: true, value: undefined };
        }
        pending.resolve({ claim, entry });
      }
    } catch (error) {
      for (const pending of batch) pending.resolve(failed(error));
    }
  }
}
