import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ApplyEngine } from '../../src/deploy/apply-engine.js';
import { createKubeApplyEngine } from '../../src/deploy/kube-apply-engine.js';
import { createLogger } from '../../src/lib/logger.js';
import { createKeys } from '../../src/queue/keys.js';
import { createEnvRepo, type EnvRepo } from '../helpers/env-repo.js';
import { createTestNamespace, type TestNamespace } from '../helpers/kube.js';
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

describe('deploy worker that lost the environment lock (real Redis, git, kube-apiserver)', () => {
  let repo: EnvRepo;
  let namespace: TestNamespace;
  let harness: WorkerHarness;

  beforeEach(async () => {
    repo = await createEnvRepo({ branch: 'env/test' });
    namespace = await createTestNamespace('w-lock-fencing');
    harness = await createWorkerHarness({
      redisUrl: redis.url,
      environments: [{ name: 'web', repo, env: { namespace: namespace.name } }],
    });
  });

  afterEach(async () => {
    await harness.close();
    await namespace.cleanup();
    await repo.remove();
  });

  it('does not record its deploy over the newer one of the worker that took the lock over', async () => {
    const first = await repo.commit({ 'manifests/a.yaml': configMap('alpha', { v: '1' }) });
    const real = createKubeApplyEngine(harness.config, process.env);
    const lockKey = createKeys(harness.config.redis.prefix).environmentLock('web');
    let newer: string | undefined;
    const engine: ApplyEngine = {
      render: (environment, manifests) => real.render(environment, manifests),
      async deploy(request) {
        const outcome = await real.deploy(request);
        if (newer === undefined) {
          // Meanwhile (this worker stalled in its health wait past the lock's TTL) another
          // worker took the lock and deployed a newer commit, which is still holding it.
          newer = await repo.commit({ 'manifests/a.yaml': configMap('alpha', { v: '2' }) });
          await harness.services.redis.set(lockKey, 'another-worker', 'PX', 1_500);
          await harness.services.store.recordFinished('web', 'another-job', {
            sha: newer,
            at: new Date().toISOString(),
          });
        }
        return outcome;
      },
    };
    await harness.startWorker({ engine });

    const record = await harness.waitForJob(await harness.webhook('web', first));

    expect(record).toMatchObject({ state: 'superseded', message: `superseded by ${newer}` });
    expect((await harness.services.store.environmentStatus('web')).lastAppliedSha).toBe(newer);
  });

  it('stops its health wait once the lock is lost, and writes nothing over the worker that took the job over', async () => {
    const own = await createEnvRepo({ branch: 'env/test' });
    const waiting = await createWorkerHarness({
      redisUrl: redis.url,
      // No kubelet: the Deployment never becomes ready, so the wait would run its whole minute.
      environments: [{ name: 'api', repo: own, env: { namespace: namespace.name, healthTimeout: '60s' } }],
    });
    const log: string[] = [];
    try {
      const sha = await own.commit({ 'manifests/web.yaml': deployment('web') });
      await waiting.startWorker({
        logger: createLogger({
          level: 'info',
          destination: { write: (line: string) => void log.push(line) },
        }),
      });
      const id = await waiting.webhook('api', sha);
      await until(
        async () => (await waiting.services.store.get(id))?.message?.startsWith('waiting until') || undefined,
      );

      // This worker stalled past the lock's TTL (a Redis restart, a pause): another took the
      // lock and the job over, and is now running it as attempt 2. Its next renewal (every
      // third of the 30 s TTL) finds the other token.
      const lockKey = createKeys(waiting.config.redis.prefix).environmentLock('api');
      await waiting.services.redis.set(lockKey, 'another-worker', 'PX', 60_000);
      const takenOver = await waiting.services.store.update(id, { attempts: 2, message: 'the other worker' });
      await until(
        () =>
          Promise.resolve(
            log.some((line) => line.includes('lost the environment lock mid-deploy')) || undefined,
          ),
        30_000,
      );

      expect(await waiting.services.store.get(id)).toEqual(takenOver);
    } finally {
      await waiting.close();
      await own.remove();
    }
  });
});
