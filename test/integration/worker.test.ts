import { AppsV1Api, CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { runSync } from '../../src/commands/sync.js';
import type { ApplyEngine } from '../../src/deploy/apply-engine.js';
import { createKubeApplyEngine } from '../../src/deploy/kube-apply-engine.js';
import { MAYBE_CONFIGURED, MAYBE_CREATED } from '../../src/deploy/attempt-resources.js';
import { EnvironmentLock } from '../../src/deploy/environment-lock.js';
import { JobRun } from '../../src/deploy/job-run.js';
import {
  reconcilePhase,
  restoreMissingSchedulers,
  syncReconcileSchedulers,
} from '../../src/deploy/reconcile-schedulers.js';
import { DeployError } from '../../src/kube/types.js';
import { PushgateError } from '../../src/lib/errors.js';
import { createLogger, silentLogger } from '../../src/lib/logger.js';
import {
  createCommitStatusReporter,
  type CommitStatusReporter,
} from '../../src/status/reporters/commit-status-reporter.js';
import { readSecrets } from '../../src/config/secrets.js';
import { createEnvRepo, type EnvRepo } from '../helpers/env-repo.js';
import { startFakeGithub, type FakeProvider } from '../helpers/fake-github.js';
import {
  createTestNamespace,
  kubeConfigFromTest,
  kubeconfigPathFromTest,
  markDeploymentReady,
  type TestNamespace,
} from '../helpers/kube.js';
import { JobStore } from '../../src/status/job-store.js';
import { RETIRED_HISTORY_KEPT_MS } from '../../src/status/retired-histories.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { until } from '../helpers/until.js';
import { createWorkerHarness, type WorkerHarness } from './worker-harness.js';
import { configMap, deployment } from './worker-manifests.js';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough } from 'node:stream';

let redis: TestRedis;
let kc: KubeConfig;
let core: CoreV1Api;
let apps: AppsV1Api;

beforeAll(async () => {
  redis = await startRedis();
  kc = kubeConfigFromTest();
  core = kc.makeApiClient(CoreV1Api);
  apps = kc.makeApiClient(AppsV1Api);
});
afterAll(async () => {
  await redis.stop();
});

async function readConfigMap(namespace: string, name: string): Promise<Record<string, string> | null> {
  try {
    const found = await core.readNamespacedConfigMap({ name, namespace });
    return found.data ?? {};
  } catch (error) {
    if ((error as { code?: number }).code === 404) return null;
    throw error;
  }
}

