import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import type { ApplyEngine } from '../../src/deploy/apply-engine.js';
import { createKubeApplyEngine } from '../../src/deploy/kube-apply-engine.js';
import { createLogger } from '../../src/lib/logger.js';
import { createKeys } from '../../src/queue/keys.js';
import { workerTuningFromEnv } from '../../workers/deploy.js';
import { createEnvRepo, type EnvRepo } from '../helpers/env-repo.js';
import { createTestNamespace, type TestNamespace } from '../helpers/kube.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { startTcpProxy } from '../helpers/tcp-proxy.js';
import { until } from '../helpers/until.js';
import { createWorkerHarness, type WorkerHarness } from './worker-harness.js';
import { configMap, deployment } from './worker-manifests.js';

let redis: TestRedis;

/** The real engine, its deploys held at their start until released. */
function heldEngine(harness: WorkerHarness): { engine: ApplyEngine; entered: boolean; release(): void } {
  const real = createKubeApplyEngine(harness.config, process.env);
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const held = {
    entered: false,
    release,
    engine: {
      render: (environment, manifests) => real.render(environment, manifests),
      deploy: async (request) => {
        held.entered = true;
        await released;
        return real.deploy(request);
      },
    } satisfies ApplyEngine,
  };
  return held;
}

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis.stop();
});

describe('deploy worker shutdown (real Redis, git, kube-apiserver)', () => {
  let repo: EnvRepo;
  let namespace: TestNamespace;
  let harness: WorkerHarness;

  beforeEach(async () => {
    repo = await createEnvRepo({ branch: 'env/test' });
    namespace = await createTestNamespace('w-shutdown');
    harness = await createWorkerHarness({
      redisUrl: redis.url,
      environments: [{ name: 'web', repo, env: { namespace: namespace.name, healthTimeout: '60s' } }],
    });
  });

  afterEach(async () => {
    await harness.close();
    await namespace.cleanup();
    await repo.remove();
  });

  it('a deploy waiting for health says on its record what it waits for', async () => {
    const sha = await repo.commit({ 'manifests/web.yaml': deployment('web') });
    const worker = await harness.startWorker();
    const id = await harness.webhook('web', sha);

    const waiting = await until(async () => {
      const record = await harness.services.store.get(id);
      return record?.message?.startsWith('waiting until') ? record : undefined;
    });

    expect(waiting.state).toBe('running');
    expect(waiting.message).toMatch(
      new RegExp(
        `^waiting until \\S+Z for 1 workload to be ready: apps/v1 Deployment ${namespace.name}/web: .+`,
      ),
    );
    await worker.close(0);
  });

  it('past its deadline (PUSHGATE_SHUTDOWN_TIMEOUT_MS) hands the job back: queued again, no retry spent, lock released', async () => {
    const sha = await repo.commit({ 'manifests/web.yaml': deployment('web') });
    const { shutdownDeadlineMs } = workerTuningFromEnv({ PUSHGATE_SHUTDOWN_TIMEOUT_MS: '500' });
    const worker = await harness.startWorker({ shutdownDeadlineMs });
    const id = await harness.webhook('web', sha);
    // The Deployment is applied and never becomes ready (no kubelet): the job waits in its health check.
    await until(async () => (await harness.services.store.get(id))?.sha === sha);

    const started = Date.now();
    await worker.close();

    expect(Date.now() - started).toBeLessThan(5_000);
    expect(await harness.services.store.get(id)).toMatchObject({
      state: 'queued',
      sha,
      finishedAt: null,
      error: null,
      message: 'handed back: its worker stopped before the deploy finished; the next worker resumes it',
    });
    const lockKey = createKeys(harness.config.redis.prefix).environmentLock('web');
    expect(await harness.services.redis.get(lockKey)).toBeNull();
    const entry = await harness.services.queue.getJob(id);
    // Due now, not after a retry's backoff, and with every retry left for real failures.
    expect(await entry?.getState()).toMatch(/delayed|waiting/);
    expect(entry?.attemptsMade).toBe(0);
    expect(entry!.timestamp + (entry!.delay ?? 0)).toBeLessThanOrEqual(Date.now());
  });

  it('leaves Redis open to a deploy that outlives the deadline, which then hands its job back', async () => {
    const sha = await repo.commit({ 'manifests/web.yaml': deployment('web') });
    // A wait that ignores the abort (a library call without a signal, say).
    const deaf = heldEngine(harness);
    const worker = await harness.startWorker({ engine: deaf.engine, shutdownDeadlineMs: 200 });
    const id = await harness.webhook('web', sha);
    await until(() => Promise.resolve(deaf.entered));

    await worker.close();

    // Closed under it, the deploy's end would make BullMQ retry the job's move at once,
    // forever, starving the process (so that is not tried on a build without this).
    expect((await worker.worker.client).status).toBe('ready');
    deaf.release();
    expect(
      await until(async () => {
        const record = await harness.services.store.get(id);
        return record?.message?.startsWith('handed back') ? record : undefined;
      }),
    ).toMatchObject({ state: 'queued', finishedAt: null });
  });

  it('stops without its deadline when Redis goes away after the last deploy ended, before BullMQ moved its job; the job then comes back and is not deployed again', async () => {
    const sha = await repo.commit({ 'manifests/settings.yaml': configMap('settings', { mode: 'a' }) });
    const held = heldEngine(harness);
    const messages: string[] = [];
    const logger = createLogger({
      level: 'info',
      destination: { write: (line: string) => void messages.push((JSON.parse(line) as { msg: string }).msg) },
    });
    const proxy = await startTcpProxy(redis.port);
    onTestFinished(() => proxy.close());
    const worker = await harness.startWorker({
      redisUrl: `redis://127.0.0.1:${proxy.port}`,
      engine: held.engine,
      logger,
      lockDurationMs: 2_000,
    });
    const id = await harness.webhook('web', sha);
    await until(() => Promise.resolve(held.entered));
    // BullMQ's move of the finished job (the only command that carries `returnvalue`): the
    // deploy's record is written by then, the move never lands.
    const redisGone = proxy.cutOn(['returnvalue', id]);

    const started = Date.now();
    // A deadline well past the 2 s of Redis away and the bounded steps after them.
    const closing = worker.close(25_000);
    await until(() => Promise.resolve(worker.worker.closing !== undefined));
    held.release();
    await redisGone;
    await closing;

    // Not BullMQ's close, which would retry the move until the deadline.
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(messages).toContain(
      'Redis does not answer and no deploy is running: stopping without waiting for it',
    );
    const record = await harness.services.store.get(id);
    expect(record).toMatchObject({ state: 'succeeded', sha });

    // Its lock lapses and the next worker finds the job done: no second deploy.
    await harness.startWorker({ lockDurationMs: 2_000 });
    const entry = await harness.services.queue.getJob(id);
    await until(async () => ((await entry?.getState()) === 'completed' ? true : undefined), 30_000);
    expect(await harness.services.store.get(id)).toEqual(record);
  });
});
