import { Worker } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { claimRepairPass, requeueLostJobs } from '../../src/deploy/queue-repair.js';
import { silentLogger } from '../../src/lib/logger.js';
import { connectProducer } from '../../src/runtime.js';
import { DEPLOY_JOB_NAME, DEPLOY_JOB_OPTIONS, DEPLOY_QUEUE, type Trigger } from '../../src/queue/job-data.js';
import {
  HISTORY_BYTES_PER_ENVIRONMENT,
  HISTORY_PER_ENVIRONMENT,
  newJobRecord,
  QUIET_RESYNCS_KEPT,
  type ClaimRequest,
  type JobStore,
} from '../../src/status/job-store.js';
import type { ResourceResult } from '../../src/status/job-record.js';
import type { Redis } from 'ioredis';
import { waitForRedis } from '../../src/queue/connection.js';
import { producerFixture } from '../helpers/producer.js';
import { startRedis, uniquePrefix } from '../helpers/redis.js';
import { until } from '../helpers/until.js';

const fixture = producerFixture('queue');
const { services } = fixture;

function push(sha: string, deliveryId: string): Trigger {
  return { kind: 'webhook', provider: 'github', deliveryId, sha, pusher: 'octocat' };
}

describe('deploy job queue', () => {
  it('writes the job record and the BullMQ job before enqueue resolves', async () => {
    const { producer, store, queue } = await services();
    const job = await producer.enqueue('staging', push('a'.repeat(40), 'd-1'));
    expect(job.created).toBe(true);
    const record = await store.get(job.id);
    expect(record).toMatchObject({
      id: job.id,
      environment: 'staging',
      state: 'queued',
      attempts: 0,
      sha: null,
    });
    expect(record?.trigger).toEqual(push('a'.repeat(40), 'd-1'));
    const queued = await queue.getJob(job.id);
    expect(queued?.data.environment).toBe('staging');
  });

  it('queues what Queue.add would: the same fields, options and data in the BullMQ job', async () => {
    const { producer, queue, redis: connection } = await services();
    const trigger = push('c'.repeat(40), 'd-same');
    const receivedAt = new Date().toISOString();
    const job = await producer.enqueue('staging', trigger, receivedAt);
    const referenceId = 'reference-job';
    await queue.add(
      DEPLOY_JOB_NAME,
      { environment: 'staging', trigger, receivedAt },
      {
        ...DEPLOY_JOB_OPTIONS,
        jobId: referenceId,
      },
    );
    const [ours, reference] = await Promise.all(
      [job.id, referenceId].map((id) => connection.hgetall(`${queue.qualifiedName}:${id}`)),
    );
    const comparable = (fields: Record<string, string>, id: string): Record<string, unknown> => {
      const { timestamp, opts, ...rest } = fields;
      expect(Number(timestamp)).toBeGreaterThan(0);
      const decoded = JSON.parse(opts ?? '{}') as Record<string, unknown>;
      expect(decoded.jobId).toBe(id);
      return { ...rest, opts: { ...decoded, jobId: '(its id)' } };
    };
    expect(Object.keys(ours ?? {}).length).toBeGreaterThan(3);
    expect(comparable(ours!, job.id)).toEqual(comparable(reference!, referenceId));
    const [oursJob, referenceJob] = await Promise.all([queue.getJob(job.id), queue.getJob(referenceId)]);
    expect(oursJob?.opts).toEqual({ ...referenceJob?.opts, jobId: job.id });
    expect(oursJob?.opts.attempts).toBe(DEPLOY_JOB_OPTIONS.attempts);
    expect(await queue.getWaitingCount()).toBe(2);
  });

  it('keeps every key of its scripts in the hash tag, so they stay valid on a Redis Cluster', async () => {
    const { producer, redis: connection, keys } = await services();
    const monitor = await (connection as Redis).duplicate().monitor();
    const scriptKeys: string[] = [];
    let sawEnd: () => void = () => undefined;
    const ended = new Promise<void>((resolve) => (sawEnd = resolve));
    monitor.on('monitor', (_time: string, args: string[]) => {
      const command = args[0]?.toLowerCase();
      if (command === 'echo' && args[1] === 'slot-test-end') sawEnd();
      if (command === 'evalsha') scriptKeys.push(...args.slice(3, 3 + Number(args[2])));
    });
    try {
      await producer.enqueue('staging', push('9'.repeat(40), 'd-slot'));
      await producer.enqueue('staging', { kind: 'manual' });
      // The monitor feed is its own connection: this marker, sent last, arrives last.
      await connection.echo('slot-test-end');
      await ended;
    } finally {
      monitor.disconnect();
    }
    // Two claims and BullMQ's two adds.
    expect(scriptKeys.length).toBeGreaterThanOrEqual(12);
    expect(scriptKeys.filter((key) => !key.startsWith(`${keys.bullPrefix}:`))).toEqual([]);
  });

  it('redelivery of the same delivery id returns the same job', async () => {
    const { producer, queue } = await services();
    const first = await producer.enqueue('staging', push('b'.repeat(40), 'd-2'));
    const again = await producer.enqueue('staging', push('b'.repeat(40), 'd-2'));
    expect(again).toEqual({ ...first, created: false });
    expect(await queue.count()).toBe(1);
  });

  it('concurrent deliveries of one push create exactly one job', async () => {
    const { producer, queue } = await services();
    const results = await Promise.all(
      Array.from({ length: 20 }, () => producer.enqueue('staging', push('c'.repeat(40), 'd-3'))),
    );
    expect(new Set(results.map((r) => r.id)).size).toBe(1);
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect(await queue.count()).toBe(1);
  });

  it('a burst of different pushes, sent together, gives each its own record and queue entry', async () => {
    const { producer, store, queue } = await services();
    const pushes = Array.from({ length: 30 }, (_, i) => ({
      environment: i % 2 === 0 ? 'staging' : 'production',
      trigger: push(i.toString(16).padStart(40, '0'), `burst-${i}`),
    }));
    const jobs = await Promise.all(pushes.map((p) => producer.enqueue(p.environment, p.trigger)));
    expect(jobs.every((job) => job.created)).toBe(true);
    expect(new Set(jobs.map((job) => job.id)).size).toBe(30);
    for (const [i, job] of jobs.entries()) {
      const record = await store.get(job.id);
      expect(record).toMatchObject({ environment: pushes[i]!.environment, trigger: pushes[i]!.trigger });
      const queued = await queue.getJob(job.id);
      expect(queued?.data).toMatchObject({
        environment: pushes[i]!.environment,
        trigger: pushes[i]!.trigger,
      });
    }
    expect(await queue.count()).toBe(30);
  });

  it('a push whose commit points at an unreadable record gets a job, and so does the rest of its burst', async () => {
    const { producer, redis: connection, keys } = await services();
    const sha = 'e'.repeat(40);
    await connection.set(keys.shaJob('staging', sha), 'broken');
    await connection.set(keys.job('broken'), 'not json');
    const jobs = await Promise.all([
      producer.enqueue('staging', push('f'.repeat(40), 'd-before')),
      producer.enqueue('staging', push(sha, 'd-broken')),
      producer.enqueue('staging', push('1'.repeat(40), 'd-after')),
    ]);
    expect(jobs.map((job) => job.created)).toEqual([true, true, true]);
    expect(jobs[1].id).not.toBe('broken');
  });

  it('undoing a claim keeps a job that another request was answered with meanwhile', async () => {
    const { store } = await services();
    const sha = '7'.repeat(40);
    const receivedAt = new Date().toISOString();
    const first = { id: 'job-first', environment: 'staging', trigger: push(sha, 'd-first'), receivedAt };
    const second = { id: 'job-second', environment: 'staging', trigger: push(sha, 'd-second'), receivedAt };
    expect(await store.claimMany([first])).toEqual([{ id: 'job-first', created: true }]);
    // Same commit from another delivery: answered with the first job.
    expect(await store.claimMany([second])).toEqual([{ id: 'job-first', created: false, matchedBy: 'sha' }]);

    // The first request's queue write failed: it undoes its claim, but not the job now shared.
    expect(await store.release(first)).toBe(false);
    expect(await store.get('job-first')).toMatchObject({ state: 'queued' });
    // Its redelivery finds the same job (and the producer repairs its queue entry).
    expect(await store.claimMany([{ ...first, id: 'job-redelivered' }])).toEqual([
      { id: 'job-first', created: false, matchedBy: 'delivery' },
    ]);

    // A claim nobody else was answered with is undone whole: its redelivery starts afresh.
    const alone = {
      id: 'job-alone',
      environment: 'staging',
      trigger: push('8'.repeat(40), 'd-alone'),
      receivedAt,
    };
    await store.claimMany([alone]);
    expect(await store.release(alone)).toBe(true);
    expect(await store.get('job-alone')).toBeNull();
    expect(await store.claimMany([{ ...alone, id: 'job-alone-2' }])).toEqual([
      { id: 'job-alone-2', created: true },
    ]);
  });

  it('keeps a bounded history per environment, dropping the oldest finished records', async () => {
    const { producer, store } = await services();
    const start = Date.parse('2026-01-01T00:00:00Z');
    const ids: string[] = [];
    for (let i = 0; i < HISTORY_PER_ENVIRONMENT + 100; i++) {
      const receivedAt = new Date(start + i * 1000).toISOString();
      // Each its own job, as a resume queues one (a sync would join the one still queued).
      const job = await producer.enqueue('staging', { kind: 'manual' }, receivedAt, undefined, undefined, {
        pendingSync: 'lead',
      });
      ids.push(job.id);
    }
    // Queued jobs are never dropped, however many: each holds a 202.
    expect(await store.list({ environment: 'staging', limit: 10_000 })).toHaveLength(ids.length);

    // All but the second oldest finish, oldest first, as a worker would record them; the third
    // oldest only now, the others long ago.
    for (const [index, id] of ids.entries()) {
      if (index === 1) continue;
      const finishedAt = index === 2 ? new Date() : new Date(start + index * 1000 + 500);
      await store.update(id, { state: 'succeeded', finishedAt: finishedAt.toISOString() });
      await store.recordFinished('staging', id);
    }

    const kept = await store.list({ environment: 'staging', limit: 10_000 });
    expect(kept.length).toBeGreaterThanOrEqual(HISTORY_PER_ENVIRONMENT);
    expect(kept.length).toBeLessThan(HISTORY_PER_ENVIRONMENT + 100);
    expect(kept[0]!.id).toBe(ids.at(-1));
    expect(await store.get(ids[0]!)).toBeNull();
    expect(await store.get(ids[1]!)).toMatchObject({ state: 'queued' });
    // Just finished: whoever follows it (sync --wait) still reads it.
    expect(await store.get(ids[2]!)).toMatchObject({ state: 'succeeded' });
    // The cross-environment index drops the same jobs.
    expect(await store.list({ limit: 10_000 })).toHaveLength(kept.length);
  });

  it('keeps only the newest few re-syncs that changed nothing, and every other job', async () => {
    const { store, redis: connection, keys } = await services();
    const start = Date.parse('2026-01-01T00:00:00Z');
    const deploys: string[] = [];
    const quiet: string[] = [];
    for (let i = 0; i < 40; i++) {
      const id = `job-${i}`;
      const resync = i % 4 !== 0;
      // A re-sync that corrected drift is news, like a deploy.
      const changedSomething = i === 5;
      await store.claimMany([
        {
          id,
          environment: 'staging',
          trigger: resync ? { kind: 'reconcile' } : { kind: 'manual' },
          receivedAt: new Date(start + i * 1000).toISOString(),
        },
      ]);
      await store.finish(
        id,
        { state: 'succeeded', finishedAt: new Date(start + i * 1000 + 500).toISOString() },
        undefined,
        { quietResync: resync && !changedSomething },
      );
      (resync && !changedSomething ? quiet : deploys).push(id);
    }

    const kept = (await store.list({ environment: 'staging', limit: 1_000 })).map((job) => job.id);
    expect(kept).toEqual(expect.arrayContaining(deploys));
    const quietKept = quiet.filter((id) => kept.includes(id));
    expect(quietKept).toEqual(quiet.slice(-QUIET_RESYNCS_KEPT));
    expect(kept).toHaveLength(deploys.length + QUIET_RESYNCS_KEPT);
    expect(await connection.zcard(keys.quietResyncs('staging'))).toBe(QUIET_RESYNCS_KEPT);
    expect(await store.list({ limit: 1_000 })).toHaveLength(kept.length);
  });

  it('bounds the history of an environment by size too, and drops the sha and delivery keys of what it drops', async () => {
    const { store, redis: connection, keys } = await services();
    // About 130 KB a record: the job of a deploy of 1,500 objects.
    const resources: ResourceResult[] = Array.from({ length: 1_500 }, (_, n) => ({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      namespace: 'apps',
      name: `config-${String(n).padStart(5, '0')}`,
      action: 'unchanged',
    }));
    const start = Date.parse('2026-01-01T00:00:00Z');
    const jobs: ClaimRequest[] = [];
    for (let i = 0; i < 160; i++) {
      const sha = i.toString(16).padStart(40, '0');
      const request: ClaimRequest = {
        id: `big-${i}`,
        environment: 'staging',
        trigger: push(sha, `delivery-${i}`),
        receivedAt: new Date(start + i * 1000).toISOString(),
      };
      jobs.push(request);
      await store.claimMany([request]);
      await store.finish(request.id, {
        state: 'succeeded',
        sha,
        resources,
        finishedAt: new Date(start + i * 1000 + 500).toISOString(),
      });
    }

    const kept = (await store.list({ environment: 'staging', limit: 1_000 })).map((job) => job.id);
    const sizes = await Promise.all(kept.map((id) => connection.strlen(keys.job(id))));
    const bytes = sizes.reduce((sum, size) => sum + size, 0);
    expect(bytes).toBeLessThanOrEqual(HISTORY_BYTES_PER_ENVIRONMENT);
    expect(bytes).toBeGreaterThan(HISTORY_BYTES_PER_ENVIRONMENT - 2 * sizes[0]!);
    expect(kept[0]).toBe('big-159');
    expect(kept.length).toBeLessThan(jobs.length);

    const [dropped, stayed] = [jobs[0]!, jobs.at(-1)!];
    const keysOf = (job: ClaimRequest) => [
      keys.job(job.id),
      keys.shaJob('staging', job.trigger.sha!),
      keys.delivery('github', job.trigger.deliveryId!, 'staging'),
    ];
    expect(await connection.exists(...keysOf(dropped))).toBe(0);
    expect(await connection.exists(...keysOf(stayed))).toBe(3);
  });

  it('drops every record older than the one that filled the size budget, leaving no gap', async () => {
    const { store } = await services();
    const start = Date.parse('2026-01-01T00:00:00Z');
    const objects = (count: number): ResourceResult[] =>
      Array.from({ length: count }, (_, n) => ({
        apiVersion: 'v1',
        kind: 'ConfigMap',
        namespace: 'apps',
        name: `config-${String(n).padStart(5, '0')}`,
        action: 'unchanged',
      }));
    // Oldest first: 9 small records, one of ~3 MB, then 20 of ~0.7 MB (14 MB together): the
    // large one overflows the budget, and each small one would fit beside the 20.
    const sizes = [...Array<number>(9).fill(1), 30_000, ...Array<number>(20).fill(7_000)];
    for (const [i, count] of sizes.entries()) {
      const id = `sized-${i}`;
      await store.claimMany([
        {
          id,
          environment: 'staging',
          trigger: { kind: 'manual' },
          receivedAt: new Date(start + i * 1000).toISOString(),
        },
      ]);
      await store.finish(id, {
        state: 'succeeded',
        resources: objects(count),
        finishedAt: new Date(start + i * 1000 + 500).toISOString(),
      });
    }
    const kept = (await store.list({ environment: 'staging', limit: 100 })).map((job) => job.id);
    expect(kept).toEqual(
      sizes
        .map((_, i) => `sized-${i}`)
        .slice(-20)
        .reverse(),
    );
  });

  it('counts the newest jobs by state without reading their object lists', async () => {
    const { store } = await services();
    const start = Date.parse('2026-01-01T00:00:00Z');
    const states = ['succeeded', 'failed', 'succeeded', 'queued', 'superseded', 'succeeded'] as const;
    for (const [i, state] of states.entries()) {
      // One id so long that the state is past the first bytes of its record.
      const id = i === 2 ? `job-${'x'.repeat(600)}` : `job-${i}`;
      await store.claimMany([
        {
          id,
          environment: 'staging',
          trigger: { kind: 'manual' },
          receivedAt: new Date(start + i).toISOString(),
        },
      ]);
      if (state !== 'queued') await store.update(id, { state });
    }
    expect(Object.fromEntries(await store.countStates(100))).toEqual({
      succeeded: 3,
      failed: 1,
      queued: 1,
      superseded: 1,
    });
    // The newest three only.
    expect(Object.fromEntries(await store.countStates(3))).toEqual({
      succeeded: 1,
      queued: 1,
      superseded: 1,
    });
  });

  it('the same sha from another delivery returns the queued job', async () => {
    const { producer } = await services();
    const first = await producer.enqueue('staging', push('d'.repeat(40), 'd-4'));
    const second = await producer.enqueue('staging', push('d'.repeat(40), 'd-5'));
    expect(second.id).toBe(first.id);
    const otherEnvironment = await producer.enqueue('production', push('d'.repeat(40), 'd-5'));
    expect(otherEnvironment.id).not.toBe(first.id);
  });

  it('a finished sha that is still live is not queued again, one the environment moved away from is', async () => {
    const { producer, store } = await services();
    const sha = 'e'.repeat(40);
    const first = await producer.enqueue('staging', push(sha, 'd-6'));
    await store.update(first.id, { state: 'succeeded', sha, finishedAt: new Date().toISOString() });
    await store.recordFinished('staging', first.id, { sha, at: new Date().toISOString() });

    const whileLive = await producer.enqueue('staging', push(sha, 'd-7'));
    expect(whileLive).toMatchObject({ id: first.id, created: false });

    await store.recordFinished('staging', 'other', { sha: 'f'.repeat(40), at: new Date().toISOString() });
    const forcePushedBack = await producer.enqueue('staging', push(sha, 'd-8'));
    expect(forcePushedBack.created).toBe(true);
    expect(forcePushedBack.id).not.toBe(first.id);
  });

  it('the last success is no longer live once a deploy of another commit started (it failed, partly applied)', async () => {
    const { producer, store } = await services();
    const good = '1'.repeat(40);
    const broken = '2'.repeat(40);
    const first = await producer.enqueue('staging', push(good, 'd-good'));
    await store.recordDeploying('staging', good);
    await store.update(first.id, { state: 'succeeded', sha: good, finishedAt: new Date().toISOString() });
    await store.recordFinished('staging', first.id, { sha: good, at: new Date().toISOString() });
    expect(await store.environmentStatus('staging')).toMatchObject({ lastAppliedSha: good, liveSha: good });

    await store.recordDeploying('staging', broken);
    await store.recordFinished('staging', 'failed-job');

    // The API's last success stays; what the cluster holds is no longer known to be it.
    expect(await store.environmentStatus('staging')).toMatchObject({ lastAppliedSha: good, liveSha: null });
    const forcePushedBack = await producer.enqueue('staging', push(good, 'd-rollback'));
    expect(forcePushedBack.created).toBe(true);
  });

  it('a late duplicate of a commit whose deploy failed returns that job, until another push or deploy comes', async () => {
    const { producer, store } = await services();
    const at = (second: number) => new Date(Date.UTC(2026, 11, 7, 12, 0, second)).toISOString();
    const failOn = async (environment: string, jobId: string, sha: string | null) => {
      if (sha) await store.recordDeploying(environment, sha);
      await store.update(jobId, { state: 'failed', sha, finishedAt: new Date().toISOString() });
      await store.recordFinished(environment, jobId);
    };
    const broken = '5'.repeat(40);
    const failed = await producer.enqueue('staging', push(broken, 'd-fail'), at(1));
    await failOn('staging', failed.id, broken);

    const duplicate = await producer.enqueue('staging', push(broken, 'd-fail-again'), at(2));
    expect(duplicate).toMatchObject({ id: failed.id, created: false, sha: broken });

    // A push of another commit, queued and not started, then a force-push back: a real deploy.
    const other = await producer.enqueue('staging', push('6'.repeat(40), 'd-other'), at(3));
    const forcePushedBack = await producer.enqueue('staging', push(broken, 'd-back'), at(4));
    expect(forcePushedBack.created).toBe(true);
    expect([failed.id, other.id]).not.toContain(forcePushedBack.id);

    // A deploy of another commit started since (a re-sync of a newer head, say).
    const retried = await producer.enqueue('production', push(broken, 'p-fail'), at(1));
    await failOn('production', retried.id, broken);
    await store.recordDeploying('production', '7'.repeat(40));
    expect((await producer.enqueue('production', push(broken, 'p-again'), at(2))).created).toBe(true);

    // A job that failed before it chose its commit never tried it: the duplicate does.
    const unfetched = await producer.enqueue('review', push(broken, 'r-fail'), at(1));
    await failOn('review', unfetched.id, null);
    expect((await producer.enqueue('review', push(broken, 'r-again'), at(2))).created).toBe(true);
  });

  it("indexes a scheduler run's record even when the run that wrote it died before indexing it", async () => {
    const { store, redis: connection, keys } = await services();
    const request: ClaimRequest = {
      id: 'repeat:reconcile:staging:1',
      environment: 'staging',
      trigger: { kind: 'reconcile' },
      receivedAt: new Date().toISOString(),
    };
    // What the killed run left: the record, and no index entry.
    await connection.set(keys.job(request.id), JSON.stringify(newJobRecord(request)));
    expect(await store.ensure(request)).toMatchObject({ id: request.id, state: 'queued' });
    expect((await store.list({ environment: 'staging', limit: 10 })).map((record) => record.id)).toContain(
      request.id,
    );
  });

  it('while a deploy chooses its commit no commit is live; it puts back what was, unless someone wrote since', async () => {
    const { store } = await services();
    const live = '3'.repeat(40);
    const newer = '4'.repeat(40);
    await store.recordFinished('staging', 'live-job', { sha: live, at: new Date().toISOString() });

    const { mark } = await store.recordDeployStarting('staging', 'job-a');
    expect(await store.environmentStatus('staging')).toMatchObject({ liveSha: null, deployStarting: true });
    await store.restoreDeploying('staging', mark);
    expect(await store.environmentStatus('staging')).toMatchObject({ liveSha: live, deployStarting: false });

    // A run that lost its lock to another run of the same job: its restore leaves the other's mark.
    const { mark: lost } = await store.recordDeployStarting('staging', 'job-b');
    const { mark: taken } = await store.recordDeployStarting('staging', 'job-b');
    await store.restoreDeploying('staging', lost);
    expect(await store.environmentStatus('staging')).toMatchObject({ liveSha: null, deployStarting: true });
    // The run that took over puts back what was there before either (not the first run's mark).
    await store.restoreDeploying('staging', taken);
    expect(await store.environmentStatus('staging')).toMatchObject({ liveSha: live, deployStarting: false });

    // Once a run has chosen its commit, an earlier run's restore changes nothing.
    const { mark: stale } = await store.recordDeployStarting('staging', 'job-c');
    await store.recordDeployStarting('staging', 'job-d');
    await store.recordDeploying('staging', newer);
    await store.restoreDeploying('staging', stale);
    expect(await store.environmentStatus('staging')).toMatchObject({ deployingSha: newer, liveSha: null });
  });

  it("tells a job's deploy run whether another job's ran since its previous one, and remembers it", async () => {
    const { store } = await services();
    const afterOther = async (environment: string, jobId: string) =>
      (await store.recordDeployStarting(environment, jobId)).afterOtherDeploy;

    expect(await afterOther('staging', 'job-a')).toBe(false);
    // Runs of one job in a row (attempts killed before writing anything of their own included).
    expect(await afterOther('staging', 'job-a')).toBe(false);
    expect(await afterOther('staging', 'job-a')).toBe(false);
    // Another environment's runs are not in between.
    expect(await afterOther('production', 'job-p')).toBe(false);
    expect(await afterOther('staging', 'job-a')).toBe(false);

    expect(await afterOther('staging', 'job-b')).toBe(false);
    expect(await afterOther('staging', 'job-a')).toBe(true);
    // Once another's came between, for the rest of the job's runs, until it moves to another commit.
    expect(await afterOther('staging', 'job-a')).toBe(true);
    await store.clearDeployRunDoubt('job-a');
    expect(await afterOther('staging', 'job-a')).toBe(false);
  });

  it('lists jobs newest first, filtered by environment and state', async () => {
    const { producer, store } = await services();
    const ids: string[] = [];
    for (let i = 0; i < 5; i += 1) {
      const job = await producer.enqueue(
        i % 2 === 0 ? 'staging' : 'production',
        push(i.toString(16).padStart(40, '0'), `listed-${i}`),
        new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(),
      );
      ids.push(job.id);
    }
    await store.update(ids[4]!, { state: 'failed' });
    const staging = await store.list({ environment: 'staging', limit: 10 });
    expect(staging.map((job) => job.id)).toEqual([ids[4], ids[2], ids[0]]);
    const failed = await store.list({ state: 'failed', limit: 10 });
    expect(failed.map((job) => job.id)).toEqual([ids[4]]);
    expect((await store.list({ limit: 2 })).map((job) => job.id)).toEqual([ids[4], ids[3]]);
  });

  it('a redelivery whose job record is corrupt fails as a fault, not as Redis unavailable', async () => {
    const { producer, redis: connection, keys } = await services();
    const first = await producer.enqueue('staging', push('5'.repeat(40), 'd-corrupt'));
    await connection.set(keys.job(first.id), 'not json');
    const again = producer.enqueue('staging', push('5'.repeat(40), 'd-corrupt'));
    await expect(again).rejects.toBeInstanceOf(SyntaxError);
  });

  it('fails fast with an unavailable error when Redis is down', async () => {
    const own = await startRedis();
    const connected = connectProducer({ url: own.url, cluster: false }, uniquePrefix('down'));
    try {
      await waitForRedis(connected.redis, 5_000);
      await own.kill();
      const started = Date.now();
      await expect(connected.producer.enqueue('staging', { kind: 'manual' })).rejects.toMatchObject({
        code: 'unavailable',
        status: 503,
      });
      expect(Date.now() - started).toBeLessThan(3_000);
    } finally {
      await connected.close();
      await own.stop();
    }
  });

  it('still enqueues after the process stalled for longer than the command timeout at start-up', async () => {
    const connected = await services();
    // A stall (a long GC pause, a CPU-starved container) right after connecting: anything
    // sent at 'ready' times out before its answer is read. It must not fail the queue for good.
    const until = Date.now() + 1_500;
    while (Date.now() < until);
    const job = await connected.producer.enqueue('staging', { kind: 'manual' });
    expect(job.created).toBe(true);
    expect(await connected.queue.getJob(job.id)).toBeDefined();
  });
});