describe('deploy worker (real Redis, git over file://, kube-apiserver)', () => {
  let repo: EnvRepo;
  let namespace: TestNamespace;
  let harness: WorkerHarness;
  let github: FakeProvider;

  beforeEach(async (context) => {
    repo = await createEnvRepo({ branch: 'env/test' });
    namespace = await createTestNamespace(`w-${context.task.name.slice(0, 24)}`);
    github = await startFakeGithub();
    harness = await createWorkerHarness({
      redisUrl: redis.url,
      environments: [{ name: 'web', repo, env: { namespace: namespace.name, healthTimeout: '3s' } }],
      providers: { github: github.url },
    });
  });

  /** The test's environment again, re-synced every `interval` (no health timeout, no provider). */
  const withReconcileInterval = async (interval: string) => {
    await harness.close();
    harness = await createWorkerHarness({
      redisUrl: redis.url,
      environments: [{ name: 'web', repo, env: { namespace: namespace.name, reconcileInterval: interval } }],
    });
  };

  const reporters: CommitStatusReporter[] = [];
  /** Commit statuses to the fake GitHub, as a worker with GITHUB_TOKEN sends them. */
  const githubReporter = () => {
    const reporter = createCommitStatusReporter(
      harness.config,
      readSecrets({ GITHUB_TOKEN: 'ghs_test' }),
      silentLogger(),
      { timeoutMs: 10_000 },
    );
    reporters.push(reporter);
    return reporter;
  };

  /** One attempt of job `id` as processDeployJob runs it, without a worker: the test plays its steps. */
  const jobRunOf = async (id: string, reporter: CommitStatusReporter) =>
    new JobRun(
      { store: harness.services.store, metrics: harness.metrics, reporter },
      harness.environment('web'),
      (await harness.services.store.get(id))!,
      silentLogger(),
    );

  afterEach(async () => {
    await Promise.all(reporters.splice(0).map((reporter) => reporter.close()));
    await harness.close();
    await github.close();
    await namespace.cleanup();
    await repo.remove();
  });

  it('an attempt that fails just after taking the environment lock gives it back, so the retry deploys', async () => {
    // The worker's first read of the job record once it holds the lock gets an error reply (a
    // Redis busy with a script, say); the test's own store is left alone.
    // Called with the instance's `this` below.
    // eslint-disable-next-line @typescript-eslint/unbound-method
    const acquire = EnvironmentLock.prototype.acquire;
    // eslint-disable-next-line @typescript-eslint/unbound-method
    const get = JobStore.prototype.get;
    let locked = false;
    let failedReads = 0;
    vi.spyOn(EnvironmentLock.prototype, 'acquire').mockImplementation(async function (
      this: EnvironmentLock,
      environment: string,
    ) {
      const lock = await acquire.call(this, environment);
      locked ||= lock !== null;
      return lock;
    });
    vi.spyOn(JobStore.prototype, 'get').mockImplementation(async function (this: JobStore, id: string) {
      if (locked && failedReads === 0 && this !== harness.services.store) {
        failedReads++;
        throw new Error('BUSY Redis is busy running a script');
      }
      return get.call(this, id);
    });
    try {
      await harness.startWorker();
      const sha = await repo.commit({ 'manifests/a.yaml': configMap('alpha', { v: '1' }) });

      const record = await harness.waitForJob(await harness.webhook('web', sha), 20_000);

      expect(failedReads).toBe(1);
      expect(record).toMatchObject({ state: 'succeeded', sha });
      expect(await readConfigMap(namespace.name, 'alpha')).toEqual({ v: '1' });
      expect(await harness.services.redis.exists(harness.services.keys.environmentLock('web'))).toBe(0);
    } finally {
      vi.restoreAllMocks();
    }
  });

  it('a deploy that finishes after another worker took its lock leaves the status to that deploy; after a lock that merely expired, records its commit', async () => {
    // The worker is frozen (a VM pause) between its last lock check and its final write, long
    // enough for its lock to expire and, in the first case, another worker's deploy to take it.
    // eslint-disable-next-line @typescript-eslint/unbound-method
    const finish = JobStore.prototype.finish;
    const lockKey = harness.services.keys.environmentLock('web');
    let whileFrozen: () => Promise<unknown> = () => Promise.resolve();
    vi.spyOn(JobStore.prototype, 'finish').mockImplementation(async function (
      this: JobStore,
      ...args: Parameters<JobStore['finish']>
    ) {
      if (args[2]?.fence) await whileFrozen();
      return finish.apply(this, args);
    });
    try {
      await harness.startWorker();
      const first = await repo.commit({ 'manifests/a.yaml': configMap('alpha', { v: '1' }) });
      const firstJob = await harness.waitForJob(await harness.webhook('web', first));
      expect(firstJob.state).toBe('succeeded');

      whileFrozen = () => harness.services.redis.set(lockKey, 'another-workers-token');
      const second = await repo.commit({ 'manifests/a.yaml': configMap('alpha', { v: '2' }) });
      const overtaken = await harness.waitForJob(await harness.webhook('web', second));

      expect(overtaken).toMatchObject({ state: 'succeeded', sha: second });
      let status = await harness.services.store.environmentStatus('web');
      expect(status.lastAppliedSha).toBe(first);
      expect(status.lastJobId).toBe(firstJob.id);
      // Left to its holder: the worker's release is compare-and-delete.
      expect(await harness.services.redis.get(lockKey)).toBe('another-workers-token');

      await harness.services.redis.del(lockKey);
      whileFrozen = () => harness.services.redis.del(lockKey);
      const third = await repo.commit({ 'manifests/a.yaml': configMap('alpha', { v: '3' }) });
      const expired = await harness.waitForJob(await harness.webhook('web', third));

      expect(expired).toMatchObject({ state: 'succeeded', sha: third });
      status = await harness.services.store.environmentStatus('web');
      expect(status.lastAppliedSha).toBe(third);
      expect(status.lastJobId).toBe(expired.id);
    } finally {
      vi.restoreAllMocks();
      await harness.services.redis.del(lockKey);
    }
  });

  it('first deploy creates the objects and records the applied commit', async () => {
    await harness.startWorker();
    const sha = await repo.commit({
      'manifests/a.yaml': configMap('alpha', { v: '1' }),
      'manifests/b.yaml': configMap('beta', { v: '1' }),
    });

    const record = await harness.waitForJob(await harness.webhook('web', sha));

    expect(record).toMatchObject({ state: 'succeeded', sha, attempts: 1, error: null });
    expect(record.resources.map((r) => [r.kind, r.name, r.action])).toEqual([
      ['ConfigMap', 'alpha', 'created'],
      ['ConfigMap', 'beta', 'created'],
    ]);
    expect(await readConfigMap(namespace.name, 'alpha')).toEqual({ v: '1' });
    expect(await harness.services.store.environmentStatus('web')).toMatchObject({
      lastAppliedSha: sha,
      lastJobId: record.id,
    });
    // Push to live, as the record shows it, for dashboards and alerts.
    const latency = await harness.metrics.jobLatency.get();
    const sample = (name: string): number | undefined =>
      latency.values.find(
        (value) =>
          value.metricName === name &&
          value.labels.environment === 'web' &&
          value.labels.state === 'succeeded',
      )?.value;
    expect(sample('pushgate_job_latency_seconds_count')).toBe(1);
    const waited = (Date.parse(record.finishedAt!) - Date.parse(record.receivedAt)) / 1000;
    expect(sample('pushgate_job_latency_seconds_sum')).toBeCloseTo(waited, 3);
  });

  it('logs each deploy step once, with the job id, environment and commit', async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = createLogger({
      level: 'info',
      destination: { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
    });
    await harness.startWorker({ logger });
    const sha = await repo.commit({ 'manifests/a.yaml': configMap('alpha', { v: '1' }) });

    const record = await harness.waitForJob(await harness.webhook('web', sha));

    expect(record.state).toBe('succeeded');
    const steps = lines.filter(
      (line) => line.msg === 'dry-run ok: 1 object' || line.msg === 'applied: 1 object',
    );
    expect(steps).toEqual([
      expect.objectContaining({ msg: 'dry-run ok: 1 object', jobId: record.id, environment: 'web', sha }),
      expect.objectContaining({ msg: 'applied: 1 object', jobId: record.id, environment: 'web', sha }),
    ]);
  });

  it('a second push prunes the deleted file’s object and reports configured and unchanged', async () => {
    await harness.startWorker();
    const first = await repo.commit({
      'manifests/a.yaml': configMap('alpha', { v: '1' }),
      'manifests/b.yaml': configMap('beta', { v: '1' }),
      'manifests/c.yaml': configMap('gamma', { v: '1' }),
    });
    await harness.waitForJob(await harness.webhook('web', first));

    const second = await repo.commit({
      'manifests/a.yaml': configMap('alpha', { v: '2' }),
      'manifests/c.yaml': null,
    });
    const record = await harness.waitForJob(await harness.webhook('web', second));

    expect(record.state).toBe('succeeded');
    const actions = Object.fromEntries(record.resources.map((r) => [r.name, r.action]));
    expect(actions).toEqual({ alpha: 'configured', beta: 'unchanged', gamma: 'pruned' });
    expect(await readConfigMap(namespace.name, 'gamma')).toBeNull();
    expect(await readConfigMap(namespace.name, 'alpha')).toEqual({ v: '2' });
  });

  it('refuses a commit that puts a kustomization in a folder it applied, rather than prune what the folder still holds', async () => {
    await harness.startWorker();
    const kustomization = 'resources: [a.yaml]\n';
    const first = await repo.commit({
      'manifests/app/a.yaml': configMap('alpha', { v: '1' }),
      'manifests/b.yaml': configMap('beta', { v: '1' }),
      // Skipped from the start: never applied, so never pruned, and no reason to refuse.
      'manifests/kustomized/kustomization.yaml': kustomization,
      'manifests/kustomized/c.yaml': configMap('gamma', { v: '1' }),
    });
    expect((await harness.waitForJob(await harness.webhook('web', first))).state).toBe('succeeded');
    expect(await readConfigMap(namespace.name, 'gamma')).toBeNull();

    const wrapped = await repo.commit({ 'manifests/app/kustomization.yaml': kustomization });
    const refused = await harness.waitForJob(await harness.webhook('web', wrapped));

    expect(refused.state).toBe('failed');
    expect(refused.error).toMatch(
      new RegExp(
        `^refusing to deploy: manifests/app \\(contains kustomization\\.yaml; .*\\): .*objects it held when ${first.slice(0, 12)} was applied would be pruned`,
      ),
    );
    expect(refused.error).not.toContain('manifests/kustomized');
    expect(await readConfigMap(namespace.name, 'alpha')).toEqual({ v: '1' });

    // Its files gone too: what it held is meant to go.
    const emptied = await repo.commit({ 'manifests/app/a.yaml': null });
    const pruned = await harness.waitForJob(await harness.webhook('web', emptied));

    expect(pruned.state, pruned.error ?? '').toBe('succeeded');
    expect(Object.fromEntries(pruned.resources.map((r) => [r.name, r.action]))).toEqual({
      alpha: 'pruned',
      beta: 'unchanged',
    });
  });

  it('retires an environment as docs/deploys.md says: with allowEmpty, a path holding only .gitkeep prunes all it applied', async () => {
    await harness.close();
    harness = await createWorkerHarness({
      redisUrl: redis.url,
      environments: [{ name: 'web', repo, env: { namespace: namespace.name, allowEmpty: true } }],
    });
    await harness.startWorker();
    const first = await repo.commit({
      'manifests/a.yaml': configMap('alpha', { v: '1' }),
      'manifests/app/b.yaml': configMap('beta', { v: '1' }),
    });
    expect((await harness.waitForJob(await harness.webhook('web', first))).state).toBe('succeeded');

    const emptied = await repo.commit({
      'manifests/a.yaml': null,
      'manifests/app/b.yaml': null,
      'manifests/.gitkeep': '',
    });
    const record = await harness.waitForJob(await harness.webhook('web', emptied));

    expect(record.state, record.error ?? '').toBe('succeeded');
    expect(Object.fromEntries(record.resources.map((r) => [r.name, r.action]))).toEqual({
      alpha: 'pruned',
      beta: 'pruned',
    });
    expect(await readConfigMap(namespace.name, 'alpha')).toBeNull();
  });

  describe('a bad commit fails at once with nothing applied', () => {
    const cases: [string, Record<string, string>, RegExp][] = [
      [
        'broken YAML',
        { 'manifests/bad.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata: [unclosed\n' },
        /manifests\/bad\.yaml/,
      ],
      [
        'a forbidden namespace',
        { 'manifests/bad.yaml': configMap('intruder', { v: '1' }, 'kube-system') },
        /kube-system/,
      ],
      [
        'an object the API server rejects',
        {
          'manifests/bad.yaml':
            'apiVersion: v1\nkind: Service\nmetadata:\n  name: broken\nspec:\n  ports:\n    - port: 70000\n',
        },
        /broken/,
      ],
    ];
    for (const [what, files, mentions] of cases) {
      it(`${what}`, async () => {
        await harness.startWorker();
        const good = await repo.commit({ 'manifests/a.yaml': configMap('alpha', { v: '1' }) });
        await harness.waitForJob(await harness.webhook('web', good));

        const bad = await repo.commit({
          'manifests/a.yaml': configMap('alpha', { v: '2' }),
          'manifests/new.yaml': configMap('fresh', { v: '1' }),
          ...files,
        });
        const record = await harness.waitForJob(await harness.webhook('web', bad));

        expect(record.state).toBe('failed');
        expect(record.attempts).toBe(1);
        expect(record.error).toMatch(mentions);
        expect(await readConfigMap(namespace.name, 'alpha')).toEqual({ v: '1' });
        expect(await readConfigMap(namespace.name, 'fresh')).toBeNull();
        expect((await harness.services.store.environmentStatus('web')).lastAppliedSha).toBe(good);
      });
    }
  });

  it('a late webhook for an old commit does not roll back: it is superseded', async () => {
    await harness.startWorker();
    const old = await repo.commit({ 'manifests/a.yaml': configMap('alpha', { v: 'old' }) });
    const current = await repo.commit({ 'manifests/a.yaml': configMap('alpha', { v: 'new' }) });
    await harness.waitForJob(await harness.webhook('web', current));

    const late = await harness.waitForJob(await harness.webhook('web', old));

    expect(late).toMatchObject({ state: 'superseded', message: `superseded by ${current}` });
    expect(await readConfigMap(namespace.name, 'alpha')).toEqual({ v: 'new' });
    expect((await harness.services.store.environmentStatus('web')).lastAppliedSha).toBe(current);
  });

  it("a late webhook for an old commit does not re-run the head's failed deploy: it is superseded", async () => {
    const reporter = githubReporter();
    await harness.startWorker({ reporter });
    const base = await repo.commit({ 'manifests/a.yaml': configMap('alpha', { v: 'base' }) });
    await harness.waitForJob(await harness.webhook('web', base));
    // Two pushes whose webhooks arrive out of order: the newer one's deploy fails first.
    const older = await repo.commit({ 'manifests/a.yaml': configMap('alpha', { v: 'older' }) });
    const bad = await repo.commit({ 'manifests/a.yaml': configMap('intruder', { v: '1' }, 'kube-system') });
    expect(await harness.waitForJob(await harness.webhook('web', bad))).toMatchObject({ state: 'failed' });
    await reporter.flush();
    const statusesBefore = github.requests.length;

    const late = await harness.waitForJob(await harness.webhook('web', older));
    await reporter.flush();

    expect(late).toMatchObject({ state: 'superseded', message: `superseded by ${bad}` });
    const after = github.requests.slice(statusesBefore);
    expect(after.map((r) => [r.path, (r.body as { state: string }).state])).toEqual([
      [`/repos/acme/web-config/statuses/${older}`, 'success'],
    ]);
    expect(await readConfigMap(namespace.name, 'alpha')).toEqual({ v: 'base' });
  });

  it('a force-push back to an older commit deploys it', async () => {
    await harness.startWorker();
    const old = await repo.commit({ 'manifests/a.yaml': configMap('alpha', { v: 'old' }) });
    await harness.waitForJob(await harness.webhook('web', old));
    const newer = await repo.commit({ 'manifests/a.yaml': configMap('alpha', { v: 'new' }) });
    await harness.waitForJob(await harness.webhook('web', newer));

    await repo.forcePush(old);
    const record = await harness.waitForJob(await harness.webhook('web', old));

    expect(record).toMatchObject({ state: 'succeeded', sha: old });
    expect(await readConfigMap(namespace.name, 'alpha')).toEqual({ v: 'old' });
  });

  it('drift made by hand is corrected by pushgate sync --wait', async () => {
    await harness.startWorker();
    const sha = await repo.commit({ 'manifests/a.yaml': configMap('alpha', { v: '1' }) });
    await harness.waitForJob(await harness.webhook('web', sha));
    const drifted = await core.readNamespacedConfigMap({ name: 'alpha', namespace: namespace.name });
    drifted.data = { v: 'edited by hand' };
    await core.replaceNamespacedConfigMap({ name: 'alpha', namespace: namespace.name, body: drifted });

    const configFile = path.join(harness.cacheDir, 'pushgate.yaml');
    await writeFile(configFile, harness.configText);
    const stdout = new PassThrough();
    let printed = '';
    stdout.on('data', (chunk: Buffer) => (printed += chunk.toString()));
    const code = await runSync({
      positionals: ['web'],
      config: configFile,
      ref: undefined,
      wait: true,
      json: false,
      env: {},
      stdout,
      stderr: new PassThrough(),
    });

    expect(code).toBe(0);
    expect(printed).toMatch(/succeeded/);
    expect(await readConfigMap(namespace.name, 'alpha')).toEqual({ v: '1' });
  });

  it('a reconcile interval re-applies the branch head on its own and corrects drift', async () => {
    await withReconcileInterval('1s');
    await repo.commit({ 'manifests/a.yaml': configMap('alpha', { v: '1' }) });
    await harness.startWorker();
    await until(() => readConfigMap(namespace.name, 'alpha'));
    const drifted = await core.readNamespacedConfigMap({ name: 'alpha', namespace: namespace.name });
    drifted.data = { v: 'edited by hand' };
    await core.replaceNamespacedConfigMap({ name: 'alpha', namespace: namespace.name, body: drifted });

    await until(async () => (await readConfigMap(namespace.name, 'alpha'))?.v === '1');

    const jobs = await harness.services.store.list({ environment: 'web', limit: 10 });
    expect(jobs.length).toBeGreaterThan(0);
    expect(jobs.every((job) => job.trigger.kind === 'reconcile')).toBe(true);

    // Re-syncs that found nothing to do are the ones the history keeps only a few of; the
    // first deploy and the drift correction stay.
    const { redis: connection, keys, store } = harness.services;
    const quiet = await until(async () => {
      const ids = await connection.zrange(keys.quietResyncs('web'), 0, -1);
      return ids.length > 0 ? ids : undefined;
    });
    for (const record of await store.getMany(quiet)) {
      expect(record.resources.every((resource) => resource.action === 'unchanged')).toBe(true);
    }
    const changed = (await store.list({ environment: 'web', limit: 100 })).filter((job) =>
      job.resources.some((resource) => resource.action !== 'unchanged'),
    );
    expect(changed.map((job) => job.resources.find((resource) => resource.name === 'alpha')?.action)).toEqual(
      expect.arrayContaining(['created', 'configured']),
    );
    expect(changed.some((job) => quiet.includes(job.id))).toBe(false);
  });

  it('drops the history of an environment removed from the configuration a week after its last job and its removal', async () => {
    const { store, redis: connection, keys } = harness.services;
    const longAgo = new Date(Date.now() - RETIRED_HISTORY_KEPT_MS - 60_000).toISOString();
    await store.claimMany(
      ['removed-1', 'removed-2'].map((id) => ({
        id,
        environment: 'removed',
        trigger: { kind: 'manual' as const },
        receivedAt: longAgo,
      })),
    );
    // As an earlier sweep leaves it: the environment was found retired a week and a minute ago.
    await connection.set(keys.retiredSince('removed'), String(Date.now() - RETIRED_HISTORY_KEPT_MS - 60_000));
    await harness.startWorker({ requeueIntervalMs: 100 });

    expect(await until(async () => (await store.getMany(['removed-1', 'removed-2'])).length === 0)).toBe(
      true,
    );
    expect(await connection.zscore(keys.jobsAll, 'removed-1')).toBeNull();
  });

  it('re-creates a reconcile scheduler that Redis lost', async () => {
    await withReconcileInterval('1h');
    await harness.startWorker({ requeueIntervalMs: 100 });
    const queue = harness.services.queue;
    expect(await queue.getJobScheduler('reconcile:web')).toBeDefined();

    // What a failover that lost writes, or a restart without persistence, leaves.
    await queue.removeJobScheduler('reconcile:web');

    const restored = await until(async () => (await queue.getJobScheduler('reconcile:web'))?.every);
    expect(restored).toBe(3_600_000);
  });

  it('does not restore a scheduler that a newer configuration removed (a rolling update)', async () => {
    await withReconcileInterval('1h');
    const { queue, redis: connection, keys } = harness.services;
    const store = { queue, redis: connection, keys };
    const oldConfig = harness.config;
    await syncReconcileSchedulers(store, oldConfig, silentLogger());
    const newConfig = {
      ...oldConfig,
      environments: oldConfig.environments.map((e) => ({ ...e, reconcileInterval: 0 })),
    };

    await syncReconcileSchedulers(store, newConfig, silentLogger());
    await restoreMissingSchedulers(store, oldConfig, silentLogger());

    expect((await queue.getJobScheduler('reconcile:web'))?.every).toBeUndefined();
    // The environment's re-sync turned on again by a configuration: back for good.
    await syncReconcileSchedulers(store, oldConfig, silentLogger());
    await queue.removeJobScheduler('reconcile:web');
    await restoreMissingSchedulers(store, oldConfig, silentLogger());
    expect((await queue.getJobScheduler('reconcile:web'))?.every).toBe(3_600_000);
  });

  it('a changed reconcile interval runs at its own pace, not at the phase of the old one', async () => {
    await withReconcileInterval('1s');
    await repo.commit({ 'manifests/a.yaml': configMap('alpha', { v: '1' }) });
    const { queue, redis: connection, keys } = harness.services;
    // The scheduler as a worker of the earlier configuration (re-sync every hour) left it.
    const hourly = {
      ...harness.config,
      environments: harness.config.environments.map((e) => ({ ...e, reconcileInterval: 3_600_000 })),
    };
    const store = { queue, redis: connection, keys };
    await syncReconcileSchedulers(store, hourly, silentLogger());
    // Then a worker of the new configuration (every second) started, and stopped; none runs
    // for longer than the new interval, so the next run falls due while no worker is there.
    await syncReconcileSchedulers(store, harness.config, silentLogger());
    await new Promise((resolve) => setTimeout(resolve, 1_500));

    await harness.startWorker();

    // Several runs a second apart. With the hourly phase kept (BullMQ's own behaviour), the
    // run after the one that fell due comes up to an hour later.
    await until(async () => (await queue.getCompletedCount()) >= 3);
    const scheduler = await queue.getJobScheduler('reconcile:web');
    expect(scheduler?.every).toBe(1_000);

    // Made longer again (a worker of the hourly configuration starts): a run comes within a
    // minute or two, not a whole interval (an hour) from now; the next at the environment's place in the hour.
    await syncReconcileSchedulers(store, hourly, silentLogger());
    const longer = await queue.getJobScheduler('reconcile:web');
    expect(longer?.every).toBe(3_600_000);
    expect(Number(longer?.next) % 3_600_000).toBe(reconcilePhase('web', 3_600_000));
    // A run of its own at the environment's place within the minute, unless its place in the
    // hour comes no later than a minute after that (then that run is the first).
    const first = (await queue.getJobs(['delayed', 'prioritized', 'active', 'completed'])).find((job) =>
      job.id?.startsWith('resync-web-3600000-'),
    );
    const firstRunAt = first ? first.timestamp + (first.opts.delay ?? 0) : Number(longer?.next);
    expect(firstRunAt - Date.now()).toBeLessThanOrEqual(reconcilePhase('web', 60_000) - 1 + 60_000);
  });

  it('queues one first re-sync when workers starting together straddle a minute, and one again when re-sync is turned back on', async () => {
    await withReconcileInterval('1h');
    const { queue, redis: connection, keys } = harness.services;
    const store = { queue, redis: connection, keys };
    const firstRuns = async () =>
      (await queue.getJobs(['delayed', 'prioritized', 'wait', 'active', 'completed'])).filter((job) =>
        job.id?.startsWith('resync-web-3600000-'),
      );
    // Just after the environment's place in the hour: a run of its own is due for an hour.
    const hour = 3_600_000;
    const placeInHour = Math.floor(Date.now() / hour) * hour + reconcilePhase('web', hour);
    let clock = placeInHour + 60_000;
    // Each reading of the clock a minute and a second after the last, so that no two of the
    // workers' readings fall in the same minute, as when they straddle a minute's turn.
    const now = vi.spyOn(Date, 'now').mockImplementation(() => (clock += 61_000));
    try {
      // Together: each reads the scheduler before any has made it, so each finds it new.
      await Promise.all([0, 1, 2].map(() => syncReconcileSchedulers(store, harness.config, silentLogger())));
      expect(await firstRuns()).toHaveLength(1);

      // Turned off, then on again within the same hour once the first run's claim has lapsed
      // (a minute): the scheduler's next run is the same as before, its first run a new one.
      const off = {
        ...harness.config,
        environments: harness.config.environments.map((e) => ({ ...e, reconcileInterval: 0 })),
      };
      await syncReconcileSchedulers(store, off, silentLogger());
      await connection.del(keys.resyncFirstRunClaim('web'));
      await syncReconcileSchedulers(store, harness.config, silentLogger());
    } finally {
      now.mockRestore();
    }
    expect(await firstRuns()).toHaveLength(2);
  });

  it('skips re-sync runs that fall due while a deploy runs, instead of piling them up', async () => {
    await withReconcileInterval('1s');
    await repo.commit({ 'manifests/a.yaml': configMap('alpha', { v: '1' }) });
    const real = createKubeApplyEngine(harness.config, process.env);
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let deploys = 0;
    // The first deploy outlasts several intervals, as one waiting for a slow rollout does.
    const slow: ApplyEngine = {
      render: (environment, manifests) => real.render(environment, manifests),
      deploy: async (request) => {
        deploys += 1;
        if (deploys === 1) await released;
        return real.deploy(request);
      },
    };
    await harness.startWorker({ engine: slow, concurrency: 4 });
    const queue = harness.services.queue;
    await until(() => Promise.resolve(deploys === 1));
    await until(async () => (await queue.getCompletedCount()) >= 3);

    const piled = await harness.services.store.list({ environment: 'web', limit: 100 });
    expect(piled.filter((job) => job.state === 'queued')).toEqual([]);
    release();
    await until(async () => (await readConfigMap(namespace.name, 'alpha'))?.v === '1');
  });

  it('a transient failure (API server unreachable) keeps the job queued with its error for a retry', async () => {
    await harness.close();
    // The test cluster's kubeconfig, pointed at a loopback port where nothing listens.
    const unreachable = path.join(repo.workDir, '..', 'unreachable.kubeconfig');
    const original = await readFile(kubeconfigPathFromTest(), 'utf8');
    await writeFile(unreachable, original.replace(/server: https:\/\/[^\s]+/, 'server: https://127.0.0.1:1'));
    harness = await createWorkerHarness({
      redisUrl: redis.url,
      environments: [{ name: 'web', repo, env: { namespace: namespace.name } }],
      kubeconfig: unreachable,
    });
    await harness.startWorker();
    const sha = await repo.commit({ 'manifests/a.yaml': configMap('alpha', { v: '1' }) });

    const id = await harness.webhook('web', sha);
    const record = await until(async () => {
      const current = await harness.services.store.get(id);
      return current?.error ? current : null;
    });

    expect(record).toMatchObject({ state: 'queued', attempts: 1, finishedAt: null });
    expect(record.error).toMatch(/127\.0\.0\.1:1|ECONNREFUSED|connect/i);
    // Which cluster of several is down, and where it was looked for.
    expect(record.error).toContain('cluster test (https://127.0.0.1:1): ');
    // BullMQ counts the failed attempt and schedules the retry with its backoff.
    const job = await until(async () => {
      const current = await harness.services.queue.getJob(id);
      return current && current.attemptsMade >= 1 ? current : null;
    });
    expect(await job.getState()).toMatch(/delayed|waiting|active/);
  });

  it('a burst of pushes ends on the last commit with none failed', async () => {
    await harness.startWorker({ concurrency: 4 });
    const ids: string[] = [];
    let last = '';
    for (let i = 1; i <= 6; i += 1) {
      last = await repo.commit({ 'manifests/a.yaml': configMap('alpha', { v: String(i) }) });
      ids.push(await harness.webhook('web', last));
    }

    const records = await Promise.all(ids.map((id) => harness.waitForJob(id, 60_000)));

    expect(records.filter((r) => r.state === 'failed')).toEqual([]);
    expect(records.at(-1)).toMatchObject({ state: 'succeeded', sha: last });
    expect(await readConfigMap(namespace.name, 'alpha')).toEqual({ v: '6' });
    expect((await harness.services.store.environmentStatus('web')).lastAppliedSha).toBe(last);
  });

  it('waits for a Deployment to be ready and succeeds once its status says so', async () => {
    await harness.startWorker();
    const sha = await repo.commit({ 'manifests/web.yaml': deployment('web') });
    const id = await harness.webhook('web', sha);

    await until(() =>
      apps.readNamespacedDeployment({ name: 'web', namespace: namespace.name }).catch(() => null),
    );
    await markDeploymentReady(namespace.name, 'web');
    const record = await harness.waitForJob(id);

    expect(record).toMatchObject({ state: 'succeeded', sha });
  });

  it('fails with the objects that were not ready when the health wait times out', async () => {
    await harness.startWorker();
    const sha = await repo.commit({ 'manifests/web.yaml': deployment('web') });

    const record = await harness.waitForJob(await harness.webhook('web', sha), 60_000);

    expect(record.state).toBe('failed');
    expect(record.error).toMatch(/Deployment.*web/);
  });

  it('sends commit statuses: pending, then success, with context and target URL', async () => {
    const reporter = githubReporter();
    await harness.startWorker({ reporter });
    const sha = await repo.commit({ 'manifests/a.yaml': configMap('alpha', { v: '1' }) });
    const id = await harness.webhook('web', sha);
    await harness.waitForJob(id);
    await reporter.flush();

    expect(github.requests.map((r) => [r.path, r.body])).toEqual([
      [
        `/repos/acme/web-config/statuses/${sha}`,
        {
          state: 'pending',
          context: 'pushgate/web',
          target_url: `http://pushgate.test/jobs/${id}`,
          description: `Deploying ${sha.slice(0, 7)} to web`,
        },
      ],
      [
        `/repos/acme/web-config/statuses/${sha}`,
        {
          state: 'success',
          context: 'pushgate/web',
          target_url: `http://pushgate.test/jobs/${id}`,
          description: 'Deployed to web: 1 object: 1 created',
        },
      ],
    ]);
  });

  it('keeps on a failed job what its deploy warned of before failing (a lost inventory, say)', async () => {
    const sha = await repo.commit({ 'manifests/a.yaml': configMap('alpha', { v: '1' }) });
    const id = await harness.webhook('web', sha);
    const run = await jobRunOf(id, githubReporter());
    await run.started(1);
    const error = new DeployError('apply_rejected', 'server-side dry-run rejected the set', {
      permanent: true,
    });
    error.warnings.push('inventory ConfigMap apps/pushgate-inventory-web was missing');

    await run.failed(error, []);

    expect(await harness.services.store.get(id)).toMatchObject({
      state: 'failed',
      error: 'server-side dry-run rejected the set',
      message: 'warning: inventory ConfigMap apps/pushgate-inventory-web was missing',
    });
  });

  it('names on a job failed after its worker was killed what that worker may have created or changed, and keeps no bookkeeping', async () => {
    const sha = await repo.commit({ 'manifests/a.yaml': configMap('alpha', { v: '1' }) });
    const id = await harness.webhook('web', sha);
    const store = harness.services.store;
    // A worker killed mid-stage: it announced three creations, and recorded one of them.
    const killed = await jobRunOf(id, githubReporter());
    await killed.started(1);
    await killed.deploying(sha);
    const cm = (name: string) => ({ apiVersion: 'v1', kind: 'ConfigMap', namespace: namespace.name, name });
    await killed.changing([
      ...[cm('a'), cm('b'), cm('c')].map((ref) => ({ ...ref, action: 'created' as const })),
      { ...cm('d'), action: 'configured' },
    ]);
    await killed.written([
      { ...cm('a'), action: 'created' },
      { ...cm('b'), action: 'skipped', message: 'not applied: the deploy stopped before this object' },
      { ...cm('d'), action: 'skipped', message: 'not applied: the deploy stopped before this object' },
    ]);

    // No attempt comes after it (it stalled too often): the job fails with what it has.
    const last = await jobRunOf(id, githubReporter());
    await last.failed(new Error('job stalled more than allowable limit'), undefined);

    const record = (await store.get(id))!;
    expect(record.state).toBe('failed');
    expect(record.resources).toEqual([
      { ...cm('a'), action: 'created' },
      { ...cm('b'), action: 'skipped', message: MAYBE_CREATED },
      { ...cm('d'), action: 'skipped', message: MAYBE_CONFIGURED },
      { ...cm('c'), action: 'skipped', message: MAYBE_CREATED },
    ]);
    expect(record).not.toHaveProperty('creating');
    expect(record).not.toHaveProperty('configuring');
  });

  it('keeps no bookkeeping of a running job on a record finished outside a deploy', async () => {
    const sha = await repo.commit({ 'manifests/a.yaml': configMap('alpha', { v: '1' }) });
    const id = await harness.webhook('web', sha);
    const store = harness.services.store;
    await store.update(id, { state: 'running', sha, creating: ['v1|ConfigMap|apps|a'] });

    // As a worker fails a job whose environment left the configuration.
    await store.finish(id, {
      state: 'failed',
      error: 'not configured',
      finishedAt: new Date().toISOString(),
    });

    expect(await store.get(id)).not.toHaveProperty('creating');
  });

  it('reports failure on a commit an earlier attempt left pending when the last fails before deploying', async () => {
    const reporter = githubReporter();
    const sha = await repo.commit({ 'manifests/a.yaml': configMap('alpha', { v: '1' }) });
    // No worker: the test plays two attempts, each with a JobRun of its own as processDeployJob makes them.
    const id = await harness.webhook('web', sha);
    const attempt = () => jobRunOf(id, reporter);
    const first = await attempt();
    await first.started(1);
    await first.deploying(sha);
    await first.willRetry(new PushgateError('transient', 'connect ECONNREFUSED'), undefined);
    const last = await attempt();
    await last.started(2);
    await last.failed(new PushgateError('git_failed', 'git fetch timed out after 60000 ms'), undefined);
    await reporter.flush();

    // Only the newest status of a commit is sure to go out: the pending may be overtaken unsent.
    const sent = github.requests.map((r) => [r.path, (r.body as { state: string }).state]);
    expect(sent.filter(([, state]) => state !== 'pending')).toEqual([
      [`/repos/acme/web-config/statuses/${sha}`, 'failure'],
    ]);
    expect(sent.at(-1)?.[1]).toBe('failure');
    expect(github.requests.at(-1)!.body).toMatchObject({
      description: 'Deploy failed: git fetch timed out after 60000 ms',
    });
  });

  it("keeps an earlier attempt's changes in the job's resources, for the same commit only", async () => {
    const reporter = githubReporter();
    const first = await repo.commit({ 'manifests/a.yaml': configMap('alpha', { v: '1' }) });
    const second = await repo.commit({ 'manifests/a.yaml': configMap('alpha', { v: '2' }) });
    const cm = (action: 'created' | 'unchanged' | 'configured') => ({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      namespace: namespace.name,
      name: 'alpha',
      action,
    });
    const playAttempts = async (retrySha: string) => {
      const id = await harness.manual('web');
      const died = await jobRunOf(id, reporter);
      await died.started(1);
      await died.deploying(first);
      await died.written([cm('created')]);
      const retry = await jobRunOf(id, reporter);
      await retry.started(2);
      await retry.deploying(retrySha);
      await retry.succeeded(retrySha, [cm(retrySha === first ? 'unchanged' : 'configured')]);
      return (await harness.services.store.get(id))!.resources;
    };

    // The attempt that died created it; the retry of the same commit found it done.
    expect(await playAttempts(first)).toEqual([cm('created')]);
    // The branch moved meanwhile: the retry deployed another commit, its own outcome stands.
    expect(await playAttempts(second)).toEqual([cm('configured')]);
    await reporter.flush();
  });

  it('reports failure on the announced commit when the job fails before fetching it', async () => {
    const reporter = githubReporter();
    const sha = await repo.commit({ 'manifests/a.yaml': configMap('alpha', { v: '1' }) });
    const id = await harness.webhook('web', sha);
    const run = await jobRunOf(id, reporter);
    await run.started(1);
    await run.failed(new PushgateError('git_failed', 'git fetch env/test: authentication failed'), undefined);
    await reporter.flush();

    expect((await harness.services.store.get(id))?.sha).toBeNull();
    expect(github.requests.map((r) => [r.path, (r.body as { state: string }).state])).toEqual([
      [`/repos/acme/web-config/statuses/${sha}`, 'failure'],
    ]);
  });

  it('reports failure on the commit when the deploy fails', async () => {
    const reporter = githubReporter();
    await harness.startWorker({ reporter });
    const sha = await repo.commit({ 'manifests/a.yaml': configMap('intruder', { v: '1' }, 'kube-system') });
    const id = await harness.webhook('web', sha);
    await harness.waitForJob(id);
    await reporter.flush();

    expect(github.requests.map((r) => (r.body as { state: string }).state)).toEqual(['pending', 'failure']);
    expect(github.requests[1]!.body).toMatchObject({
      context: 'pushgate/web',
      target_url: `http://pushgate.test/jobs/${id}`,
    });
  });
});
