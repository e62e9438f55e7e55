import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ApplyEngine } from '../../src/deploy/apply-engine.js';
import { createKubeApplyEngine } from '../../src/deploy/kube-apply-engine.js';
import { DEPLOY_QUEUE } from '../../src/queue/job-data.js';
import { createKeys } from '../../src/queue/keys.js';
import { createEnvRepo, type EnvRepo } from '../helpers/env-repo.js';
import { createTestNamespace, type TestNamespace } from '../helpers/kube.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { createWorkerHarness, type WorkerHarness } from './worker-harness.js';
import { configMap } from './worker-manifests.js';

let redis: TestRedis;

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis.stop();
});

describe('deploy worker whose job another worker took over and finished (real Redis, git, kube-apiserver)', () => {
  let repo: EnvRepo;
  let namespace: TestNamespace;
  let harness: WorkerHarness;

  beforeEach(async () => {
    repo = await createEnvRepo({ branch: 'env/test' });
    namespace = await createTestNamespace('w-takeover');
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

  it('does not reopen the finished record when its own late attempt fails', async () => {
    const sha = await repo.commit({ 'manifests/a.yaml': configMap('alpha', { v: '1' }) });
    const real = createKubeApplyEngine(harness.config, process.env);
    const keys = createKeys(harness.config.redis.prefix);
    const { redis: client, store } = harness.services;
    let finishedByOther = '';
    const engine: ApplyEngine = {
      render: (environment, manifests) => real.render(environment, manifests),
      async deploy(request) {
        const outcome = await real.deploy(request);
        // This worker stalled (its Redis connection cut off, say) past both locks: BullMQ gave
        // the job to another worker, which deployed it, recorded it succeeded and let go of
        // the environment lock, all before this one came back.
        await client.set(
          `${keys.bullPrefix}:${DEPLOY_QUEUE}:${request.jobId}:lock`,
          'another-worker',
          'PX',
          60_000,
        );
        finishedByOther = new Date().toISOString();
        await store.update(request.jobId, {
          state: 'succeeded',
          sha,
          resources: outcome.resources,
          error: null,
          finishedAt: finishedByOther,
        });
        await store.recordFinished('web', request.jobId, { sha, at: finishedByOther });
        await client.del(keys.environmentLock('web'));
        return outcome;
      },
    };
    const worker = await harness.startWorker({ engine });
    // BullMQ refuses this worker's attempt to fail a job it no longer holds: its last step.
    const refused = new Promise((resolve) => worker.worker.once('error', resolve));

    const id = await harness.webhook('web', sha);
    await refused;

    expect(await store.get(id)).toMatchObject({
      state: 'succeeded',
      sha,
      error: null,
      finishedAt: finishedByOther,
    });
  });
});