describe('manual syncs', () => {
  /** What a worker writes as it takes a job (JobRun.started): from then on it fetches the head. */
  const start = (store: JobStore, id: string) =>
    store.update(id, { state: 'running', attempts: 1, startedAt: new Date().toISOString() });

  it('a sync while an earlier one is queued and not started returns that job, with one queue entry', async () => {
    const { producer, store, queue } = await services();
    const first = await producer.enqueue('staging', { kind: 'manual' });
    const again = await producer.enqueue('staging', { kind: 'manual' });

    expect(first.created).toBe(true);
    expect(again).toEqual({ id: first.id, environment: 'staging', created: false });
    expect(await store.list({ environment: 'staging', limit: 10 })).toHaveLength(1);
    expect(await queue.count()).toBe(1);
    // Its record is the first sync's, trigger and all.
    expect(await store.get(first.id)).toMatchObject({ state: 'queued', trigger: { kind: 'manual' } });
  });

  it('ten syncs at once, from one process and from three other connections, queue one job', async () => {
    const connected = await services();
    const prefix = connected.keys.bullPrefix.slice(1, -1);
    const others = [1, 2, 3].map(() => connectProducer({ url: fixture.redis().url, cluster: false }, prefix));
    try {
      await Promise.all(others.map((other) => waitForRedis(other.redis, 5_000)));
      const producers = [connected, ...others].map((each) => each.producer);
      const jobs = await Promise.all(
        Array.from({ length: 10 }, (_, n) =>
          producers[n % producers.length]!.enqueue('staging', { kind: 'manual' }),
        ),
      );

      expect(new Set(jobs.map((job) => job.id)).size).toBe(1);
      expect(jobs.filter((job) => job.created)).toHaveLength(1);
      expect(await connected.store.list({ environment: 'staging', limit: 10 })).toHaveLength(1);
      // The entries of the syncs that joined are removed, or dropped by the worker that meets them first.
      await until(async () => (await connected.queue.count()) === 1);
    } finally {
      await Promise.all(others.map((other) => other.close()));
    }
  });

  it('a sync once the job has started queues a new job, which the next sync joins', async () => {
    const { producer, store, redis: connection, keys } = await services();
    const first = await producer.enqueue('staging', { kind: 'manual' });
    await start(store, first.id);

    // Taken back as the job started: the head it fetches may be older than this sync.
    expect(await connection.get(keys.pendingSync('staging'))).toBeNull();
    const second = await producer.enqueue('staging', { kind: 'manual' });
    const third = await producer.enqueue('staging', { kind: 'manual' });

    expect(second.created).toBe(true);
    expect(second.id).not.toBe(first.id);
    expect(third).toMatchObject({ id: second.id, created: false });
  });

  it('a started job is not joined even should its key still name it (the record decides)', async () => {
    const { producer, store, redis: connection, keys } = await services();
    const first = await producer.enqueue('staging', { kind: 'manual' });
    await start(store, first.id);
    // As if taking the key back had failed.
    await connection.set(keys.pendingSync('staging'), first.id);

    const second = await producer.enqueue('staging', { kind: 'manual' });

    expect(second.created).toBe(true);
    expect(await connection.get(keys.pendingSync('staging'))).toBe(second.id);
  });

  it.each(['succeeded', 'failed', 'superseded'] as const)(
    'a sync after the job %s queues a new job, its key taken back',
    async (state) => {
      const { producer, store, redis: connection, keys } = await services();
      const first = await producer.enqueue('staging', { kind: 'manual' });
      await store.finish(first.id, { state, finishedAt: new Date().toISOString() });

      expect(await connection.get(keys.pendingSync('staging'))).toBeNull();
      const second = await producer.enqueue('staging', { kind: 'manual' });
      expect(second).toMatchObject({ created: true });
      expect(second.id).not.toBe(first.id);
    },
  );

  it('a job retried or handed back is queued again, but has started: a sync gets a job of its own', async () => {
    const { producer, store, redis: connection, keys } = await services();
    const first = await producer.enqueue('staging', { kind: 'manual' });
    await start(store, first.id);
    await store.update(first.id, { state: 'queued', error: 'connect ECONNREFUSED' });
    // Even should its key still name it: its record says it made an attempt.
    await connection.set(keys.pendingSync('staging'), first.id);

    const second = await producer.enqueue('staging', { kind: 'manual' });

    expect(second.created).toBe(true);
  });

  it('a resume queues its own job even while a sync waits, and the syncs after it join the resume', async () => {
    const { producer } = await services();
    const waiting = await producer.enqueue('staging', { kind: 'manual' });
    const resume = await producer.enqueue('staging', { kind: 'manual' }, undefined, undefined, undefined, {
      pendingSync: 'lead',
    });
    const sync = await producer.enqueue('staging', { kind: 'manual' });

    expect(resume.created).toBe(true);
    expect(resume.id).not.toBe(waiting.id);
    expect(sync).toMatchObject({ id: resume.id, created: false });
  });

  it("joins only a manual sync of the same environment: not another's, a push's or a re-sync's", async () => {
    const { producer, store } = await services();
    const production = await producer.enqueue('production', { kind: 'manual' });
    const pushed = await producer.enqueue('staging', push('d'.repeat(40), 'd-queued'));
    await store.ensure({
      id: 'resync-queued',
      environment: 'staging',
      trigger: { kind: 'reconcile' },
      receivedAt: new Date().toISOString(),
    });

    const sync = await producer.enqueue('staging', { kind: 'manual' });

    expect(sync.created).toBe(true);
    expect([production.id, pushed.id, 'resync-queued']).not.toContain(sync.id);
  });

  it('a claim undone (its queue write failed) takes its key back, unless another sync was answered with it', async () => {
    const { store, redis: connection, keys } = await services();
    const receivedAt = new Date().toISOString();
    const sync = (id: string) => ({
      id,
      environment: 'staging',
      trigger: { kind: 'manual' as const },
      receivedAt,
      pendingSync: 'join' as const,
    });
    await store.claimMany([sync('alone')]);
    expect(await store.release(sync('alone'))).toBe(true);
    expect(await connection.get(keys.pendingSync('staging'))).toBeNull();

    expect(await store.claimMany([sync('first'), sync('joined')])).toEqual([
      { id: 'first', created: true },
      { id: 'first', created: false, matchedBy: 'pendingSync' },
    ]);
    expect(await store.release(sync('first'))).toBe(false);
    expect(await store.get('first')).toMatchObject({ state: 'queued' });
    expect(await connection.get(keys.pendingSync('staging'))).toBe('first');
  });

  it('a key naming a record that is gone is replaced by the next sync', async () => {
    const { producer, redis: connection, keys } = await services();
    await connection.set(keys.pendingSync('staging'), 'lost-job');

    const sync = await producer.enqueue('staging', { kind: 'manual' });

    expect(sync.created).toBe(true);
    expect(await connection.get(keys.pendingSync('staging'))).toBe(sync.id);
  });
});

