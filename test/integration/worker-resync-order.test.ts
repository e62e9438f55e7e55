import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ApplyEngine } from '../../src/deploy/apply-engine.js';
import { createKubeApplyEngine } from '../../src/deploy/kube-apply-engine.js';
import { reconcilePhase, syncReconcileSchedulers } from '../../src/deploy/reconcile-schedulers.js';
import { silentLogger } from '../../src/lib/logger.js';
import { DEPLOY_JOB_NAME } from '../../src/queue/job-data.js';
import { createEnvRepo, type EnvRepo } from '../helpers/env-repo.js';
import { createTestNamespace, type TestNamespace } from '../helpers/kube.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { until } from '../helpers/until.js';
import { createWorkerHarness, type WorkerHarness } from './worker-harness.js';
import { configMap } from './worker-manifests.js';

const RESYNCED = ['alpha', 'beta', 'gamma'];
const HOUR = 3_600_000;

describe('re-syncs of a fleet of environments (real Redis, git, kube-apiserver)', () => {
  let redis: TestRedis;
  let repos: EnvRepo[] = [];
  let namespaces: TestNamespace[] = [];
  let harness: WorkerHarness | undefined;

  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis.stop();
  });
  afterEach(async () => {
    await harness?.close();
    harness = undefined;
    await Promise.all(namespaces.map((namespace) => namespace.cleanup()));
    await Promise.all(repos.map((repo) => repo.remove()));
    repos = [];
    namespaces = [];
  });

  /** Environments `names`, each with its own repository (one ConfigMap) and namespace. */
  async function fleet(names: { name: string; reconcileInterval: string }[]): Promise<WorkerHarness> {
    const environments = [];
    for (const { name, reconcileInterval } of names) {
      const repo = await createEnvRepo({ branch: 'env/test' });
      const namespace = await createTestNamespace(`resync-${name}`);
      repos.push(repo);
      namespaces.push(namespace);
      await repo.commit({ 'manifests/a.yaml': configMap(name, { v: '1' }) });
      environments.push({
        name,
        repo,
        env: { namespace: namespace.name, healthTimeout: '0', reconcileInterval },
      });
    }
    harness = await createWorkerHarness({ redisUrl: redis.url, environments });
    return harness;
  }

  it('takes a push before the re-syncs queued ahead of it', async () => {
    const harness = await fleet([
      // Every second: the first runs come within the interval, so at once here.
      ...RESYNCED.map((name) => ({ name, reconcileInterval: '1s' })),
      { name: 'web', reconcileInterval: '0' },
    ]);
    const real = createKubeApplyEngine(harness.config, process.env);
    const deployed: string[] = [];
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    // The one slot is held, as by a long health wait, while re-syncs and then a push queue up.
    const held: ApplyEngine = {
      render: (environment, manifests) => real.render(environment, manifests),
      deploy: async (request) => {
        deployed.push(request.environment.name);
        await released;
        return real.deploy(request);
      },
    };

    await harness.startWorker({ engine: held, concurrency: 1 });
    // Each new scheduler's first run is queued at once: one runs, two wait.
    await until(() => Promise.resolve(deployed.length === 1));
    await until(async () => (await harness.services.queue.count()) >= 2);
    const push = await harness.webhook(
      'web',
      await repos[3]!.commit({ 'manifests/a.yaml': configMap('web', { v: '2' }) }),
    );
    release();

    expect(await harness.waitForJob(push)).toMatchObject({ state: 'succeeded' });
    await until(() => Promise.resolve(deployed.length >= 4));
    expect(deployed[1]).toBe('web');
    expect(new Set(deployed.slice(0, 4))).toEqual(new Set([...RESYNCED, 'web']));
  });

  it('spreads the environments’ re-syncs over the interval, and re-phases schedulers an earlier version made', async () => {
    const harness = await fleet(RESYNCED.map((name) => ({ name, reconcileInterval: '1h' })));
    const { queue, redis: connection, keys } = harness.services;
    // As BullMQ makes them when no offset is given (what earlier versions did): the phase is
    // the second they were made in, the same for every environment made together.
    for (const name of RESYNCED) {
      await queue.upsertJobScheduler(
        `reconcile:${name}`,
        { every: HOUR },
        {
          name: DEPLOY_JOB_NAME,
          data: { environment: name, trigger: { kind: 'reconcile' }, receivedAt: '' },
        },
      );
    }
    const before = await Promise.all(RESYNCED.map((name) => queue.getJobScheduler(`reconcile:${name}`)));
    expect(new Set(before.map((scheduler) => Math.round(Number(scheduler?.next) / 1000))).size).toBe(1);

    await syncReconcileSchedulers({ queue, redis: connection, keys }, harness.config, silentLogger());

    const after = await Promise.all(RESYNCED.map((name) => queue.getJobScheduler(`reconcile:${name}`)));
    for (const [index, name] of RESYNCED.entries()) {
      const next = Number(after[index]?.next);
      expect(after[index]?.every).toBe(HOUR);
      expect(next % HOUR).toBe(reconcilePhase(name, HOUR));
      expect(next - Date.now()).toBeLessThanOrEqual(HOUR);
    }
    expect(new Set(after.map((scheduler) => Math.round(Number(scheduler?.next) / 1000))).size).toBe(3);
  });
});

describe('reconcilePhase', () => {
  it('spreads names over the interval, the same for a name wherever it is computed', () => {
    const every = 600_000;
    const phases = Array.from({ length: 300 }, (_, i) => reconcilePhase(`env-${i}`, every));
    const perMinute = new Map<number, number>();
    for (const phase of phases) {
      expect(phase).toBeGreaterThanOrEqual(1);
      expect(phase).toBeLessThan(every);
      const minute = Math.floor(phase / 60_000);
      perMinute.set(minute, (perMinute.get(minute) ?? 0) + 1);
    }
    // 30 a minute on average; all in one minute is what a scheduler's creation time gave.
    expect(perMinute.size).toBe(10);
    expect(Math.max(...perMinute.values())).toBeLessThan(60);
    expect(reconcilePhase('env-7', every)).toBe(phases[7]);
  });
});
