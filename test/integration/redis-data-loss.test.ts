import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createEnvRepo, type EnvRepo } from '../helpers/env-repo.js';
import { createTestNamespace, type TestNamespace } from '../helpers/kube.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { createWorkerHarness, type WorkerHarness } from './worker-harness.js';
import { configMap } from './worker-manifests.js';

let redis: TestRedis;
let client: Redis;
let repo: EnvRepo;
let namespace: TestNamespace;
let harness: WorkerHarness;

beforeAll(async () => {
  redis = await startRedis();
  client = new Redis(redis.url);
  repo = await createEnvRepo({ branch: 'env/test' });
  namespace = await createTestNamespace('data-loss');
  harness = await createWorkerHarness({
    redisUrl: redis.url,
    environments: [{ name: 'web', repo, env: { namespace: namespace.name, healthTimeout: '0' } }],
  });
  await harness.startWorker();
});

afterAll(async () => {
  await harness?.close();
  await namespace?.cleanup();
  client?.disconnect();
  await redis?.stop();
});

it('after Redis lost its data, a running worker refuses the inventory a new id does not match, and takes it again once the id is restored as the refusal says', async () => {
  const first = await repo.commit({ 'manifests/a.yaml': configMap('alpha', { v: '1' }) });
  expect((await harness.waitForJob(await harness.webhook('web', first))).state).toBe('succeeded');
  const key = `{${harness.config.redis.prefix}}:installation`;
  const id = await client.get(key);
  expect(id).toBeTruthy();

  // Redis restarted without persistence: everything is gone, and another process made a new id.
  await client.flushall();
  await client.set(key, 'made-after-the-loss');

  const second = await repo.commit({ 'manifests/a.yaml': configMap('alpha', { v: '2' }) });
  const refused = await harness.waitForJob(await harness.webhook('web', second));
  expect(refused.state).toBe('failed');
  expect(refused.error).toContain(`(${id}; this one is made-after-the-loss)`);
  expect(refused.error).toContain(`SET ${key} ${id} in pushgate's Redis`);
  // A suspension held in Redis went with the rest: the refusal is the moment to say so.
  expect(refused.error).toContain('suspend again any environment that must stay held');

  // What the refusal says to do, with the worker left running.
  await client.set(key, id!);
  const retried = await harness.waitForJob(await harness.manual('web'));
  expect(retried).toMatchObject({ state: 'succeeded', sha: second });
});
