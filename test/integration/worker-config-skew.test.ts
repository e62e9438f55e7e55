import { CoreV1Api } from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { environmentTarget } from '../../src/deploy/config-skew.js';
import { WorkerPresence } from '../../src/deploy/worker-presence.js';
import { createKeys } from '../../src/queue/keys.js';
import { createLogger } from '../../src/lib/logger.js';
import { DEPLOY_JOB_NAME } from '../../src/queue/job-data.js';
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
 * A configuration change rolling out: the receiver (and the workers started since) have the
 * new configuration, a worker started before it still runs the old one, on the same Redis.
 */
describe('deploy worker with another configuration than the receiver (real Redis, git, kube-apiserver)', () => {
  let repo: EnvRepo;
  let apiRepo: EnvRepo;
  let namespace: TestNamespace;
  let current: WorkerHarness;
  let old: WorkerHarness | undefined;
  let starting: WorkerPresence | undefined;

  beforeEach(async () => {
    repo = await createEnvRepo({ branch: 'env/test' });
    apiRepo = await createEnvRepo({ branch: 'env/test' });
    namespace = await createTestNamespace('w-config-skew');
    current = await createWorkerHarness({
      redisUrl: redis.url,
      prefix: uniquePrefix('skew'),
      environments: [
        { name: 'web', repo, env: { namespace: namespace.name, healthTimeout: '0' } },
        { name: 'api', repo: apiRepo, env: { namespace: namespace.name, healthTimeout: '0' } },
      ],
    });
  });

  afterEach(async () => {
    await starting?.stop();
    starting = undefined;
    await old?.close();
    old = undefined;
    await current?.close();
    await namespace.cleanup();
    await repo.remove();
    await apiRepo.remove();
  });

  const oldWorker = async (
    environments: Parameters<typeof createWorkerHarness>[0]['environments'],
    configSkewGraceMs?: number,
  ): Promise<WorkerHarness> => {
    old = await createWorkerHarness({
      redisUrl: redis.url,
      prefix: current.config.redis.prefix,
      environments,
    });
    await old.startWorker(configSkewGraceMs === undefined ? {} : { configSkewGraceMs });
    return old;
  };

  /**
   * A worker on the receiver's configuration, the newest (first seen after the old worker's),
   * that has announced itself and takes no jobs yet (it is starting): an old worker hands the
   * environment's jobs back for it rather than deploying them.
   */
  const currentWorkerStarting = async (): Promise<void> => {
    starting = new WorkerPresence(
      current.services.redis,
      createKeys(current.config.redis.prefix),
      current.config,
    );
    await starting.start();
  };

  const messageOf = async (id: string): Promise<string | undefined> =>
    (await current.services.store.get(id))?.message ?? undefined;

  it('hands back a job of an environment it lacks, which a worker that has it then deploys', async () => {
    await oldWorker([{ name: 'web', repo, env: { namespace: namespace.name, healthTimeout: '0' } }]);
    const sha = await apiRepo.commit({ 'manifests/api.yaml': configMap('api', { v: '1' }) });

    const id = await current.webhook('api', sha);
    const waiting = await until(async () =>
      (await messageOf(id))?.startsWith('waiting for a worker') ? messageOf(id) : undefined,
    );
    expect(waiting).toMatch(
      /^waiting for a worker with the receiver's configuration \(environment "api" is not in this worker's configuration\); until \d{4}-/,
    );
    expect((await current.services.store.get(id))?.state).toBe('queued');

    // The rollout ends: the old worker goes, a current one takes the job.
    await old?.close();
    old = undefined;
    await current.startWorker();
    expect(await current.waitForJob(id)).toMatchObject({ state: 'succeeded', sha });
  });

  it('hands back a push queued for another namespace than its own, so it lands where the receiver said', async () => {
    await oldWorker([{ name: 'web', repo, env: { namespace: `${namespace.name}-old`, healthTimeout: '0' } }]);
    await currentWorkerStarting();
    const sha = await repo.commit({ 'manifests/app.yaml': configMap('app', { v: '2' }) });

    const { id } = await current.services.producer.enqueue(
      'web',
      { kind: 'webhook', provider: 'github', deliveryId: 'skew-1', sha, pusher: 'octocat' },
      undefined,
      undefined,
      environmentTarget(current.environment('web')),
    );
    const waiting = await until(async () =>
      (await messageOf(id))?.startsWith('waiting for a worker') ? messageOf(id) : undefined,
    );
    expect(waiting).toBe(
      `waiting for a worker with the newest configuration of web (namespace "${namespace.name}-old" → "${namespace.name}")`,
    );

    // The rollout ends: the old worker goes, a current one takes the job.
    await old?.close();
    old = undefined;
    await current.startWorker();
    expect(await current.waitForJob(id)).toMatchObject({ state: 'succeeded', sha });
    const core = kubeConfigFromTest().makeApiClient(CoreV1Api);
    expect((await core.readNamespacedConfigMap({ name: 'app', namespace: namespace.name })).data).toEqual({
      v: '2',
    });
  });

  const pushFor = async (sha: string, deliveryId: string): Promise<string> =>
    (
      await current.services.producer.enqueue(
        'web',
        { kind: 'webhook', provider: 'github', deliveryId, sha, pusher: 'octocat' },
        undefined,
        undefined,
        environmentTarget(current.environment('web')),
      )
    ).id;

  it('hands back a retry too: an attempt that failed elsewhere does not go out through an old worker', async () => {
    await oldWorker([{ name: 'web', repo, env: { namespace: `${namespace.name}-old`, healthTimeout: '0' } }]);
    await currentWorkerStarting();
    const sha = await repo.commit({ 'manifests/app.yaml': configMap('app', { v: 'retry' }) });
    const id = await pushFor(sha, 'skew-retry');
    // Its first attempt, on a worker with the receiver's configuration, failed and is retried.
    await current.services.store.update(id, { attempts: 1, error: 'API server: 503' });

    await until(async () => ((await messageOf(id))?.startsWith('waiting for a worker') ? true : undefined));
    expect((await current.services.store.get(id))?.state).toBe('queued');
  });

  it('hands back its own syncs too while a newer configuration runs: the environment is not moved back', async () => {
    const oldNamespace = await createTestNamespace('w-config-skew-old');
    try {
      const oldOne = await oldWorker([
        { name: 'web', repo, env: { namespace: oldNamespace.name, healthTimeout: '0' } },
      ]);
      await currentWorkerStarting();
      const sha = await repo.commit({ 'manifests/app.yaml': configMap('app', { v: 'new' }) });
      const push = await pushFor(sha, 'skew-cover');
      // The old worker's own deploy of the environment (here a sync; a re-sync alike), queued behind the push.
      const sync = await oldOne.manual('web');

      await until(async () =>
        (await messageOf(sync))?.startsWith('waiting for a worker with the newest configuration')
          ? true
          : undefined,
      );
      expect((await current.services.store.get(push))?.state).toBe('queued');

      // The rollout goes on: the current worker starts taking jobs, the old one still runs.
      await current.startWorker();
      for (const id of [push, sync])
        expect(['succeeded', 'superseded']).toContain((await current.waitForJob(id)).state);
      const core = kubeConfigFromTest().makeApiClient(CoreV1Api);
      expect((await core.readNamespacedConfigMap({ name: 'app', namespace: namespace.name })).data).toEqual({
        v: 'new',
      });
      const inOld = await core.readNamespacedConfigMap({ name: 'app', namespace: oldNamespace.name }).then(
        () => 'present',
        (error: unknown) => {
          if ((error as { code?: number }).code === 404) return 'absent';
          throw error;
        },
      );
      expect(inOld).toBe('absent');
    } finally {
      await oldNamespace.cleanup();
    }
  });

  it('says a job of a suspended environment is held, not waiting for a newer worker, while a change rolls out', async () => {
    await oldWorker([{ name: 'web', repo, env: { namespace: `${namespace.name}-old`, healthTimeout: '0' } }]);
    await currentWorkerStarting();
    await current.services.store.suspensions.suspend('web', 'freeze');
    const sha = await repo.commit({ 'manifests/app.yaml': configMap('app', { v: 'frozen' }) });
    const push = await pushFor(sha, 'skew-suspended');

    const held = await until(async () => {
      const message = await messageOf(push);
      return message?.startsWith('held: ') ? message : undefined;
    });
    expect(held).toMatch(/^held: web is suspended since .* \(freeze\); deploys once resumed$/);
    expect((await current.services.store.get(push))?.state).toBe('queued');
  });

  it('skips a re-sync run of an environment it lacks, leaving no record', async () => {
    const log: string[] = [];
    old = await createWorkerHarness({
      redisUrl: redis.url,
      prefix: current.config.redis.prefix,
      environments: [{ name: 'web', repo, env: { namespace: namespace.name, healthTimeout: '0' } }],
    });
    await old.startWorker({
      logger: createLogger({ level: 'info', destination: { write: (line: string) => void log.push(line) } }),
    });

    await current.services.queue.add(
      DEPLOY_JOB_NAME,
      { environment: 'api', trigger: { kind: 'reconcile' }, receivedAt: new Date().toISOString() },
      { jobId: 'resync-api-1' },
    );

    await until(() =>
      Promise.resolve(log.some((line) => line.includes('this re-sync run skipped')) || undefined),
    );
    expect(await current.services.store.get('resync-api-1')).toBeNull();
  });

  it('deploys at once, with the newest configuration running, a push an older receiver queued', async () => {
    // The workers rolled onto the current configuration before the receiver did: a push the
    // old receiver queued for the old namespace waits for no one.
    const sha = await repo.commit({ 'manifests/app.yaml': configMap('app', { v: 'rolled' }) });
    const { id } = await current.services.producer.enqueue(
      'web',
      { kind: 'webhook', provider: 'github', deliveryId: 'skew-gone', sha, pusher: 'octocat' },
      undefined,
      undefined,
      { ...environmentTarget(current.environment('web')), namespace: `${namespace.name}-old` },
    );
    await current.startWorker();

    const record = await current.waitForJob(id, 20_000);
    expect(record).toMatchObject({ state: 'succeeded', sha });
    expect(record.message ?? '').not.toContain('waiting for a worker');
    const core = kubeConfigFromTest().makeApiClient(CoreV1Api);
    expect((await core.readNamespacedConfigMap({ name: 'app', namespace: namespace.name })).data).toEqual({
      v: 'rolled',
    });
  });

  it('fails a job of an environment no worker has, once the grace is over, saying so', async () => {
    await oldWorker([{ name: 'web', repo, env: { namespace: namespace.name, healthTimeout: '0' } }], 1_000);
    const sha = await apiRepo.commit({ 'manifests/api.yaml': configMap('api', { v: '3' }) });

    const record = await current.waitForJob(await current.webhook('api', sha), 20_000);

    expect(record.state).toBe('failed');
    expect(record.error).toBe(
      `environment "api" is not in this worker's configuration (nor, for 1 s, in that of any worker that took the job)`,
    );
  });
});
