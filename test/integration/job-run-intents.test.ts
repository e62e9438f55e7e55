import { describe, expect, it } from 'vitest';
import type { EnvironmentConfig } from '../../src/config/schema.js';
import { MAYBE_CONFIGURED, MAYBE_EARLIER_OR_OTHER } from '../../src/deploy/attempt-resources.js';
import { JobRun } from '../../src/deploy/job-run.js';
import { silentLogger } from '../../src/lib/logger.js';
import { createMetrics } from '../../src/lib/metrics.js';
import type { Trigger } from '../../src/queue/job-data.js';
import { producerFixture } from '../helpers/producer.js';
import { configMapResult as cm } from '../helpers/resource-results.js';

const { services } = producerFixture('job-run-intents');

const OLDER = 'a'.repeat(40);
const HEAD = 'b'.repeat(40);
const environment = { name: 'web' } as EnvironmentConfig;
const NOT_REACHED = 'not applied: the deploy stopped before this object';

function push(sha: string, deliveryId: string): Trigger {
  return { kind: 'webhook', provider: 'github', deliveryId, sha, pusher: 'octocat' };
}

/** The attempts of one job, each a JobRun on the record as the attempt before left it (real Redis). */
async function attemptsOf(trigger: Trigger) {
  const { producer, store, redis, keys } = await services();
  const job = await producer.enqueue('web', trigger);
  const attempt = async (n: number): Promise<JobRun> => {
    const run = new JobRun(
      { store, metrics: createMetrics(), reporter: undefined },
      environment,
      (await store.get(job.id))!,
      silentLogger(),
    );
    await run.started(n);
    return run;
  };
  return { attempt, store, redis, keys, id: job.id, record: async () => (await store.get(job.id))! };
}

/** A first attempt that fails in a's group (the API server answers 503): b, in a later group, is never reached. */
async function failsInGroupOfA(attempt: (n: number) => Promise<JobRun>): Promise<void> {
  const first = await attempt(1);
  await first.deploying(HEAD);
  await first.changing([cm('a', 'configured'), cm('b', 'configured')]);
  await first.willRetry(new Error('apply failed: 503'), [
    cm('a', 'failed', 'apply failed: 503'),
    cm('b', 'skipped', NOT_REACHED),
  ]);
}