const TEN_MINUTES_AGO = () => new Date(Date.now() - 10 * 60_000).toISOString();

describe('requeueLostJobs', () => {
  it('queues again a job whose record is queued but which has no queue entry, once', async () => {
    const { store, queue } = await services();
    const trigger = push('a'.repeat(40), 'd-lost');
    // A claim whose queue entry never landed (its reply was lost and the receiver answered 503).
    const target = { branch: 'env/staging', path: '.', cluster: 'local', namespace: 'staging' };
    await store.claimMany([
      { id: 'job-lost', environment: 'staging', trigger, receivedAt: TEN_MINUTES_AGO(), target },
    ]);
    const input = { store, queue, environments: ['staging'], logger: silentLogger() };

    expect(await requeueLostJobs(input)).toEqual(['job-lost']);
    const entry = await queue.getJob('job-lost');
    // With the receiver's configuration it was claimed with: a worker configured otherwise hands it back.
    expect(entry?.data).toMatchObject({ environment: 'staging', trigger, target });
    expect(await queue.getJobState('job-lost')).toBe('waiting');
    // The entry is there now: nothing more to do, however many workers look.
    expect(await requeueLostJobs(input)).toEqual([]);
    expect(await queue.count()).toBe(1);
  });

  it('leaves a re-sync that finished between the scan and the look at its entry as it ended', async () => {
    const { store, queue } = await services();
    const id = 'repeat:reconcile:staging:1700000000001';
    await store.ensure({
      id,
      environment: 'staging',
      trigger: { kind: 'reconcile' },
      receivedAt: TEN_MINUTES_AGO(),
    });
    // The run ends (record first, then BullMQ's entry) just as the pass asks for the entry's state.
    const getJobState = queue.getJobState.bind(queue);
    const finishing = Object.assign(Object.create(queue) as typeof queue, {
      getJobState: async (jobId: string) => {
        await store.update(jobId, { state: 'succeeded', finishedAt: new Date().toISOString() });
        await getJobState(jobId);
        return 'completed' as const;
      },
    });

    expect(
      await requeueLostJobs({ store, queue: finishing, environments: ['staging'], logger: silentLogger() }),
    ).toEqual([]);
    const record = await store.get(id);
    expect(record?.state).toBe('succeeded');
    expect(record?.message).toBeUndefined();
  });

  it('closes a lost re-sync (its scheduler id cannot be queued again) and still repairs the jobs after it', async () => {
    const { store, queue } = await services();
    await store.ensure({
      id: 'repeat:reconcile:staging:1700000000000',
      environment: 'staging',
      trigger: { kind: 'reconcile' },
      receivedAt: TEN_MINUTES_AGO(),
    });
    const trigger = push('b'.repeat(40), 'd-lost-too');
    await store.claimMany([
      { id: 'job-lost-too', environment: 'staging', trigger, receivedAt: TEN_MINUTES_AGO() },
    ]);
    const input = { store, queue, environments: ['staging'], logger: silentLogger() };

    expect(await requeueLostJobs(input)).toEqual(['job-lost-too']);
    expect(await store.get('repeat:reconcile:staging:1700000000000')).toMatchObject({
      state: 'superseded',
      message: "lost its queue entry; the next interval's re-sync does its work",
    });
  });

  it('finds the lost job among a long history without reading any record whole', async () => {
    const { store, queue, redis: connection } = await services();
    const resources = Array.from({ length: 1_000 }, (_, i) => ({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      namespace: 'staging',
      name: `config-${i}`,
      action: 'unchanged' as const,
    }));
    await store.claimMany([
      {
        id: 'job-lost-deep',
        environment: 'staging',
        trigger: push('d'.repeat(40), 'd-lost-deep'),
        receivedAt: TEN_MINUTES_AGO(),
      },
    ]);
    // Finished deploys after it, each listing its objects: about 100 KB a record.
    const finished = Array.from({ length: 40 }, (_, i) => ({
      id: `job-done-${i}`,
      environment: 'staging',
      trigger: push(String(i).padStart(40, 'e'), `d-done-${i}`),
      receivedAt: new Date().toISOString(),
    }));
    await store.claimMany(finished);
    for (const { id } of finished)
      await store.update(id, { state: 'succeeded', finishedAt: new Date().toISOString(), resources });
    const sent = async (): Promise<number> =>
      Number(/total_net_output_bytes:(\d+)/.exec(await connection.info('stats'))?.[1]);
    const before = await sent();

    const requeued = await requeueLostJobs({
      store,
      queue,
      environments: ['staging'],
      logger: silentLogger(),
    });

    expect(requeued).toEqual(['job-lost-deep']);
    // The 40 records whole would be about 4 MB; the scan, their ids and the one record it re-queues.
    expect((await sent()) - before).toBeLessThan(100_000);
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
      connection: { url: fixture.redis().url },
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

describe('claimRepairPass', () => {
  it('gives each interval’s repair pass to one worker of a configuration, and another configuration its own', async () => {
    const { redis: connection, keys } = await services();
    const deps = { redis: connection, keys };
    const results = await Promise.all([
      claimRepairPass(deps, 'config-a', 400),
      claimRepairPass(deps, 'config-a', 400),
      claimRepairPass(deps, 'config-a', 400),
    ]);
    expect(results.filter(Boolean)).toHaveLength(1);
    // Workers of another configuration (a rollout): only theirs move an environment.
    expect(await claimRepairPass(deps, 'config-b', 400)).toBe(true);
    // Lapsed before the next interval: the next turn, or another worker if the holder is gone, runs it.
    expect(await until(() => claimRepairPass(deps, 'config-a', 400), 1_000)).toBe(true);
  });
});

describe('claimQueuedResync', () => {
  const resync = (id: string): ClaimRequest => ({
    id,
    environment: 'web',
    trigger: { kind: 'reconcile' },
    receivedAt: new Date().toISOString(),
  });

  it('lets one of several re-syncs due at once queue behind a busy environment, until that one has run', async () => {
    const { store } = await services();
    const ids = ['repeat:a:1', 'repeat:a:2', 'repeat:a:3'];
    const claims = await Promise.all(ids.map((id) => store.claimQueuedResync('web', id)));
    expect(claims.filter(Boolean)).toHaveLength(1);
    const holder = ids[claims.indexOf(true)]!;

    // Its record is being written: the place stays taken, queued or not yet there.
    expect(await store.claimQueuedResync('web', 'repeat:a:4')).toBe(false);
    await store.ensure(resync(holder));
    expect(await store.claimQueuedResync('web', 'repeat:a:4')).toBe(false);
    // Another environment has a place of its own.
    expect(await store.claimQueuedResync('api', 'repeat:b:1')).toBe(true);

    // Asked again (BullMQ ran it again after a stall): still its own.
    expect(await store.claimQueuedResync('web', holder)).toBe(true);

    await store.update(holder, { state: 'running' });
    expect(await store.claimQueuedResync('web', 'repeat:a:5')).toBe(true);
  });
});
