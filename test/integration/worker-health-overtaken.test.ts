import { rename } from 'node:fs/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readSecrets } from '../../src/config/secrets.js';
import { MirrorCache } from '../../src/git/mirror-cache.js';
import { silentLogger } from '../../src/lib/logger.js';
import {
  createCommitStatusReporter,
  type CommitStatusReporter,
} from '../../src/status/reporters/commit-status-reporter.js';
import { createEnvRepo, type EnvRepo } from '../helpers/env-repo.js';
import { startFakeGithub, type FakeProvider } from '../helpers/fake-github.js';
import { createTestNamespace, markDeploymentReady, type TestNamespace } from '../helpers/kube.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { until } from '../helpers/until.js';
import { createWorkerHarness, type WorkerHarness } from './worker-harness.js';
import { configMap, deployment } from './worker-manifests.js';

let redis: TestRedis;

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis.stop();
});

// No kubelet here: a Deployment never becomes ready, so every deploy of one waits out its health check.
describe('a newer commit during the health wait (real Redis, git, kube-apiserver)', () => {
  let repo: EnvRepo;
  let namespace: TestNamespace;
  let harness: WorkerHarness;
  let github: FakeProvider;
  let reporter: CommitStatusReporter;

  async function setUp(
    healthTimeout: string,
    reconcileInterval = '0',
    worker: { start: boolean; concurrency?: number } = { start: true },
  ): Promise<void> {
    repo = await createEnvRepo({ branch: 'env/test' });
    namespace = await createTestNamespace('w-overtaken');
    github = await startFakeGithub();
    harness = await createWorkerHarness({
      redisUrl: redis.url,
      environments: [
        { name: 'web', repo, env: { namespace: namespace.name, healthTimeout, reconcileInterval } },
      ],
      providers: { github: github.url },
    });
    reporter = createCommitStatusReporter(
      harness.config,
      readSecrets({ GITHUB_TOKEN: 'ghs_test' }),
      silentLogger(),
      { timeoutMs: 10_000 },
    );
    if (worker.start) await harness.startWorker({ reporter, concurrency: worker.concurrency });
  }

  // Kept to be put back and called with each worker's own cache as `this` (apply, below).
  // eslint-disable-next-line @typescript-eslint/unbound-method
  const realFetchBranch = MirrorCache.prototype.fetchBranch;
  /**
   * Runs `hook` around the worker's next real branch fetches (`before` it, or `after` it and
   * before its answer is used), for as long as it returns true: a push or a webhook landing
   * at exactly that moment.
   */
  function aroundFetch(when: 'before' | 'after', hook: () => Promise<boolean>): void {
    let armed = true;
    MirrorCache.prototype.fetchBranch = async function (this: MirrorCache, ...args) {
      if (armed && when === 'before') armed = await hook();
      const head = await realFetchBranch.apply(this, args);
      if (armed && when === 'after') armed = await hook();
      return head;
    };
  }

  afterEach(async () => {
    MirrorCache.prototype.fetchBranch = realFetchBranch;
    await reporter.close();
    await harness.close();
    await github.close();
    await namespace.cleanup();
    await repo.remove();
  });

  /** The job of the environment (whatever started it) that waits for health now. */
  const runningJobWaitingForHealth = async (): Promise<string> => {
    const waiting = await until(async () => {
      const [running] = await harness.services.store.list({ environment: 'web', state: 'running', limit: 1 });
      return running?.message?.startsWith('waiting until') && running;
    });
    return waiting.id;
  };

  const waitingForHealth = (id: string) =>
    until(async () => (await harness.services.store.get(id))?.message?.startsWith('waiting until'));

  it('a fix pushed while a rollout waits for health goes out at once, not after healthTimeout', async () => {
    await setUp('5m');
    const broken = await repo.commit({ 'manifests/web.yaml': deployment('web', 'nginx:does-not-exist') });
    const brokenJob = await harness.webhook('web', broken);
    await waitingForHealth(brokenJob);

    const fix = await repo.commit({
      'manifests/web.yaml': null,
      'manifests/settings.yaml': configMap('settings', { mode: 'safe' }),
    });
    const fixJob = await harness.webhook('web', fix);

    // Well inside the five minutes the wait would have lasted.
    const overtaken = await harness.waitForJob(brokenJob, 20_000);
    expect(overtaken).toMatchObject({ state: 'superseded', sha: broken, error: null });
    expect(overtaken.message).toMatch(
      new RegExp(
        `^applied \\(1 object: 1 created\\); superseded by ${fix} during the health wait, before 1 workload became ready: apps/v1 Deployment ${namespace.name}/web: `,
      ),
    );
    expect(overtaken.resources.map((r) => [r.kind, r.name, r.action])).toEqual([
      ['Deployment', 'web', 'created'],
    ]);
    expect(overtaken.resources[0]?.message).toMatch(/^not ready when a newer commit ended the wait: /);

    const fixed = await harness.waitForJob(fixJob, 20_000);
    expect(fixed).toMatchObject({ state: 'succeeded', sha: fix });
    expect(fixed.resources.map((r) => [r.kind, r.name, r.action])).toEqual([
      ['ConfigMap', 'settings', 'created'],
      ['Deployment', 'web', 'pruned'],
    ]);

    await reporter.flush();
    // Only the newest status of a commit is sent: a fast deploy's pending may never go out.
    const lastStatus = new Map(github.requests.map((r) => [r.path.split('/').pop(), r.body]));
    // Applied, but never judged: not green (Flux counts a canceled health check as failed).
    expect(lastStatus.get(broken)).toMatchObject({
      state: 'error',
      description: `Applied to web; health check canceled: superseded by ${fix.slice(0, 7)}`,
    });
    expect(lastStatus.get(fix)).toMatchObject({ state: 'success' });
  });

  it('a force-push back to the last good commit during a broken rollout ends the wait and deploys it again', async () => {
    await setUp('5m');
    const good = await repo.commit({ 'manifests/settings.yaml': configMap('settings', { mode: 'a' }) });
    const goodJob = await harness.webhook('web', good);
    expect(await harness.waitForJob(goodJob)).toMatchObject({ state: 'succeeded' });
    const broken = await repo.commit({ 'manifests/web.yaml': deployment('web', 'nginx:does-not-exist') });
    const brokenJob = await harness.webhook('web', broken);
    await waitingForHealth(brokenJob);

    await repo.forcePush(good);
    // The cluster runs the broken commit now: the good one is a deploy again, not "already live".
    const rollbackJob = await harness.webhook('web', good);
    expect(rollbackJob).not.toBe(goodJob);

    expect(await harness.waitForJob(brokenJob, 20_000)).toMatchObject({ state: 'superseded', sha: broken });
    const rolledBack = await harness.waitForJob(rollbackJob, 20_000);
    expect(rolledBack).toMatchObject({ state: 'succeeded', sha: good });
    expect(rolledBack.resources.map((r) => [r.kind, r.name, r.action])).toEqual([
      ['ConfigMap', 'settings', 'unchanged'],
      ['Deployment', 'web', 'pruned'],
    ]);
  });

  it('a force-push back to the last good commit after a failed rollout deploys it again', async () => {
    await setUp('2s');
    const good = await repo.commit({ 'manifests/settings.yaml': configMap('settings', { mode: 'a' }) });
    const goodJob = await harness.webhook('web', good);
    expect(await harness.waitForJob(goodJob)).toMatchObject({ state: 'succeeded' });
    const broken = await repo.commit({ 'manifests/web.yaml': deployment('web', 'nginx:does-not-exist') });
    expect(await harness.waitForJob(await harness.webhook('web', broken))).toMatchObject({ state: 'failed' });

    await repo.forcePush(good);
    const rollbackJob = await harness.webhook('web', good);

    expect(rollbackJob).not.toBe(goodJob);
    const rolledBack = await harness.waitForJob(rollbackJob, 20_000);
    expect(rolledBack).toMatchObject({ state: 'succeeded', sha: good });
    expect(rolledBack.resources.map((r) => [r.kind, r.name, r.action])).toContainEqual([
      'Deployment',
      'web',
      'pruned',
    ]);
  });

  it('a push whose webhook was lost ends the wait at the next re-sync, which deploys it', async () => {
    // The re-sync deploys the first commit too (a webhook racing it would queue behind its wait).
    await setUp('5m', '2s', { start: false });
    await repo.commit({ 'manifests/web.yaml': deployment('web', 'nginx:does-not-exist') });
    await harness.startWorker({ reporter });
    const brokenJob = await runningJobWaitingForHealth();

    const fix = await repo.commit({
      'manifests/web.yaml': null,
      'manifests/a.yaml': configMap('a', { v: '1' }),
    });

    expect(await harness.waitForJob(brokenJob, 30_000)).toMatchObject({
      state: 'superseded',
      message: expect.stringContaining(`superseded by ${fix} during the health wait`) as string,
    });
    const live = await until(async () => {
      const status = await harness.services.store.environmentStatus('web');
      return status.lastAppliedSha === fix && status;
    });
    expect(live.liveSha).toBe(fix);
  });

  it('a late webhook of an older commit, or a sync of the same commit, does not end the wait', async () => {
    await setUp('4s');
    const first = await repo.commit({ 'manifests/settings.yaml': configMap('settings', { mode: 'a' }) });
    expect(await harness.waitForJob(await harness.webhook('web', first))).toMatchObject({
      state: 'succeeded',
    });
    // Pushed, but its webhook comes late: after the next push's deploy started.
    const middle = await repo.commit({ 'manifests/settings.yaml': configMap('settings', { mode: 'b' }) });
    const rollout = await repo.commit({ 'manifests/web.yaml': deployment('web') });
    const rolloutJob = await harness.webhook('web', rollout);
    await waitingForHealth(rolloutJob);

    // Both queue behind the wait; neither brings a commit newer than the one it waits on.
    const lateJob = await harness.webhook('web', middle);
    const syncJob = await harness.manual('web');
    expect(new Set([lateJob, syncJob, rolloutJob]).size).toBe(3);

    // The late one gives way at once (it would when its turn came), not after the wait.
    expect(await harness.waitForJob(lateJob, 3_000)).toMatchObject({
      state: 'superseded',
      message: `superseded by ${rollout}`,
    });
    expect((await harness.services.store.get(rolloutJob))?.state).toBe('running');
    const judged = await harness.waitForJob(rolloutJob, 20_000);
    expect(judged).toMatchObject({ state: 'failed', sha: rollout });
    expect(judged.error).toMatch(/^workloads not ready after 4s:/);
  });

  it("syncs while a sync's deploy waits for health: one new job for them all, which deploys the head pushed meanwhile", async () => {
    await setUp('5m');
    const waited = await repo.commit({ 'manifests/web.yaml': deployment('web', 'nginx:does-not-exist') });
    const first = await harness.manual('web');
    await waitingForHealth(first);
    // Taken back by the worker as it started the job.
    const { redis: client, keys } = harness.services;
    expect(await client.get(keys.pendingSync('web'))).toBeNull();
    // Pushed, its webhook lost: only a sync brings it.
    const fix = await repo.commit({
      'manifests/web.yaml': null,
      'manifests/settings.yaml': configMap('settings', { mode: 'safe' }),
    });

    // The running sync fetched its head before this push: it cannot cover these.
    const synced = await Promise.all([1, 2, 3, 4, 5].map(() => harness.manual('web')));

    expect(new Set(synced).size).toBe(1);
    expect(synced[0]).not.toBe(first);
    expect(await harness.waitForJob(first, 20_000)).toMatchObject({ state: 'superseded', sha: waited });
    expect(await harness.waitForJob(synced[0]!, 20_000)).toMatchObject({ state: 'succeeded', sha: fix });
    const jobs = await harness.services.store.list({ environment: 'web', limit: 10 });
    expect(jobs.map((job) => job.id).sort()).toEqual([first, synced[0]!].sort());
  });

  it('webhooks of older commits queued when a deploy of the head starts are finished at once', async () => {
    await setUp('5m', '0', { start: false });
    const older = await repo.commit({ 'manifests/web.yaml': deployment('web', 'nginx:1') });
    const head = await repo.commit({ 'manifests/web.yaml': deployment('web', 'nginx:2') });
    // Delivered out of order; one worker slot, so the head's job (first in) runs and the other waits.
    const headJob = await harness.webhook('web', head);
    const olderJob = await harness.webhook('web', older);
    await harness.startWorker({ reporter, concurrency: 1 });
    await waitingForHealth(headJob);

    expect(await harness.waitForJob(olderJob, 3_000)).toMatchObject({
      state: 'superseded',
      message: `superseded by ${head}`,
    });
  });

  it('a push landing while the wait looks for newer commits is deployed, not taken for an older one', async () => {
    await setUp('5m');
    const older = await repo.commit({ 'manifests/a.yaml': configMap('a', { v: '1' }) });
    const waited = await repo.commit({ 'manifests/web.yaml': deployment('web', 'nginx:does-not-exist') });
    const waitedJob = await harness.webhook('web', waited);
    await waitingForHealth(waitedJob);

    // A late webhook makes the wait fetch the branch; a new push lands while it does.
    let newest = '';
    let newestJob = '';
    aroundFetch('after', async () => {
      newest = await repo.commit({
        'manifests/web.yaml': null,
        'manifests/a.yaml': configMap('a', { v: '2' }),
      });
      newestJob = await harness.webhook('web', newest);
      return false;
    });
    const lateJob = await harness.webhook('web', older);

    expect(await harness.waitForJob(lateJob, 10_000)).toMatchObject({ state: 'superseded' });
    expect(await harness.waitForJob(waitedJob, 10_000)).toMatchObject({
      state: 'superseded',
      message: expect.stringContaining(`superseded by ${newest} during the health wait`) as string,
    });
    expect(await harness.waitForJob(newestJob, 20_000)).toMatchObject({ state: 'succeeded', sha: newest });
  });

  it('an overtaken commit is not live: a force-push back to it deploys it again and judges its health', async () => {
    await setUp('6s', '0', { start: true, concurrency: 1 });
    const broken = await repo.commit({ 'manifests/web.yaml': deployment('web', 'nginx:does-not-exist') });
    const brokenJob = await harness.webhook('web', broken);
    await waitingForHealth(brokenJob);
    // Once the broken commit's wait has given way, the branch goes back to it before the next job fetches.
    aroundFetch('before', async () => {
      if ((await harness.services.store.get(brokenJob))?.state !== 'superseded') return true;
      await repo.forcePush(broken);
      return false;
    });
    const next = await repo.commit({ 'manifests/a.yaml': configMap('a', { v: '1' }) });
    const nextJob = await harness.webhook('web', next);

    expect(await harness.waitForJob(brokenJob, 10_000)).toMatchObject({ state: 'superseded', sha: broken });
    expect((await harness.services.store.environmentStatus('web')).liveSha).toBeNull();
    const judged = await harness.waitForJob(nextJob, 20_000);
    expect(judged).toMatchObject({ state: 'failed', sha: broken });
    expect(judged.error).toMatch(/^workloads not ready after 6s:/);
  });

  it('a force-push back to the live commit while a deploy fetches gets a job of its own', async () => {
    await setUp('5m');
    const good = await repo.commit({ 'manifests/a.yaml': configMap('a', { v: '1' }) });
    const goodJob = await harness.webhook('web', good);
    expect(await harness.waitForJob(goodJob)).toMatchObject({ state: 'succeeded' });
    let rollbackJob = '';
    aroundFetch('after', async () => {
      await repo.forcePush(good);
      rollbackJob = await harness.webhook('web', good);
      return false;
    });
    const bad = await repo.commit({ 'manifests/a.yaml': configMap('a', { v: '2' }) });

    expect(await harness.waitForJob(await harness.webhook('web', bad))).toMatchObject({
      state: 'succeeded',
      sha: bad,
    });
    expect(rollbackJob).not.toBe(goodJob);
    expect(await harness.waitForJob(rollbackJob)).toMatchObject({ state: 'succeeded', sha: good });
    expect((await harness.services.store.environmentStatus('web')).lastAppliedSha).toBe(good);
  });

  it('a force-push back to a commit whose job moved on to a newer head gets a job of its own and is deployed', async () => {
    await setUp('5m');
    const rollbackTarget = await repo.commit({ 'manifests/a.yaml': configMap('a', { v: '1' }) });
    const newer = await repo.commit({ 'manifests/web.yaml': deployment('web', 'nginx:does-not-exist') });
    // Only the older commit's webhook has come: its job deploys the head, the newer commit.
    const movedOn = await harness.webhook('web', rollbackTarget);
    await waitingForHealth(movedOn);
    expect((await harness.services.store.get(movedOn))?.sha).toBe(newer);

    await repo.forcePush(rollbackTarget);
    const rollback = await harness.webhook('web', rollbackTarget);

    expect(rollback).not.toBe(movedOn);
    expect(await harness.waitForJob(movedOn, 20_000)).toMatchObject({ state: 'superseded', sha: newer });
    expect(await harness.waitForJob(rollback, 20_000)).toMatchObject({
      state: 'succeeded',
      sha: rollbackTarget,
    });
    expect(await harness.services.store.environmentStatus('web')).toMatchObject({
      lastAppliedSha: rollbackTarget,
      // Where its inventory is: a later change of `namespace` moves it from there.
      inventoryNamespaces: [namespace.name],
    });
  });

  it('a git server that hangs while the wait looks for newer commits does not stretch the wait', async () => {
    await setUp('3s');
    const older = await repo.commit({ 'manifests/a.yaml': configMap('a', { v: '1' }) });
    const waited = await repo.commit({ 'manifests/web.yaml': deployment('web') });
    const waitedJob = await harness.webhook('web', waited);
    await waitingForHealth(waitedJob);
    let hung = false;
    MirrorCache.prototype.fetchBranch = async function (this: MirrorCache, ...args) {
      if (!hung) {
        hung = true;
        await new Promise(() => undefined);
      }
      return realFetchBranch.apply(this, args);
    };
    await harness.webhook('web', older);

    const judged = await harness.waitForJob(waitedJob, 15_000);
    expect(judged).toMatchObject({ state: 'failed', sha: waited });
    expect(judged.error).toMatch(/^workloads not ready after 3s:/);
  });

  it('a slow git server while the wait looks for newer commits does not hold up a workload that became ready', async () => {
    await setUp('60s');
    const older = await repo.commit({ 'manifests/a.yaml': configMap('a', { v: '1' }) });
    const waited = await repo.commit({ 'manifests/web.yaml': deployment('web') });
    const waitedJob = await harness.webhook('web', waited);
    await waitingForHealth(waitedJob);
    // The wait's next fetch takes 10 s (a slow server); a late webhook makes it fetch.
    let fetching = false;
    aroundFetch('before', async () => {
      fetching = true;
      await new Promise((resolve) => setTimeout(resolve, 10_000));
      return false;
    });
    await harness.webhook('web', older);
    await until(() => Promise.resolve(fetching));

    await markDeploymentReady(namespace.name, 'web');
    const readyAt = Date.now();

    expect(await harness.waitForJob(waitedJob, 20_000)).toMatchObject({ state: 'succeeded', sha: waited });
    expect(Date.now() - readyAt).toBeLessThan(5_000);
  });

  it('a push whose webhook was lost, made after a sync was queued behind the wait, ends the wait too', async () => {
    await setUp('60s');
    const waited = await repo.commit({ 'manifests/web.yaml': deployment('web', 'nginx:does-not-exist') });
    const waitedJob = await harness.webhook('web', waited);
    await waitingForHealth(waitedJob);
    let looked = false;
    aroundFetch('after', () => {
      looked = true;
      return Promise.resolve(false);
    });
    const syncJob = await harness.manual('web');
    // The wait has looked at the sync (the head was still the commit it waits on) before the push.
    await until(() => Promise.resolve(looked));
    const fix = await repo.commit({
      'manifests/web.yaml': null,
      'manifests/a.yaml': configMap('a', { v: '1' }),
    });

    expect(await harness.waitForJob(waitedJob, 30_000)).toMatchObject({
      state: 'superseded',
      message: expect.stringContaining(`superseded by ${fix} during the health wait`) as string,
    });
    expect(await harness.waitForJob(syncJob, 20_000)).toMatchObject({ state: 'succeeded', sha: fix });
  });

  it('re-syncs due while the git server is down during a wait queue one, not one per interval', async () => {
    await setUp('60s', '1s', { start: false });
    await repo.commit({ 'manifests/web.yaml': deployment('web') });
    await harness.startWorker({ reporter });
    await runningJobWaitingForHealth();
    const queue = harness.services.queue;
    const ranBefore = (await queue.getJobCounts('completed')).completed ?? 0;

    await rename(repo.bareDir, `${repo.bareDir}.away`);
    try {
      // Several re-syncs fall due (and end, queued or skipped) while nothing can be fetched.
      await until(
        async () => ((await queue.getJobCounts('completed')).completed ?? 0) >= ranBefore + 4,
        30_000,
      );
    } finally {
      await rename(`${repo.bareDir}.away`, repo.bareDir);
    }

    const queued = await harness.services.store.list({ environment: 'web', state: 'queued', limit: 50 });
    expect(queued.filter((record) => record.trigger.kind === 'reconcile')).toHaveLength(1);
  });
});
