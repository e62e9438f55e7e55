import { CoreV1Api } from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { environmentTarget } from '../../src/deploy/config-skew.js';
import { targetDigest } from '../../src/deploy/target-change.js';
import { configurationFingerprint } from '../../src/deploy/worker-presence.js';
import { createKeys } from '../../src/queue/keys.js';
import type { JobRecord } from '../../src/status/job-record.js';
import { createEnvRepo, type EnvRepo } from '../helpers/env-repo.js';
import { createTestNamespace, kubeConfigFromTest, type TestNamespace } from '../helpers/kube.js';
import { startRedis, uniquePrefix, type TestRedis } from '../helpers/redis.js';
import { until } from '../helpers/until.js';
import { createWorkerHarness, type WorkerHarness } from './worker-harness.js';
import { configMap } from './worker-manifests.js';

let redis: TestRedis;

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis.stop();
});

/**
 * An operator moves an environment to another namespace and rolls the workers onto the new
 * configuration: the branch head must land there without waiting for a push or a re-sync.
 */
describe('configuration change of a deployed environment (real Redis, git, kube-apiserver)', () => {
  let repo: EnvRepo;
  let before: TestNamespace;
  let after: TestNamespace;
  let prefix: string;
  const harnesses: WorkerHarness[] = [];
  const core = () => kubeConfigFromTest().makeApiClient(CoreV1Api);

  beforeEach(async () => {
    repo = await createEnvRepo({ branch: 'env/test' });
    before = await createTestNamespace('w-target-before');
    after = await createTestNamespace('w-target-after');
    prefix = uniquePrefix('target');
  });

  afterEach(async () => {
    for (const harness of harnesses.splice(0)) await harness.close();
    await before.cleanup();
    await after.cleanup();
    await repo.remove();
  });

  const harnessIn = async (namespace: string): Promise<WorkerHarness> => {
    const harness = await createWorkerHarness({
      redisUrl: redis.url,
      prefix,
      // Pruning where it was before takes leave to write there.
      environments: [
        {
          name: 'web',
          repo,
          env: { namespace, healthTimeout: '0', allowNamespaces: [namespace, before.name] },
        },
      ],
    });
    harnesses.push(harness);
    return harness;
  };

  /** Deploys each commit with a worker on the old configuration, then stops it. */
  const deployedBefore = async (commits: Record<string, string>[]): Promise<string[]> => {
    const old = await harnessIn(before.name);
    await old.startWorker();
    const shas: string[] = [];
    for (const files of commits) {
      const sha = await repo.commit(files);
      expect(await old.waitForJob(await old.webhook('web', sha))).toMatchObject({ state: 'succeeded', sha });
      shas.push(sha);
    }
    await old.close();
    harnesses.splice(harnesses.indexOf(old), 1);
    return shas;
  };

  const jobsOf = async (harness: WorkerHarness): Promise<JobRecord[]> =>
    harness.services.store.list({ environment: 'web', limit: 50 });

  const configMapIn = async (namespace: string): Promise<Record<string, string> | undefined | 'absent'> =>
    core()
      .readNamespacedConfigMap({ name: 'app', namespace })
      .then(
        (found) => found.data,
        (error: unknown) => {
          if ((error as { code?: number }).code === 404) return 'absent' as const;
          throw error;
        },
      );

  it('deploys the branch head to the new namespace as the new workers start, once, and prunes the old one', async () => {
    const [sha] = await deployedBefore([{ 'manifests/app.yaml': configMap('app', { v: '1' }) }]);
    expect(await configMapIn(before.name)).toEqual({ v: '1' });

    const current = await harnessIn(after.name);
    // Two workers of the new configuration start together: one deploy between them.
    await Promise.all([current.startWorker(), current.startWorker()]);
    const resyncs = (await jobsOf(current)).filter((job) => job.trigger.kind === 'reconcile');
    expect(resyncs).toHaveLength(1);
    expect(await current.waitForJob(resyncs[0]!.id)).toMatchObject({ state: 'succeeded', sha });

    expect(await configMapIn(after.name)).toEqual({ v: '1' });
    expect(await configMapIn(before.name)).toBe('absent');
    const status = await current.services.store.environmentStatus('web');
    expect(status.lastAppliedTarget).toEqual(environmentTarget(current.environment('web')));

    // Deployed where the configuration says: a worker starting now has nothing to catch up.
    await current.startWorker();
    expect(await jobsOf(current)).toHaveLength(2);
  });

  it('does not count the head as live in the old namespace: a stale push catches the new one up', async () => {
    const [older, head] = await deployedBefore([
      { 'manifests/app.yaml': configMap('app', { v: '1' }) },
      { 'manifests/app.yaml': configMap('app', { v: '2' }) },
    ]);
    const current = await harnessIn(after.name);
    // As if the deploy of the change had been queued by a worker and lost with it.
    const keys = createKeys(prefix);
    const { lastAppliedAt } = await current.services.store.environmentStatus('web');
    const digest = targetDigest(environmentTarget(current.environment('web')));
    await current.services.redis.set(keys.targetChangeQueued('web', `${digest}:${lastAppliedAt}`), 'lost');
    await current.startWorker();
    expect((await jobsOf(current)).filter((job) => job.trigger.kind === 'reconcile')).toEqual([]);

    const id = await current.webhook('web', older!, 'redelivered-older-push');
    const job = await current.waitForJob(id);
    expect(job).toMatchObject({ state: 'succeeded', sha: head });
    expect(await configMapIn(after.name)).toEqual({ v: '2' });
  });

  it('is not moved back by a worker of the old configuration that restarts during the rollout', async () => {
    const [sha] = await deployedBefore([{ 'manifests/app.yaml': configMap('app', { v: '1' }) }]);
    const current = await harnessIn(after.name);
    await current.startWorker();
    const [move] = (await jobsOf(current)).filter((job) => job.trigger.kind === 'reconcile');
    expect(await current.waitForJob(move!.id)).toMatchObject({ state: 'succeeded', sha });

    // An old pod restarts (a crash during the rollout): it queues no move back…
    const old = await harnessIn(before.name);
    await old.startWorker();
    expect(await jobsOf(current)).toHaveLength(2);
    // …and what reaches it (its own sync, a push an old receiver queued) is the newest
    // configuration's to deploy.
    const next = await repo.commit({ 'manifests/app.yaml': configMap('app', { v: '2' }) });
    const push = await old.webhook('web', next);
    const sync = await old.manual('web');
    for (const id of [push, sync])
      expect(['succeeded', 'superseded']).toContain((await old.waitForJob(id)).state);

    expect(await configMapIn(after.name)).toEqual({ v: '2' });
    expect(await configMapIn(before.name)).toBe('absent');
    expect((await current.services.store.environmentStatus('web')).lastAppliedTarget).toEqual(
      environmentTarget(current.environment('web')),
    );
  });

  it('is not moved back while the workers of the new configuration are gone for a while (killed, drained)', async () => {
    await deployedBefore([{ 'manifests/app.yaml': configMap('app', { v: '1' }) }]);
    const current = await harnessIn(after.name);
    await current.startWorker();
    const [move] = (await jobsOf(current)).filter((job) => job.trigger.kind === 'reconcile');
    expect((await current.waitForJob(move!.id)).state).toBe('succeeded');
    // Its only worker goes (killed, or drained from its node) a moment after its last renewal.
    const keys = createKeys(prefix);
    const [seconds] = await current.services.redis.time();
    const lastRenewal = {
      at: Number(seconds) * 1000,
      target: environmentTarget(current.environment('web')),
    };
    const fingerprint = configurationFingerprint(current.environment('web'), current.config);
    await current.close();
    harnesses.splice(harnesses.indexOf(current), 1);
    const old = await harnessIn(before.name);
    await old.services.redis.hset(keys.configLive('web'), fingerprint, JSON.stringify(lastRenewal));

    await old.startWorker();
    expect((await jobsOf(old)).filter((job) => job.trigger.kind === 'reconcile')).toHaveLength(1);
    const next = await repo.commit({ 'manifests/app.yaml': configMap('app', { v: '2' }) });
    const push = await old.webhook('web', next);
    const waiting = await until(async () => {
      const message = (await old.services.store.get(push))?.message;
      return message?.startsWith('waiting for a worker with the newest configuration') ? message : undefined;
    });
    expect(waiting).toContain(`namespace "${before.name}" → "${after.name}"`);
    expect(await configMapIn(before.name)).toBe('absent');
  });

  it('re-syncs once an environment whose last deploy an earlier version recorded, without its target', async () => {
    const [sha] = await deployedBefore([{ 'manifests/app.yaml': configMap('app', { v: '1' }) }]);
    const current = await harnessIn(before.name);
    // A success recorded by a version that kept no target: where it went is not known.
    await current.services.store.recordFinished('web', 'by-an-earlier-version', {
      sha: sha!,
      at: new Date().toISOString(),
    });
    expect((await current.services.store.environmentStatus('web')).lastAppliedTarget).toBeNull();

    await Promise.all([current.startWorker(), current.startWorker()]);
    const resyncs = (await jobsOf(current)).filter((job) => job.trigger.kind === 'reconcile');
    expect(resyncs).toHaveLength(1);
    expect(await current.waitForJob(resyncs[0]!.id)).toMatchObject({ state: 'succeeded', sha });
    expect((await current.services.store.environmentStatus('web')).lastAppliedTarget).toEqual(
      environmentTarget(current.environment('web')),
    );
  });

  it('leaves a suspended environment to its resume', async () => {
    await deployedBefore([{ 'manifests/app.yaml': configMap('app', { v: '1' }) }]);
    const current = await harnessIn(after.name);
    await current.services.store.suspensions.suspend('web', 'freeze');
    await current.startWorker();
    expect(await jobsOf(current)).toHaveLength(1);
    expect(await configMapIn(after.name)).toBe('absent');

    // Resumed, the next start (or the resume's own deploy) takes it there.
    await current.services.store.suspensions.resume('web');
    await current.startWorker();
    const resync = await until(async () =>
      (await jobsOf(current)).find((job) => job.trigger.kind === 'reconcile'),
    );
    expect(await current.waitForJob(resync.id)).toMatchObject({ state: 'succeeded' });
    expect(await configMapIn(after.name)).toEqual({ v: '1' });
  });
});
