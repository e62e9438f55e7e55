import { Worker } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requeueLostJobs } from '../../src/deploy/queue-repair.js';
import { silentLogger } from '../../src/lib/logger.js';
import { waitForRedis } from '../../src/queue/connection.js';
import { DEPLOY_QUEUE, type Trigger } from '../../src/queue/job-data.js';
import { connectProducer, type ProducerServices } from '../../src/runtime.js';
import { startRedis, uniquePrefix, type TestRedis } from '../helpers/redis.js';

let redis: TestRedis;
const opened: ProducerServices[] = [];

beforeAll(async () => {
  redis = await startRedis();
});

afterAll(async () => {
  await Promise.all(opened.map((services) => services.close()));
  await redis.stop();
});

async function services(): Promise<ProducerServices> {
  const connected = connectProducer(redis.url, uniquePrefix('repair'));
  opened.push(connected);
  await waitForRedis(connected.redis, 5_000);
  return connected;
}

function push(sha: string, deliveryId: string): Trigger {
  return { kind: 'webhook', provider: 'github', deliveryId, sha, pusher: 'octocat' };
}

const TEN_MINUTES_AGO = () => new Date(Date.now() - 10 * 60_000).toISOString();

describe('requeueLostJobs', () => {
  it('queues again a job whose record is queued but which has no queue entry, once', async () => {
    const { store, queue } = await services();
    const trigger = push('a'.repeat(40), 'd-lost');
    // A claim whose queue entry never landed (its reply was lost and the receiver answered 503).
    await store.claimMany([
      { id: 'job-lost', environment: 'staging', trigger, receivedAt: TEN_MINUTES_AGO() },
    ]);
    const input = { store, queue, environments: ['staging'], logger: silentLogger() };

    expect(await requeueLostJobs(input)).toEqual(['job-lost']);
    const entry = await queue.getJob('job-lost');
    expect(entry?.data).toMatchObject({ environment: 'staging', trigger });
    expect(await queue.getJobState('job-lost')).toBe('waiting');
    // The entry is there now: nothing more to do, however many workers look.
    expect(await requeueLostJobs(input)).toEqual([]);
    expect(await queue.count()).toBe(1);
  });

  it('leaves a job that is queued normally, and a record too young to judge', async () => {
    const { store, queue, producer } = await services();
    await producer.enqueue('staging', push('b'.repeat(40), 'd-normal'), TEN_MINUTES_AGO());
    await store.claimMany([
      {
        id: 'job-young',
        environment: 'staging',
        trigger: push('c'.repeat(40), 'd-young'),
        receivedAt: new Date().toISOString(),
      },
    ]);
    expect(
      await requeueLostJobs({ store, queue, environments: ['staging'], logger: silentLogger() }),
    ).toEqual([]);
    expect(await queue.getJob('job-young')).toBeUndefined();
  });

  it('queues again a job whose entry ended without running it (dropped ahead of its record)', async () => {
    const { store, queue, keys } = await services();
    await queue.add(
      'deploy',
      { environment: 'staging', trigger: push('d'.repeat(40), 'd-early'), receivedAt: '' },
      {
        jobId: 'job-early',
      },
    );
    // A real BullMQ worker takes the entry and finds nothing to do, as pushgate's does for an
    // entry with no record.
    const worker = new Worker(DEPLOY_QUEUE, () => Promise.resolve(), {
      connection: { url: redis.url },
      prefix: keys.bullPrefix,
    });
    try {
      await new Promise<void>((resolve) => worker.once('completed', () => resolve()));
    } finally {
      await worker.close();
    }
    expect(await queue.getJobState('job-early')).toBe('completed');
    // Then the claim lands.
    await store.claimMany([
      {
        id: 'job-early',
        environment: 'staging',
        trigger: push('d'.repeat(40), 'd-early'),
        receivedAt: TEN_MINUTES_AGO(),
      },
    ]);

    expect(
      await requeueLostJobs({ store, queue, environments: ['staging'], logger: silentLogger() }),
    ).toEqual(['job-early']);
    expect(await queue.getJobState('job-early')).toBe('waiting');
  });
});
