import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { CoreV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { CommandArgs } from '../../src/commands/command.js';
import { runStatus } from '../../src/commands/status.js';
import { runSuspend } from '../../src/commands/suspend.js';
import { runCommand } from '../../src/commands/run-command.js';
import { runResume, runSync } from '../../src/commands/sync.js';
import { createApp } from '../../src/http/app.js';
import { listen, type RunningServer } from '../../src/http/server.js';
import { createLogger, silentLogger } from '../../src/lib/logger.js';
import { createMetrics } from '../../src/lib/metrics.js';
import { DEPLOY_JOB_NAME, DEPLOY_JOB_OPTIONS } from '../../src/queue/job-data.js';
import { createKeys } from '../../src/queue/keys.js';
import type { JobRecord } from '../../src/status/job-record.js';
import { githubHeaders, githubPush } from '../fixtures/github/payloads.js';
import { readSecrets } from '../../src/config/secrets.js';
import {
  createCommitStatusReporter,
  type CommitStatusReporter,
} from '../../src/status/reporters/commit-status-reporter.js';
import { createEnvRepo, type EnvRepo } from '../helpers/env-repo.js';
import { startFakeGithub, type FakeProvider } from '../helpers/fake-github.js';
import { createTestNamespace, kubeConfigFromTest, type TestNamespace } from '../helpers/kube.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { until } from '../helpers/until.js';
import { testSecrets } from './receiver-harness.js';
import { createWorkerHarness, type WorkerHarness } from './worker-harness.js';
import { configMap } from './worker-manifests.js';

const SECRET = 'github-secret';

let redis: TestRedis;
let repo: EnvRepo;
let namespace: TestNamespace;
let harness: WorkerHarness;
let server: RunningServer;
let dir: string;
let configFile: string;
let github: FakeProvider;
let reporter: CommitStatusReporter;
const workerLog: string[] = [];

beforeAll(async () => {
  redis = await startRedis();
  repo = await createEnvRepo({ branch: 'env/test' });
  namespace = await createTestNamespace('suspend');
  github = await startFakeGithub();
  harness = await createWorkerHarness({
    redisUrl: redis.url,
    providers: { github: github.url },
    // Re-syncs every second: while suspended, each must be skipped, drift left alone.
    environments: [
      { name: 'web', repo, env: { namespace: namespace.name, healthTimeout: '0', reconcileInterval: '1s' } },
    ],
  });
  reporter = createCommitStatusReporter(
    harness.config,
    readSecrets({ GITHUB_TOKEN: 'ghs_test' }),
    silentLogger(),
    {
      timeoutMs: 10_000,
    },
  )!;
  await harness.startWorker({
    reporter,
    logger: createLogger({
      level: 'info',
      destination: { write: (line: string) => void workerLog.push(line) },
    }),
  });
  const metrics = createMetrics();
  server = await listen(
    createApp({
      config: harness.config,
      secrets: testSecrets(),
      logger: silentLogger(),
      metrics,
      ...harness.services,
    }),
    '127.0.0.1',
    0,
  );
  dir = mkdtempSync(join(tmpdir(), 'pushgate-suspend-'));
  configFile = join(dir, 'pushgate.yaml');
  writeFileSync(configFile, harness.configText);
});

afterAll(async () => {
  await server?.close(1_000);
  await harness?.close();
  await reporter?.close();
  await github?.close();
  await namespace?.cleanup();
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function push(sha: string): Promise<string> {
  const body = JSON.stringify(githubPush({ repository: 'acme/web-config', branch: 'env/test', after: sha }));
  const response = await fetch(`${server.url}/webhooks/github`, {
    method: 'POST',
    body,
    headers: githubHeaders(SECRET, body),
  });
  expect(response.status).toBe(202);
  return ((await response.json()) as { jobs: { id: string }[] }).jobs[0]!.id;
}

async function post(path: string, body?: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${server.url}${path}`, {
    method: 'POST',
    ...(body === undefined ? {} : { body, headers: { 'content-type': 'application/json' } }),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

async function configMapData(): Promise<Record<string, string> | undefined> {
  const core = kubeConfigFromTest().makeApiClient(CoreV1Api);
  return (await core.readNamespacedConfigMap({ name: 'app', namespace: namespace.name })).data;
}

async function suspendedGauge(): Promise<string | undefined> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  return /^pushgate_environment_suspended\{environment="web"\} (\d)$/m.exec(text)?.[1];
}

/**
 * Resolves once the worker has skipped a re-sync for the suspension, one it had not skipped
 * before this call, and no deploy holds the environment: one that started before the
 * suspension finishes (it would apply the commit over a hand-made fix made meanwhile).
 */
async function nextSkippedResync(): Promise<void> {
  const skipped = () =>
    workerLog.filter((line) => line.includes('environment suspended: this re-sync run skipped')).length;
  const seen = skipped();
  await until(() => Promise.resolve(skipped() > seen), 15_000);
  const lock = createKeys(harness.config.redis.prefix).environmentLock('web');
  await until(async () => (await harness.services.redis.exists(lock)) === 0, 15_000);
}

function commandArgs(positionals: string[], options: Partial<CommandArgs> = {}) {
  let out = '';
  let err = '';
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const args: CommandArgs = {
    positionals,
    config: configFile,
    ref: undefined,
    wait: false,
    json: false,
    env: { PATH: process.env.PATH, LOG_LEVEL: 'silent' },
    stdout,
    stderr,
    ...options,
  };
  return { args, stdout: () => out, stderr: () => err };
}

describe('suspend and resume (real Redis, git, kube-apiserver)', () => {
  // Each test starts from a running environment, whatever the one before left.
  beforeEach(async () => {
    await harness.services.store.suspensions.resume('web');
  });

  it('holds pushes and re-syncs while suspended, leaves drift alone, refuses syncs; resume deploys the head', async () => {
    const first = await repo.commit({ 'manifests/app.yaml': configMap('app', { v: '1' }) });
    const pushed = await harness.waitForJob(await push(first));
    // Deployed by its own job, or by a re-sync (every second here) that took the commit first
    // and covers the push: then once that re-sync has succeeded.
    if (pushed.state === 'superseded') expect(pushed.supersededBy).toBe(first);
    else expect(pushed.state).toBe('succeeded');
    await until(async () => (await harness.services.store.environmentStatus('web')).lastAppliedSha === first);

    const suspended = await post('/environments/web/suspend', JSON.stringify({ reason: 'incident 42' }));
    expect(suspended.status).toBe(200);
    expect(suspended.body.suspended).toMatchObject({ reason: 'incident 42' });
    expect(await suspendedGauge()).toBe('1');
    await nextSkippedResync();

    // A hand-made fix during the incident stays while suspended.
    const core = kubeConfigFromTest().makeApiClient(CoreV1Api);
    await core.patchNamespacedConfigMap(
      { name: 'app', namespace: namespace.name, body: [{ op: 'replace', path: '/data/v', value: 'hotfix' }] },
      { headers: { 'Content-Type': 'application/json-patch+json' } } as never,
    );
    await nextSkippedResync();
    expect(await configMapData()).toEqual({ v: 'hotfix' });

    // A push is taken and its job held, queued, saying why; nothing is applied.
    const second = await repo.commit({ 'manifests/app.yaml': configMap('app', { v: '2' }) });
    const heldId = await push(second);
    const held = await until(async () => {
      const record = await harness.services.store.get(heldId);
      return record?.message?.startsWith('held: web is suspended since') ? record : undefined;
    });
    expect(held.state).toBe('queued');
    expect(held.message).toContain('(incident 42); deploys once resumed');
    // The pushed commit says why it waits.
    const statusOf = (sha: string) =>
      github.requests
        .filter((request) => request.path.endsWith(`/statuses/${sha}`))
        .map((request) => request.body as { state: string; description: string });
    await until(() => Promise.resolve(statusOf(second).length > 0));
    expect(statusOf(second)[0]).toMatchObject({
      state: 'pending',
      description: 'Held: web is suspended (incident 42)',
    });
    expect(await configMapData()).toEqual({ v: 'hotfix' });

    const environment = (await (await fetch(`${server.url}/environments/web`)).json()) as {
      suspended: { at: string; reason: string };
    };
    expect(environment.suspended.reason).toBe('incident 42');
    expect(Date.parse(environment.suspended.at)).toBeGreaterThan(0);
    const sync = await post('/environments/web/sync');
    expect(sync.status).toBe(409);
    expect(sync.body.error).toMatch(
      /^environment "web" is suspended since .* \(incident 42\): resume it first/,
    );

    const resumed = await post('/environments/web/resume');
    expect(resumed.status).toBe(202);
    expect(resumed.body.resumed).toEqual(environment.suspended);
    const [resumeJob] = resumed.body.jobs as { id: string }[];
    const deployed = await harness.waitForJob(resumeJob!.id);
    expect(deployed).toMatchObject({ state: 'succeeded', sha: second });
    expect(await configMapData()).toEqual({ v: '2' });
    // The held job gives way to the deploy of its own commit (or deploys it itself, had it run
    // first); woken by the resume, it does not wait out its recheck, a minute away.
    const heldEnd = await harness.waitForJob(heldId, 20_000);
    expect(['superseded', 'succeeded']).toContain(heldEnd.state);
    expect(await suspendedGauge()).toBe('0');
    const after = (await (await fetch(`${server.url}/environments/web`)).json()) as { suspended: unknown };
    expect(after.suspended).toBeNull();
  });

  it('refuses a suspend request it cannot keep, naming what is wrong', async () => {
    const cases: [string, string | undefined, number, string][] = [
      ['/environments/nope/suspend', undefined, 404, 'environment "nope" not found'],
      ['/environments/nope/suspend', '{not json', 404, 'environment "nope" not found'],
      ['/environments/web/suspend', '{not json', 400, expect.stringContaining('JSON')],
      ['/environments/web/suspend', '{"reason": 42}', 400, 'reason must be a string'],
      ['/environments/web/suspend', '{"why": "x"}', 400, 'unknown field "why": the body takes only "reason"'],
      ['/environments/web/suspend', '["x"]', 400, 'the body must be a JSON object: {"reason": "…"}'],
      [
        '/environments/web/suspend',
        JSON.stringify({ reason: 'x'.repeat(201) }),
        400,
        'reason is longer than 200 characters',
      ],
      [
        '/environments/web/suspend',
        JSON.stringify({ reason: 'a\nb' }),
        400,
        'reason holds control characters (one line of plain text only)',
      ],
      // A C1 control sequence introducer and a bidirectional override: acted on by terminals.
      [
        '/environments/web/suspend',
        JSON.stringify({ reason: 'a\u009b31mred' }),
        400,
        'reason holds control characters (one line of plain text only)',
      ],
      // An invisible one (zero-width space): a reason that shows as nothing, or hides text.
      [
        '/environments/web/suspend',
        JSON.stringify({ reason: '\u200b' }),
        400,
        'reason holds control characters (one line of plain text only)',
      ],
      [
        '/environments/web/suspend',
        JSON.stringify({ reason: 'fix \u202eevil' }),
        400,
        'reason holds control characters (one line of plain text only)',
      ],
    ];
    for (const [path, body, status, error] of cases) {
      const answer = await post(path, body);
      expect({ path, body, status: answer.status, error: answer.body.error }).toEqual({
        path,
        body,
        status,
        error,
      });
    }
    const wrongMethod = await fetch(`${server.url}/environments/web/suspend`);
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.get('allow')).toBe('POST, OPTIONS');
    expect(
      ((await (await fetch(`${server.url}/environments/web`)).json()) as { suspended: unknown }).suspended,
    ).toBeNull();
  });

  it('pushgate suspend, status, sync and resume: held, shown, refused, lifted', async () => {
    const suspend = commandArgs(['web'], { reason: 'freeze for the release' });
    expect(await runSuspend(suspend.args)).toBe(0);
    expect(suspend.stdout()).toMatch(
      /^web suspended since \S+ \(freeze for the release\): deploys held until pushgate resume web\n$/,
    );

    // Suspending again without a reason keeps the one given.
    expect(await runSuspend(commandArgs(['web']).args)).toBe(0);
    expect((await harness.services.store.suspensions.get('web'))?.reason).toBe('freeze for the release');

    const status = commandArgs([]);
    expect(await runStatus(status.args)).toBe(0);
    expect(status.stdout()).toMatch(/^web\s+env\/test\s+\S+\s+\S+\s+.*since \S+\n/m);
    expect(status.stdout()).toContain('web is suspended since ');

    const sync = commandArgs(['web']);
    expect(await runCommand('sync', runSync, sync.args)).toBe(1);
    expect(sync.stderr()).toMatch(
      /^pushgate sync: web is suspended since .* \(freeze for the release\): its deploys are held/,
    );
    expect(sync.stdout()).toBe('');

    // A push meanwhile is held.
    const pushed = await repo.commit({ 'manifests/app.yaml': configMap('app', { v: 'frozen' }) });
    const heldId = await push(pushed);
    await until(async () =>
      (await harness.services.store.get(heldId))?.message?.startsWith('held: web is suspended')
        ? true
        : undefined,
    );

    const resume = commandArgs(['web'], { wait: true });
    expect(await runResume(resume.args)).toBe(0);
    expect(resume.stderr()).toMatch(
      /^pushgate resume: web resumed \(it was suspended since .*\(freeze for the release\)\)/,
    );
    const [jobId, ...states] = resume.stdout().trim().split('\n');
    const record = (await harness.services.store.get(jobId!)) as JobRecord;
    expect(record.trigger.kind).toBe('manual');
    expect(states.at(-1)).toMatch(/^(succeeded|superseded)/);
    expect(await harness.services.store.suspensions.get('web')).toBeNull();
    // Woken by the resume, not left to its recheck a minute away.
    expect((await harness.waitForJob(heldId, 20_000)).state).toMatch(/^(succeeded|superseded)$/);
    expect(await configMapData()).toEqual({ v: 'frozen' });
  });
});

describe('a deploy that had started when the environment was suspended', () => {
  const started = [
    // What a worker killed mid-deploy leaves.
    ['left half done by a dead worker', { state: 'running', attempts: 1 }],
    // What a transient failure leaves, the job waiting out its backoff.
    ['retrying after a transient failure', { state: 'queued', attempts: 1, error: 'API server: 503' }],
  ] as const;
  for (const [what, patch] of started) {
    it(`is finished, not held: ${what}`, async () => {
      const own = await createTestNamespace('suspend-started');
      const ownRepo = await createEnvRepo({ branch: 'env/test' });
      const other = await createWorkerHarness({
        redisUrl: redis.url,
        environments: [{ name: 'api', repo: ownRepo, env: { namespace: own.name, healthTimeout: '0' } }],
      });
      try {
        const sha = await ownRepo.commit({ 'manifests/app.yaml': configMap('app', { v: '1' }) });
        const id = await other.webhook('api', sha);
        await other.services.store.update(id, { ...patch, startedAt: new Date().toISOString() });
        await other.services.store.suspensions.suspend('api', 'incident');
        await other.startWorker();
        const record = await other.waitForJob(id);
        expect(record).toMatchObject({ state: 'succeeded', sha });
      } finally {
        await other.close();
        await own.cleanup();
      }
    });
  }
});

describe('a resume wakes the held jobs', () => {
  it("a held push of the branch head is deployed once, by the resume's deploy", async () => {
    const own = await createTestNamespace('suspend-covered');
    const ownRepo = await createEnvRepo({ branch: 'env/test' });
    const other = await createWorkerHarness({
      redisUrl: redis.url,
      environments: [{ name: 'api', repo: ownRepo, env: { namespace: own.name, healthTimeout: '0' } }],
    });
    const ownConfig = join(dir, 'covered.yaml');
    writeFileSync(ownConfig, other.configText);
    try {
      await other.services.store.suspensions.suspend('api', 'freeze');
      const sha = await ownRepo.commit({ 'manifests/app.yaml': configMap('app', { v: 'held' }) });
      const heldId = await other.webhook('api', sha);
      // One job at a time: the resume's deploy, queued ahead of the jobs it wakes, runs first.
      await other.startWorker({ concurrency: 1 });
      await until(async () =>
        (await other.services.store.get(heldId))?.message?.startsWith('held: api is suspended')
          ? true
          : undefined,
      );

      const resume = commandArgs(['api'], { config: ownConfig, wait: true });
      expect(await runResume(resume.args)).toBe(0);
      const resumeId = resume.stdout().split('\n')[0]!;

      expect(await other.waitForJob(resumeId)).toMatchObject({ state: 'succeeded', sha });
      // Not applied (nor health-waited) a second time after it: that deploy was its own.
      expect(await other.waitForJob(heldId, 20_000)).toMatchObject({
        state: 'superseded',
        attempts: 0,
        supersededBy: sha,
        message: `superseded by job ${resumeId}, which deploys this commit (${sha.slice(0, 7)})`,
      });
    } finally {
      await other.close();
      await own.cleanup();
    }
  });

  it('and only them: a retry waiting out its backoff keeps its delay', async () => {
    const ownRepo = await createEnvRepo({ branch: 'env/test' });
    // No worker: the jobs stay where the test puts them.
    const own = await createWorkerHarness({
      redisUrl: redis.url,
      environments: [{ name: 'api', repo: ownRepo, env: { namespace: 'wake-test', healthTimeout: '0' } }],
    });
    try {
      const { queue, store, producer } = own.services;
      const delayed = async (sha: string, attempts: number): Promise<string> => {
        const id = await own.webhook('api', sha);
        const job = await queue.getJob(id);
        await job!.remove();
        await queue.add(DEPLOY_JOB_NAME, job!.data, { ...DEPLOY_JOB_OPTIONS, jobId: id, delay: 600_000 });
        if (attempts > 0) await store.update(id, { attempts, error: 'API server: 503' });
        return id;
      };
      const held = await delayed('a'.repeat(40), 0);
      const retrying = await delayed('b'.repeat(40), 1);

      expect(await producer.wakeHeld('api')).toBe(1);
      expect(await queue.getJobState(held)).toBe('waiting');
      expect(await queue.getJobState(retrying)).toBe('delayed');
    } finally {
      await own.close();
    }
  });
});
