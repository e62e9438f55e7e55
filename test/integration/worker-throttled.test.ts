import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/lib/logger.js';
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
  let throttle: ApfThrottle | undefined;
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
    harness = await createWorkerHarness({
      redisUrl: redis.url,
      kubeconfig: access.path,
      environments: [{ name: 'web', repo, env: { namespace: namespace.name, healthTimeout: '0' } }],
    });
  });
  afterEach(async () => {
    await harness.close();
    await throttle?.cleanup();
    throttle = undefined;
    await access.cleanup();
    await namespace.cleanup();
    await repo.remove();
    await rm(dir, { recursive: true, force: true });
  });

  /** Every ConfigMap patch of the worker's ServiceAccount (the dry-run first), and with `discovery` its discovery. */
  async function throttled(options: { discovery?: boolean } = {}): Promise<ApfThrottle> {
    throttle = await createApfThrottle(namespace.name, access.token, options);
    return throttle;
  }

  it('a deploy whose dry-run is throttled for a while succeeds in one attempt', async () => {
    const throttle = await throttled();
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

  it('a throttled deploy says so in its log while it waits: a warning with the job, the request and the wait', async () => {
    const throttle = await throttled();
    const lines: Record<string, unknown>[] = [];
    const logger = createLogger({
      level: 'info',
      destination: { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
    });
    await throttle.hold();
    await harness.startWorker({ logger });
    const sha = await repo.commit({ 'manifests/app.yaml': configMap('app', { v: '1' }) });

    const id = await harness.webhook('web', sha);
    // Before the throttling ends: the line is what tells an operator why the deploy is slow.
    const line = await until(() =>
      Promise.resolve(
        lines.find((entry) => entry.msg === 'API server throttled a request; retrying after its Retry-After'),
      ),
    );
    await throttle.release();
    const record = await harness.waitForJob(id, 30_000);

    expect(record).toMatchObject({ state: 'succeeded', attempts: 1 });
    expect(line).toMatchObject({
      level: 'warn',
      jobId: id,
      environment: 'web',
      cluster: 'test',
      sha,
      method: 'PATCH',
      // The path alone: no query (dryRun, fieldManager), no body.
      path: `/api/v1/namespaces/${namespace.name}/configmaps/app`,
      status: 429,
      retry: 1,
      maxRetries: 10,
      throttled: 1,
    });
    expect(line.waitMs).toEqual(expect.any(Number));
    expect(Object.keys(line)).not.toContain('body');
  });

  it('a deploy throttled in discovery is handed back at once past the shutdown deadline, not after the retries', async () => {
    const throttle = await throttled({ discovery: true });
    await throttle.hold();
    const before = await throttle.rejected();
    const worker = await harness.startWorker({ shutdownDeadlineMs: 500 });
    const sha = await repo.commit({ 'manifests/app.yaml': configMap('app', { v: '1' }) });
    const id = await harness.webhook('web', sha);
    // Discovery is the deploy's first request to the cluster: this is its wait for Retry-After.
    await until(async () => (await throttle.rejected()) > before);

    const started = Date.now();
    await worker.close();

    // Not left running past close's own bound (3 s after the deadline), as 10 waits would be.
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(await harness.services.store.get(id)).toMatchObject({
      state: 'queued',
      message: 'handed back: its worker stopped before the deploy finished; the next worker resumes it',
    });
  });
});
