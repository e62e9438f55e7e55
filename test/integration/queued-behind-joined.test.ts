import { describe, expect, it } from 'vitest';
import type { EnvironmentConfig } from '../../src/config/schema.js';
import { EnvironmentLock } from '../../src/deploy/environment-lock.js';
import type { JobRun } from '../../src/deploy/job-run.js';
import { supersedeQueuedBehind } from '../../src/deploy/queued-behind.js';
import { silentLogger } from '../../src/lib/logger.js';
import type { Trigger } from '../../src/queue/job-data.js';
import type { ProducerServices } from '../../src/runtime.js';
import { producerFixture } from '../helpers/producer.js';

const { services } = producerFixture('queued-behind');

const OLDER = 'a'.repeat(40);
const HEAD = 'b'.repeat(40);

function push(sha: string, deliveryId: string): Trigger {
  return { kind: 'webhook', provider: 'github', deliveryId, sha, pusher: 'octocat' };
}

/** A late webhook of the older commit, queued behind the deploy of HEAD, and its claim mark as that deploy read it before its fetch. */
async function lateJobBehindHead() {
  const connected = await services();
  const late = await connected.producer.enqueue('web', push(OLDER, 'late'));
  const queued = { ids: [late.id], claimMarks: await connected.store.claimMarks([late.id]) };
  return { ...connected, late, queued };
}

/**
 * The deploy of HEAD finishing the jobs queued behind it, under its lock: the ids it finishes.
 * `meanwhile` runs once it has chosen to finish one, before it has (a request arriving then).
 */
async function finishQueuedBehind(
  { store, redis, keys }: ProducerServices,
  queued: { ids: string[]; claimMarks: (string | null)[] },
  meanwhile: () => Promise<void> = () => Promise.resolve(),
): Promise<string[]> {
  const lock = (await new EnvironmentLock(redis, keys, 5_000).acquire('web'))!;
  const finished: string[] = [];
  try {
    await supersedeQueuedBehind('deploying', HEAD, queued, lock, { name: 'web' } as EnvironmentConfig, {
      logger: silentLogger(),
      store,
      run: (_environment, record) => {
        finished.push(record.id);
        // Finishes nothing itself: which jobs the worker would finish is what these tests see.
        return { superseded: meanwhile, coveredBy: meanwhile } as unknown as JobRun;
      },
    });
  } finally {
    await lock.release();
  }
  return finished;
}

describe('jobs queued behind a deploy', () => {
  it('leaves queued a job a push joined while the deploy fetched the head (a force-push back to its commit)', async () => {
    const behind = await lateJobBehindHead();
    // While the deploy fetched HEAD, the branch was force-pushed back to OLDER: its webhook joins the job.
    const forcePush = await behind.producer.enqueue('web', push(OLDER, 'force-push'));
    expect(forcePush.id).toBe(behind.late.id);

    expect(await finishQueuedBehind(behind, behind.queued)).toEqual([]);
    expect((await behind.store.get(behind.late.id))?.state).toBe('queued');
  });

  it('finishes one nobody joined as superseded by the head', async () => {
    const behind = await lateJobBehindHead();

    expect(await finishQueuedBehind(behind, behind.queued)).toEqual([behind.late.id]);
  });

  it('gives a push of its commit arriving while the deploy finishes the job a job of its own', async () => {
    const behind = await lateJobBehindHead();
    let forcePush: { id: string } | undefined;

    await finishQueuedBehind(behind, behind.queued, async () => {
      forcePush = await behind.producer.enqueue('web', push(OLDER, 'force-push'));
    });

    // Joined, it would end with the job, superseded by a head older than the push.
    expect(forcePush?.id).toBeDefined();
    expect(forcePush?.id).not.toBe(behind.late.id);
    expect((await behind.store.get(forcePush!.id))?.state).toBe('queued');
  });

  it("keeps the seal through a redelivery of the job's own push", async () => {
    const behind = await lateJobBehindHead();
    let redelivered: { id: string } | undefined;
    let forcePush: { id: string } | undefined;

    // Between the seal and the finish: GitHub redelivers the late push, then the branch is
    // force-pushed back to OLDER.
    await finishQueuedBehind(behind, behind.queued, async () => {
      redelivered = await behind.producer.enqueue('web', push(OLDER, 'late'));
      forcePush = await behind.producer.enqueue('web', push(OLDER, 'force-push'));
    });

    expect(redelivered?.id).toBe(behind.late.id);
    expect(forcePush?.id).not.toBe(behind.late.id);
  });

  it('lets a push join a job whose finish by the deploy ahead failed, once it runs', async () => {
    const { producer, store, late } = await lateJobBehindHead();
    // The deploy ahead sealed it and then could not finish it (Redis away, its lock lost).
    expect(await store.sealClaim(late.id, null)).toBe(true);
    await store.update(late.id, { state: 'running', sha: OLDER });

    const again = await producer.enqueue('web', push(OLDER, 'redelivered'));

    expect(again.id).toBe(late.id);
    expect(await store.claimMarks([late.id])).toEqual(['1']);
  });
});