describe('what an attempt was about to write, as later attempts read it', () => {
  it('says nothing "may have changed" of an object no attempt reached', async () => {
    const { attempt, record } = await attemptsOf(push(HEAD, 'd1'));
    await failsInGroupOfA(attempt);

    // The last attempt fails before writing anything (a git fetch timed out).
    await (await attempt(2)).failed(new Error('git fetch timed out'), undefined);

    const { resources } = await record();
    expect(resources.find((r) => r.name === 'b')).toEqual(cm('b', 'skipped', NOT_REACHED));
    // a stays as its attempt recorded it.
    expect(resources.find((r) => r.name === 'a')).toEqual(cm('a', 'failed', 'apply failed: 503'));
  });

  it('does not list `configured` an object another job changed between its attempts', async () => {
    // A manual sync: a deploy of the same head by another job may run during its backoff.
    const { attempt, record } = await attemptsOf({ kind: 'manual', pusher: 'ops' });
    await failsInGroupOfA(attempt);

    // Meanwhile the commit was applied by another job: b is as git has it now.
    const second = await attempt(2);
    await second.deploying(HEAD);
    await second.succeeded(HEAD, [cm('a', 'unchanged'), cm('b', 'unchanged')]);

    const { resources } = await record();
    // a: its answer was lost, it may be this job's change (the record cannot tell); b is not.
    expect(resources).toEqual([cm('a', 'configured'), cm('b', 'unchanged')]);
  });

  it('says, on a job superseded after a killed attempt, what that attempt may have changed', async () => {
    const { attempt, record } = await attemptsOf(push(OLDER, 'd3'));
    // Killed mid-group: its last progress write lists b as not yet written.
    const killed = await attempt(1);
    await killed.deploying(OLDER);
    await killed.changing([cm('a', 'configured'), cm('b', 'configured')]);
    await killed.written([cm('a', 'configured'), cm('b', 'skipped', NOT_REACHED)]);

    // The next attempt finds a newer head with a job of its own.
    await (await attempt(2)).superseded(OLDER, HEAD);

    const finished = await record();
    expect(finished.state).toBe('superseded');
    expect(finished.resources).toEqual([cm('a', 'configured'), cm('b', 'skipped', MAYBE_CONFIGURED)]);
    expect(finished).not.toHaveProperty('configuring');
  });

  it("keeps no older commit's outcomes on a record of a newer commit failed before writing", async () => {
    const { attempt, record } = await attemptsOf({ kind: 'manual', pusher: 'ops' });
    const first = await attempt(1);
    await first.deploying(OLDER);
    await first.changing([cm('a', 'configured')]);
    await first.willRetry(new Error('apply failed: 503'), [cm('a', 'configured'), cm('b', 'failed', '503')]);

    // The branch moved: the retry deploys the new head, and fails before any write.
    const second = await attempt(2);
    await second.deploying(HEAD);
    await second.failed(new Error('manifests could not be loaded'), undefined);

    const finished = await record();
    expect(finished.sha).toBe(HEAD);
    expect(finished.resources).toEqual([]);
  });

  describe('when another job deployed the environment between two attempts', () => {
    /** An attempt killed mid-group: b written, not yet on record. */
    async function killedMidGroup(attempt: (n: number) => Promise<JobRun>): Promise<void> {
      const killed = await attempt(1);
      killed.deployRunStarted(false);
      await killed.deploying(HEAD);
      await killed.changing([cm('a', 'configured'), cm('b', 'configured')]);
      await killed.written([cm('a', 'configured'), cm('b', 'skipped', NOT_REACHED)]);
    }

    /** Attempt `n` finds both as git has them and succeeds; another job's deploy ran before it, or not. */
    async function findsAllDone(
      attempt: (n: number) => Promise<JobRun>,
      n: number,
      afterOtherDeploy: boolean,
    ): Promise<void> {
      const next = await attempt(n);
      next.deployRunStarted(afterOtherDeploy);
      await next.deploying(HEAD);
      await next.succeeded(HEAD, [cm('a', 'unchanged'), cm('b', 'unchanged')]);
    }

    it('lists what the killed attempt may have written `configured` when no other deploy came between', async () => {
      const { attempt, record } = await attemptsOf({ kind: 'manual', pusher: 'ops' });
      await killedMidGroup(attempt);

      await findsAllDone(attempt, 2, false);

      expect((await record()).resources).toEqual([cm('a', 'configured'), cm('b', 'configured')]);
    });

    it('does not claim it when one did, and says either may have written it', async () => {
      const { attempt, record } = await attemptsOf({ kind: 'manual', pusher: 'ops' });
      await killedMidGroup(attempt);

      // Another job's deploy ran first (a sync of the same head, say), which may have written b.
      await findsAllDone(attempt, 2, true);

      // a's change was on record before: this job's, whoever came since.
      expect((await record()).resources).toEqual([
        cm('a', 'configured'),
        cm('b', 'unchanged', MAYBE_EARLIER_OR_OTHER),
      ]);
    });

    it('forgets it once the job moves to another commit', async () => {
      const { attempt, store, id } = await attemptsOf({ kind: 'manual', pusher: 'ops' });
      await store.recordDeployStarting('web', id);
      await killedMidGroup(attempt);
      await store.recordDeployStarting('web', 'another-job');
      const { afterOtherDeploy } = await store.recordDeployStarting('web', id);
      expect(afterOtherDeploy).toBe(true);

      // The branch moved: what the job writes now is of the new head only.
      const next = await attempt(2);
      next.deployRunStarted(afterOtherDeploy);
      await next.deploying(OLDER);

      expect((await store.recordDeployStarting('web', id)).afterOtherDeploy).toBe(false);
    });

    it('keeps no record of the runs of a finished job', async () => {
      const { attempt, store, redis, keys, id } = await attemptsOf({ kind: 'manual', pusher: 'ops' });
      await store.recordDeployStarting('web', id);
      expect(await redis.exists(keys.jobDeployRun(id))).toBe(1);

      await findsAllDone(attempt, 1, false);

      // A re-sync every few minutes per environment would otherwise leave thousands of them.
      expect(await redis.exists(keys.jobDeployRun(id))).toBe(0);
    });
  });
});
