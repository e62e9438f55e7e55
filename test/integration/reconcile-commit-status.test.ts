import { CoreV1Api } from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { readSecrets } from '../../src/config/secrets.js';
import { createKubeApplyEngine } from '../../src/deploy/kube-apply-engine.js';
import { PushgateError } from '../../src/lib/errors.js';
import { silentLogger } from '../../src/lib/logger.js';
import type { JobRecord } from '../../src/status/job-record.js';
import {
  createCommitStatusReporter,
  type CommitStatusReporter,
} from '../../src/status/reporters/commit-status-reporter.js';
import { createEnvRepo, type EnvRepo } from '../helpers/env-repo.js';
import { startFakeGithub, type FakeProvider } from '../helpers/fake-github.js';
import { createTestNamespace, kubeConfigFromTest, type TestNamespace } from '../helpers/kube.js';
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

describe('commit statuses of reconcile runs (real Redis, git, kube-apiserver)', () => {
  let repo: EnvRepo;
  let namespace: TestNamespace;
  let harness: WorkerHarness;
  let github: FakeProvider;
  let reporter: CommitStatusReporter;

  beforeEach(async () => {
    repo = await createEnvRepo({ branch: 'env/test' });
    namespace = await createTestNamespace('w-reconcile-status');
    github = await startFakeGithub();
    harness = await createWorkerHarness({
      redisUrl: redis.url,
      environments: [{ name: 'web', repo, env: { namespace: namespace.name, reconcileInterval: '1s' } }],
      providers: { github: github.url },
    });
    reporter = createCommitStatusReporter(
      harness.config,
      readSecrets({ GITHUB_TOKEN: 'ghs_test' }),
      silentLogger(),
      { timeoutMs: 10_000, retryBaseMs: 50, pollIntervalMs: 50 },
    );
  });

  afterEach(async () => {
    await harness.close();
    await github.close();
    await namespace.cleanup();
    await repo.remove();
  });

  /** Polls the job history until `enough` holds of its finished reconcile runs. */
  async function reconcileRuns(enough: (runs: JobRecord[]) => boolean): Promise<JobRecord[]> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const records = await harness.services.store.list({ environment: 'web', limit: 100 });
      const runs = records.filter((r) => r.trigger.kind === 'reconcile' && r.state === 'succeeded');
      if (enough(runs)) return runs;
      if (Date.now() > deadline) throw new Error(`not enough reconcile runs: ${runs.length}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  function statesFor(sha: string): string[] {
    return github.requests
      .filter((request) => request.path.endsWith(`/statuses/${sha}`))
      .map((request) => (request.body as { state: string }).state);
  }

  it('re-applying the live commit posts nothing; correcting drift posts one success', async () => {
    const sha = await repo.commit({ 'manifests/a.yaml': configMap('alpha', { v: '1' }) });
    await harness.startWorker({ reporter });

    const first = await reconcileRuns((runs) => runs.length >= 1);
    await reporter.flush();
    expect(statesFor(sha)).toEqual(['pending', 'success']);

    // Further runs find the commit live and nothing changed.
    const seen = new Set(first.map((run) => run.id));
    await reconcileRuns((runs) => runs.filter((run) => !seen.has(run.id)).length >= 3);
    await reporter.flush();
    expect(statesFor(sha)).toEqual(['pending', 'success']);

    // Someone edits the ConfigMap by hand: the next run puts it back, and says so.
    const core = kubeConfigFromTest().makeApiClient(CoreV1Api);
    const live = await core.readNamespacedConfigMap({ name: 'alpha', namespace: namespace.name });
    await core.replaceNamespacedConfigMap({
      name: 'alpha',
      namespace: namespace.name,
      body: { ...live, data: { v: 'edited by hand' } },
    });
    await reconcileRuns((runs) => runs.some((run) => run.resources.some((r) => r.action === 'configured')));
    await reporter.flush();
    expect(statesFor(sha)).toEqual(['pending', 'success', 'success']);
    const last = github.requests.filter((request) => request.path.endsWith(`/statuses/${sha}`)).at(-1)!;
    expect((last.body as { description: string }).description).toMatch(/1 configured/);
  });

  it('a re-sync that keeps failing posts failure once, and success when it recovers', async () => {
    const sha = await repo.commit({ 'manifests/a.yaml': configMap('alpha', { v: '1' }) });
    const real = createKubeApplyEngine(harness.config, process.env);
    let broken = false;
    await harness.startWorker({
      reporter,
      engine: {
        render: (environment, manifests) => real.render(environment, manifests),
        async deploy(request) {
          if (broken)
            throw new PushgateError(
              'apply_rejected',
              'admission webhook "policy.example.com" denied the request',
              {
                permanent: true,
              },
            );
          return real.deploy(request);
        },
      },
    });
    await reconcileRuns((runs) => runs.length >= 1);
    await reporter.flush();
    expect(statesFor(sha)).toEqual(['pending', 'success']);

    // The cluster starts refusing every apply: several re-syncs fail.
    broken = true;
    await failedRuns(4);
    await reporter.flush();
    expect(statesFor(sha)).toEqual(['pending', 'success', 'failure']);

    // Fixed: the next re-sync says so, once.
    broken = false;
    const seen = new Set((await reconcileRuns((runs) => runs.length >= 1)).map((run) => run.id));
    await reconcileRuns((runs) => runs.filter((run) => !seen.has(run.id)).length >= 2);
    await reporter.flush();
    expect(statesFor(sha)).toEqual(['pending', 'success', 'failure', 'success']);
  });

  async function failedRuns(count: number): Promise<void> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const records = await harness.services.store.list({ environment: 'web', limit: 100 });
      if (records.filter((r) => r.trigger.kind === 'reconcile' && r.state === 'failed').length >= count)
        return;
      if (Date.now() > deadline) throw new Error('not enough failed re-syncs');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
});
