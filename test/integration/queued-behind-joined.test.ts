import { describe, expect, it } from 'vitest';
import type { EnvironmentConfig } from '../../src/config/schema.js';
import { EnvironmentLock } from '../../src/deploy/environment-lock.js';
import type { JobRun } from '../../src/deploy/job-run.js';
import { supersedeQueuedBehind } from '../../src/deploy/queued-behind.js';
import { silentLogger } from '../../src/lib/logger.js';
import type { Trigger } from '../../src/queue/job-data.js';
import { producerFixture } from '../helpers/producer.js';

const { services } = producerFixture('queued-behind');

const OLDER = 'a'.repeat(40);
const HEAD = 'b'.repeat(40);

function push(sha: string, deliveryId: string): Trigger {
  return { kind: 'webhook', provider: 'github', deliveryId, sha, pusher: 'octocat' };
}

/** A run that finishes nothing: which jobs the worker would finish is what these tests see. */
const idleRun = {
  superseded: () => Promise.resolve(),
  coveredBy: () => Promise.resolve(),
} as unknown as JobRun;

describe('jobs queued behind a deploy', () => {
  it('leaves queued a job a push joined while the deploy fetched the head (a force-push back to its commit)', async () => {
    const { producer, store, redis, keys } = await services();
    // A late webhook of the older commit, queued behind the deploy of HEAD.
    const late = await producer.enqueue('web', push(OLDER, 'late'));
    const queued = { ids: [late.id], claimMarks: await store.claimMarks([late.id]) };
    // While the deploy fetched HEAD, the branch was force-pushed back to OLDER: its webhook joins the job.
    const forcePush = await producer.enqueue('web', push(OLDER, 'force-push'));
    expect(forcePush.id).toBe(late.id);
    const lock = (await new EnvironmentLock(redis, keys, 5_000).acquire('web'))!;
    const finished: string[] = [];
    const environment = { name: 'web' } as EnvironmentConfig;

    await supersedeQueuedBehind('deploying', HEAD, queued, lock, environment, {
      logger: silentLogger(),
      store,
      run: (_environment, record) => {
        finished.push(record.id);
        return idleRun;
      },
    });

    expect(finished).toEqual([]);
    expect((await store.get(late.id))?.state).toBe('queued');
    await lock.release();
  });

  it('finishes one nobody joined as superseded by the head', async () => {
    const { producer, store, redis, keys } = await services();
    const late = await producer.enqueue('web', push(OLDER, 'late'));
    const queued = { ids: [late.id], claimMarks: await store.claimMarks([late.id]) };
    const lock = (await new EnvironmentLock(redis, keys, 5_000).acquire('web'))!;
    const finished: string[] = [];

    await supersedeQueuedBehind('deploying', HEAD, queued, lock, { name: 'web' } as EnvironmentConfig, {
      logger: silentLogger(),
      store,
      run: (_environment, record) => {
        finished.push(record.id);
        return idleRun;
      },
    });

    expect(finished).toEqual([late.id]);
    await lock.release();
  });

  it('gives a push of its commit arriving while the deploy finishes the job a job of its own', async () => {
    const { producer, store, redis, keys } = await services();
    const late = await producer.enqueue('web', push(OLDER, 'late'));
    const queued = { ids: [late.id], claimMarks: await store.claimMarks([late.id]) };
    const lock = (await new EnvironmentLock(redis, keys, 5_000).acquire('web'))!;
    let forcePush: { id: string } | undefined;

    await supersedeQueuedBehind('deploying', HEAD, queued, lock, { name: 'web' } as EnvironmentConfig, {
      logger: silentLogger(),
      store,
      // The force-push back to OLDER lands after the deploy chose to finish the job, before it has.
      run: () =>
        ({
          superseded: async () => {
            forcePush = await producer.enqueue('web', push(OLDER, 'force-push'));
          },
        }) as unknown as JobRun,
    });

    // Joined, it would end with the job, superseded by a head older than the push.
    expect(forcePush?.id).toBeDefined();
    expect(forcePush?.id).not.toBe(late.id);
    expect((await store.get(forcePush!.id))?.state).toBe('queued');
    await lock.release();
  });

  it('lets a push join a job whose finish by the deploy ahead failed, once it runs', async () => {
    const { producer, store } = await services();
    const late = await producer.enqueue('web', push(OLDER, 'late'));
    // The deploy ahead sealed it and then could not finish it (Redis away, its lock lost).
    expect(await store.sealClaim(late.id, null)).toBe(true);
    await store.update(late.id, { state: 'running', sha: OLDER });

    const again = await producer.enqueue('web', push(OLDER, 'redelivered'));

    expect(again.id).toBe(late.id);
    expect(await store.claimMarks([late.id])).toEqual(['1']);
  });

  it("keeps the seal through a redelivery of the job's own push", async () => {
    const { producer, store, redis, keys } = await services();
    const late = await producer.enqueue('web', push(OLDER, 'late'));
    const queued = { ids: [late.id], claimMarks: await store.claimMarks([late.id]) };
    const lock = (await new EnvironmentLock(redis, keys, 5_000).acquire('web'))!;
    let redelivered: { id: string } | undefined;
    let forcePush: { id: string } | undefined;

    await supersedeQueuedBehind('deploying', HEAD, queued, lock, { name: 'web' } as EnvironmentConfig, {
      logger: silentLogger(),
      store,
      // Between the seal and the finish: GitHub redelivers the late push, then the branch is
      // force-pushed back to OLDER.
      run: () =>
        ({
          superseded: async () => {
            redelivered = await producer.enqueue('web', push(OLDER, 'late'));
            forcePush = await producer.enqueue('web', push(OLDER, 'force-push'));
          },
        }) as unknown as JobRun,
    });

    expect(redelivered?.id).toBe(late.id);
    expect(forcePush?.id).not.toBe(late.id);
    await lock.release();
  });
});
