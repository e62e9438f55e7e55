import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { readSecrets } from '../../src/config/secrets.js';
import type { ApplyEngine } from '../../src/deploy/apply-engine.js';
import { createKubeApplyEngine } from '../../src/deploy/kube-apply-engine.js';
import { PushgateError } from '../../src/lib/errors.js';
import { silentLogger } from '../../src/lib/logger.js';
import { createCommitStatusReporter } from '../../src/status/reporters/commit-status-reporter.js';
import { createEnvRepo, type EnvRepo } from '../helpers/env-repo.js';
import { startFakeGithub, type FakeProvider } from '../helpers/fake-github.js';
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

/** The last state GitHub was sent for each commit, in the order they were sent. */
function lastStates(github: FakeProvider): Map<string, string> {
  const last = new Map<string, string>();
  for (const request of github.requests) {
    const sha = request.path.split('/').at(-1)!;
    last.set(sha, (request.body as { state: string }).state);
  }
  return last;
}

describe('commit statuses across the attempts of one job (real Redis, git, kube-apiserver)', () => {
  let repo: EnvRepo;
  let namespace: TestNamespace;
  let harness: WorkerHarness;
  let github: FakeProvider;

  beforeEach(async () => {
    repo = await createEnvRepo({ branch: 'env/test' });
    namespace = await createTestNamespace('w-commit-status');
    github = await startFakeGithub();
    harness = await createWorkerHarness({
      redisUrl: redis.url,
      environments: [{ name: 'web', repo, env: { namespace: namespace.name } }],
      providers: { github: github.url },
    });
  });

  afterEach(async () => {
    await harness.close();
    await github.close();
    await namespace.cleanup();
    await repo.remove();
  });

  /** The real engine, except that its first deploy fails transiently after the branch moved on. */
  function engineWhoseFirstDeployFails(moveBranch: () => Promise<unknown>): ApplyEngine {
    const real = createKubeApplyEngine(harness.config, process.env);
    let calls = 0;
    return {
      render: (environment, manifests) => real.render(environment, manifests),
      async deploy(request) {
        calls += 1;
        if (calls > 1) return real.deploy(request);
        await moveBranch();
        throw new PushgateError('transient', 'the API server answered 503');
      },
    };
  }

  const quickReporter = () =>
    createCommitStatusReporter(harness.config, readSecrets({ GITHUB_TOKEN: 'ghs_test' }), silentLogger(), {
      timeoutMs: 10_000,
      retryBaseMs: 50,
      pollIntervalMs: 50,
    });

  /** Every status GitHub was sent for `sha`: state and description. */
  const sent = (sha: string) =>
    github.requests
      .filter((r) => r.path.endsWith(`/statuses/${sha}`))
      .map((r) => r.body as { state: string; description: string });

  it('a burst of 503s at the end of a successful deploy still ends with success on the commit', async () => {
    const reporter = quickReporter();
    const real = createKubeApplyEngine(harness.config, process.env);
    await harness.startWorker({
      reporter,
      engine: {
        render: (environment, manifests) => real.render(environment, manifests),
        async deploy(request) {
          const outcome = await real.deploy(request);
          // GitHub has a bad few seconds just as the deploy ends (after the pending landed).
          await github.waitForRequests(1);
          github.failNext(5, 503);
          return outcome;
        },
      },
    });
    const sha = await repo.commit({ 'manifests/a.yaml': configMap('alpha', { v: '1' }) });

    const record = await harness.waitForJob(await harness.webhook('web', sha));
    expect(await reporter.flush()).toBe(true);

    expect(record.state).toBe('succeeded');
    expect(sent(sha).map((body) => body.state)).toEqual(['pending', ...Array<string>(6).fill('success')]);
    // GET /jobs/:id shows it.
    expect(await harness.services.store.commitStatus('web', sha)).toEqual({
      state: 'success',
      delivered: true,
    });
  });

  it('a later superseded job of a deployed commit does not relabel it "not deployed"', async () => {
    const reporter = quickReporter();
    await harness.startWorker({ reporter });
    const a = await repo.commit({ 'manifests/a.yaml': configMap('alpha', { v: '1' }) });
    await harness.waitForJob(await harness.webhook('web', a));
    const b = await repo.commit({ 'manifests/a.yaml': configMap('alpha', { v: '2' }) });
    await harness.waitForJob(await harness.webhook('web', b));

    // A resent webhook of A (a new delivery id): the job is superseded by B.
    const late = await harness.waitForJob(await harness.webhook('web', a));
    await reporter.flush();

    expect(late.state).toBe('superseded');
    expect(sent(a).at(-1)?.state).toBe('success');
    expect(sent(a).at(-1)?.description).toMatch(/^Deployed to web/);
  });

  it('a commit whose job caught up with a newer head gets a superseded status', async () => {
    const reporter = quickReporter();
    await harness.startWorker({ reporter });
    const c = await repo.commit({ 'manifests/a.yaml': configMap('alpha', { v: '3' }) });
    const d = await repo.commit({ 'manifests/a.yaml': configMap('alpha', { v: '4' }) });

    // Only C's webhook arrives: its job deploys D.
    const record = await harness.waitForJob(await harness.webhook('web', c));
    await reporter.flush();

    expect(record).toMatchObject({ state: 'succeeded', sha: d });
    expect(sent(c)).toEqual([
      expect.objectContaining({
        state: 'success',
        description: `Superseded by ${d.slice(0, 7)}; not deployed itself`,
      }),
    ]);
    expect(sent(d).map((body) => body.state)).toEqual(['pending', 'success']);
  });

  it('settles the commit an earlier attempt left pending when a retry deploys a newer head', async () => {
    const reporter = createCommitStatusReporter(
      harness.config,
      readSecrets({ GITHUB_TOKEN: 'ghs_test' }),
      silentLogger(),
      { timeoutMs: 10_000 },
    );
    const first = await repo.commit({ 'manifests/a.yaml': configMap('alpha', { v: '1' }) });
    let second = '';
    await harness.startWorker({
      reporter,
      engine: engineWhoseFirstDeployFails(async () => {
        second = await repo.commit({ 'manifests/a.yaml': configMap('alpha', { v: '2' }) });
      }),
    });

    const record = await harness.waitForJob(await harness.manual('web'));
    await reporter.flush();

    expect(record).toMatchObject({ state: 'succeeded', sha: second, attempts: 2 });
    expect(Object.fromEntries(lastStates(github))).toEqual({ [first]: 'success', [second]: 'success' });
    const settled = github.requests.filter((r) => r.path.endsWith(first)).at(-1)!;
    expect(settled.body).toMatchObject({
      description: `Superseded by ${second.slice(0, 7)}; not deployed itself`,
    });
  });

  it('settles it too when the retry of a webhook job is superseded by the newer head’s own job', async () => {
    const reporter = createCommitStatusReporter(
      harness.config,
      readSecrets({ GITHUB_TOKEN: 'ghs_test' }),
      silentLogger(),
      { timeoutMs: 10_000 },
    );
    const announced = await repo.commit({ 'manifests/a.yaml': configMap('alpha', { v: '1' }) });
    // The push of `announced` was not the head when the job first ran: another commit was.
    const firstHead = await repo.commit({ 'manifests/a.yaml': configMap('alpha', { v: '2' }) });
    let newest = '';
    let newestJob = '';
    await harness.startWorker({
      reporter,
      engine: engineWhoseFirstDeployFails(async () => {
        newest = await repo.commit({ 'manifests/a.yaml': configMap('alpha', { v: '3' }) });
        newestJob = await harness.webhook('web', newest);
      }),
    });

    const record = await harness.waitForJob(await harness.webhook('web', announced));
    await harness.waitForJob(newestJob);
    await reporter.flush();

    expect(record).toMatchObject({ state: 'superseded' });
    expect(lastStates(github).get(firstHead)).toBe('success');
    expect(lastStates(github).get(newest)).toBe('success');
  });
});
