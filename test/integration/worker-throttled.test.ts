import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createApfThrottle, type ApfThrottle } from '../helpers/apf-throttle.js';
import { createEnvRepo, type EnvRepo } from '../helpers/env-repo.js';
import {
  createTestNamespace,
  kubeConfigFromTest,
  namespacedKubeconfig,
  type TestNamespace,
} from '../helpers/kube.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
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
 * An API server under load turns requests away with 429 and Retry-After (API Priority and
 * Fairness). The deploy waits as asked, request by request: its attempt does not fail, so
 * the job's retry does not send the whole dry-run set again into the same overload.
 */
describe('deploy against a throttling API server (real Redis, git, kube-apiserver)', () => {
  let repo: EnvRepo;
  let namespace: TestNamespace;
  let dir: string;
  let access: Awaited<ReturnType<typeof namespacedKubeconfig>>;
  let throttle: ApfThrottle;
  let harness: WorkerHarness;

  beforeEach(async () => {
    repo = await createEnvRepo({ branch: 'env/test' });
    namespace = await createTestNamespace('w-throttled');
    dir = await mkdtemp(path.join(tmpdir(), 'pushgate-throttled-'));
    access = await namespacedKubeconfig(
      dir,
      [namespace.name],
      [
        { apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'create', 'patch', 'delete'] },
        { apiGroups: [''], resources: ['namespaces'], verbs: ['get'] },
      ],
    );
    // Every ConfigMap patch of the worker's ServiceAccount: the dry-run first.
    throttle = await createApfThrottle(namespace.name, access.token);
    harness = await createWorkerHarness({
      redisUrl: redis.url,
      kubeconfig: access.path,
      environments: [{ name: 'web', repo, env: { namespace: namespace.name, healthTimeout: '0' } }],
    });
  });
  afterEach(async () => {
    await harness.close();
    await throttle.cleanup();
    await access.cleanup();
    await namespace.cleanup();
    await repo.remove();
    await rm(dir, { recursive: true, force: true });
  });

  it('a deploy whose dry-run is throttled for a while succeeds in one attempt', async () => {
    await throttle.hold();
    const before = await throttle.rejected();
    await harness.startWorker();
    const sha = await repo.commit({ 'manifests/app.yaml': configMap('app', { v: '1' }) });

    const id = await harness.webhook('web', sha);
    await until(async () => (await throttle.rejected()) > before);
    await throttle.release();
    const record = await harness.waitForJob(id, 30_000);

    expect(record).toMatchObject({ state: 'succeeded', sha, attempts: 1 });
    const live = await kubeConfigFromTest()
      .makeApiClient(CoreV1Api)
      .readNamespacedConfigMap({ name: 'app', namespace: namespace.name });
    expect(live.data).toEqual({ v: '1' });
  });
});
