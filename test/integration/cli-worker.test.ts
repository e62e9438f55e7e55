import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { AppsV1Api, CoreV1Api } from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { findFreePort } from '../../src/lib/free-port.js';
import { createEnvRepo, type EnvRepo } from '../helpers/env-repo.js';
import { startFakeGithub } from '../helpers/fake-github.js';
import {
  createTestNamespace,
  kubeConfigFromTest,
  markDeploymentReady,
  type TestNamespace,
} from '../helpers/kube.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { createWorkerHarness, type WorkerHarness } from './worker-harness.js';
import { configMap, deployment } from './worker-manifests.js';

const cli = fileURLToPath(new URL('../../dist/src/cli.js', import.meta.url));

interface WorkerProcess {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

/** A real `pushgate worker` process, with a short job lock so a killed one is replaced quickly. */
async function spawnWorker(
  configFile: string,
  cacheDir: string,
  env: Record<string, string> = {},
  nodeFlags: string[] = [],
): Promise<WorkerProcess> {
  const child = spawn(process.execPath, [...nodeFlags, cli, 'worker', '--config', configFile], {
    env: {
      ...process.env,
      PUSHGATE_JOB_LOCK_MS: '3000',
      PUSHGATE_CACHE_DIR: cacheDir,
      // Checkouts beside the cache: the workers these tests SIGKILL leave theirs, removed with `dir`.
      TMPDIR: cacheDir,
      LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  const deadline = Date.now() + 20_000;
  while (!output.includes('deploy worker ready')) {
    if (child.exitCode !== null) throw new Error(`pushgate worker exited early:\n${output}`);
    if (Date.now() > deadline) throw new Error(`pushgate worker not ready in time:\n${output}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { child, output: () => output, exited };
}

async function until(condition: () => boolean, failure: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(failure);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('pushgate worker processes (real Redis, git, kube-apiserver)', () => {
  let redis: TestRedis;
  let repo: EnvRepo;
  let namespace: TestNamespace;
  let harness: WorkerHarness;
  let dir: string;
  let configFile: string;
  const workers: WorkerProcess[] = [];

  beforeAll(async () => {
    if (!existsSync(cli)) throw new Error(`${cli} is missing: run npm run build first (npm test does)`);
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis.stop();
  });

  beforeEach(async (context) => {
    repo = await createEnvRepo({ branch: 'env/test' });
    namespace = await createTestNamespace(`cli-${context.task.name.slice(0, 20)}`);
    harness = await createWorkerHarness({
      redisUrl: redis.url,
      environments: [{ name: 'web', repo, env: { namespace: namespace.name, healthTimeout: '60s' } }],
    });
    dir = await mkdtemp(path.join(tmpdir(), 'pushgate-cli-worker-'));
    configFile = path.join(dir, 'pushgate.yaml');
    await writeFile(configFile, harness.configText);
  });

  afterEach(async () => {
    for (const worker of workers.splice(0)) {
      if (worker.child.exitCode === null && worker.child.signalCode === null) {
        worker.child.kill('SIGTERM');
        await worker.exited;
      }
    }
    await harness.close();
    await namespace.cleanup();
    await repo.remove();
    await rm(dir, { recursive: true, force: true });
  });

  it('two worker processes never apply one environment at once', async () => {
    workers.push(await spawnWorker(configFile, path.join(dir, 'cache-a')));
    workers.push(await spawnWorker(configFile, path.join(dir, 'cache-b')));
    const files = Object.fromEntries(
      Array.from({ length: 20 }, (_, i) => [`manifests/cm-${i}.yaml`, configMap(`cm-${i}`, { v: '1' })]),
    );
    await repo.commit(files);

    // Eight deploys of their own: eight syncs at once would be one job.
    const ids = await Promise.all(Array.from({ length: 8 }, () => harness.manualOwn('web')));
    const records = await Promise.all(ids.map((id) => harness.waitForJob(id, 90_000)));

    expect(records.map((r) => r.state)).toEqual(Array(8).fill('succeeded'));
    const windows = records
      .map((r) => [Date.parse(r.startedAt!), Date.parse(r.finishedAt!)] as const)
      .sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < windows.length; i += 1) {
      expect(windows[i]![0], `job ${i} started before job ${i - 1} finished`).toBeGreaterThanOrEqual(
        windows[i - 1]![1],
      );
    }
  });

  it('a worker killed with SIGKILL mid-apply loses nothing: another worker completes the job', async () => {
    const apps = kubeConfigFromTest().makeApiClient(AppsV1Api);
    const first = await spawnWorker(configFile, path.join(dir, 'cache-a'));
    workers.push(first);
    const sha = await repo.commit({
      'manifests/web.yaml': deployment('web'),
      'manifests/cm.yaml': configMap('settings', { v: '1' }),
    });
    const id = await harness.webhook('web', sha);

    // The apply is written, and recorded as it landed, and the worker now waits for the
    // Deployment to be ready: kill it there. (The object alone in the cluster is not enough:
    // under load a kill can land between the write and its record.)
    const deadline = Date.now() + 30_000;
    while (
      !(await harness.services.store.get(id))?.resources.some(
        (resource) => resource.kind === 'Deployment' && resource.action === 'created',
      )
    ) {
      if (Date.now() > deadline) throw new Error(`the Deployment was never applied:\n${first.output()}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(await apps.readNamespacedDeployment({ name: 'web', namespace: namespace.name })).toBeTruthy();
    expect((await harness.services.store.get(id))?.state).toBe('running');
    first.child.kill('SIGKILL');
    await first.exited;

    workers.push(await spawnWorker(configFile, path.join(dir, 'cache-b')));
    await markDeploymentReady(namespace.name, 'web');
    const record = await harness.waitForJob(id, 60_000);

    // The run the killed worker started counts: BullMQ itself does not count a stalled run.
    expect(record).toMatchObject({ state: 'succeeded', sha, attempts: 2 });
    // What the killed worker wrote, not what the second found already there.
    expect(record.resources.map((r) => [r.kind, r.name, r.action])).toEqual(
      expect.arrayContaining([
        ['ConfigMap', 'settings', 'created'],
        ['Deployment', 'web', 'created'],
      ]),
    );
  });

  it('a worker killed mid-group: the one taking over lists what the killed one created as created', async () => {
    const core = kubeConfigFromTest().makeApiClient(CoreV1Api);
    const first = await spawnWorker(configFile, path.join(dir, 'cache-a'));
    workers.push(first);
    const names = Array.from({ length: 150 }, (_, index) => `cm-${index}`);
    const sha = await repo.commit({
      'manifests/settings.yaml': names.map((name) => configMap(name, { v: '1' })).join('---\n'),
      'manifests/web.yaml': deployment('web'),
    });
    const id = await harness.webhook('web', sha);

    // Killed while its ConfigMaps land: progress reaches the record at most once a second,
    // so some of those it wrote are not on record yet.
    const deadline = Date.now() + 30_000;
    const landed = async () =>
      (await core.listNamespacedConfigMap({ namespace: namespace.name })).items.filter((item) =>
        item.metadata?.name?.startsWith('cm-'),
      ).length;
    while ((await landed()) < 40) {
      if (Date.now() > deadline) throw new Error(`the ConfigMaps never landed:\n${first.output()}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    first.child.kill('SIGKILL');
    await first.exited;

    const second = await spawnWorker(configFile, path.join(dir, 'cache-b'));
    workers.push(second);
    // The Deployment comes after the ConfigMaps: made by whichever worker got that far.
    const apps = kubeConfigFromTest().makeApiClient(AppsV1Api);
    while (!(await apps.listNamespacedDeployment({ namespace: namespace.name })).items.length) {
      if (Date.now() > deadline + 30_000)
        throw new Error(`the Deployment was never applied:\n${second.output()}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await markDeploymentReady(namespace.name, 'web');
    const record = await harness.waitForJob(id, 60_000);

    expect(record).toMatchObject({ state: 'succeeded', sha, attempts: 2 });
    const configMaps = record.resources.filter((resource) => resource.kind === 'ConfigMap');
    expect(configMaps.filter((resource) => resource.action !== 'created')).toEqual([]);
    expect(configMaps).toHaveLength(names.length);
    // Bookkeeping of the run, not part of what anyone is shown.
    expect(record).not.toHaveProperty('creating');
  });

  it('a worker killed mid-group: the one taking over lists what the killed one changed as configured', async () => {
    const core = kubeConfigFromTest().makeApiClient(CoreV1Api);
    const first = await spawnWorker(configFile, path.join(dir, 'cache-a'));
    workers.push(first);
    const names = Array.from({ length: 150 }, (_, index) => `cm-${index}`);
    const commit = (value: string) =>
      repo.commit({
        'manifests/settings.yaml': names.map((name) => configMap(name, { v: value })).join('---\n'),
      });
    const before = await commit('1');
    expect(await harness.waitForJob(await harness.webhook('web', before), 60_000)).toMatchObject({
      state: 'succeeded',
    });
    const sha = await commit('2');
    const id = await harness.webhook('web', sha);

    // Killed while the changes land: progress reaches the record at most once a second, so
    // some of the objects it changed are not on record yet.
    const deadline = Date.now() + 30_000;
    const changed = async () =>
      (await core.listNamespacedConfigMap({ namespace: namespace.name })).items.filter(
        (item) => item.metadata?.name?.startsWith('cm-') && item.data?.v === '2',
      ).length;
    while ((await changed()) < 40) {
      if (Date.now() > deadline) throw new Error(`the changes never landed:\n${first.output()}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    first.child.kill('SIGKILL');
    await first.exited;
    // What it was about to change is on record.
    expect((await harness.services.store.get(id))?.configuring).toHaveLength(names.length);

    workers.push(await spawnWorker(configFile, path.join(dir, 'cache-b')));
    const record = await harness.waitForJob(id, 60_000);

    expect(record).toMatchObject({ state: 'succeeded', sha, attempts: 2 });
    const configMaps = record.resources.filter((resource) => resource.kind === 'ConfigMap');
    expect(configMaps.filter((resource) => resource.action !== 'configured')).toEqual([]);
    expect(configMaps).toHaveLength(names.length);
    expect(record).not.toHaveProperty('configuring');
  });

  it('a periodic re-sync whose workers keep dying fails after the stall limit too (BullMQ never fails those)', async () => {
    await repo.commit({ 'manifests/web.yaml': deployment('web') });
    // A run of a job scheduler, as each periodic re-sync is (the worker's own scheduler is off here).
    await harness.services.queue.upsertJobScheduler(
      'stall-test:web',
      { every: 3_600_000 },
      {
        name: 'deploy',
        data: { environment: 'web', trigger: { kind: 'reconcile' }, receivedAt: new Date().toISOString() },
        opts: { attempts: 3 },
      },
    );
    const [run] = await harness.services.queue.getJobs(['waiting', 'delayed', 'prioritized']);
    expect(run?.repeatJobKey).toBe('stall-test:web');
    await run!.promote().catch(() => undefined);
    const id = run!.id!;

    for (let n = 1; n <= 3; n += 1) {
      const worker = await spawnWorker(configFile, path.join(dir, `cache-${n}`));
      workers.push(worker);
      // A re-sync holds its step lines until it ends: its record tells that this attempt deploys.
      const deadline = Date.now() + 30_000;
      for (;;) {
        const record = await harness.services.store.get(id);
        if (record?.attempts === n && record.sha !== null) break;
        if (Date.now() > deadline)
          throw new Error(
            `worker ${n} never started the re-sync: ${JSON.stringify(record)}\n${worker.output()}`,
          );
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      worker.child.kill('SIGKILL');
      await worker.exited;
    }
    const last = await spawnWorker(configFile, path.join(dir, 'cache-4'));
    workers.push(last);
    const record = await harness.waitForJob(id, 30_000);

    expect(record).toMatchObject({ state: 'failed', trigger: { kind: 'reconcile' } });
    expect(record.error).toMatch(/stalled more than allowable limit: the worker running it stopped 3 times/);
    expect(await (await harness.services.queue.getJob(id))?.getState()).toBe('failed');
    expect(last.output()).toContain('job stalled: its worker stopped renewing it');
  }, 120_000);

  it('a job whose workers keep dying fails after the stall limit: record, environment and commit', async () => {
    const github = await startFakeGithub();
    await harness.close();
    harness = await createWorkerHarness({
      redisUrl: redis.url,
      environments: [{ name: 'web', repo, env: { namespace: namespace.name, healthTimeout: '60s' } }],
      providers: { github: github.url },
    });
    await writeFile(configFile, harness.configText);
    const tokens = { GITHUB_TOKEN: 'ghs_test' };
    const sha = await repo.commit({ 'manifests/web.yaml': deployment('web') });
    const id = await harness.webhook('web', sha);
    const states = () => github.requests.map((r) => (r.body as { state: string }).state);

    try {
      // Three workers in turn take the job and die in its health wait: one stall more than
      // maxStalledCount (2), so BullMQ fails it in the next worker without running it.
      for (let n = 1; n <= 3; n += 1) {
        const worker = await spawnWorker(configFile, path.join(dir, `cache-${n}`), tokens);
        workers.push(worker);
        // The commit shows pending from the first worker on: the others do not post it again.
        await until(
          () => worker.output().includes('manifests loaded') && states().length >= 1,
          `worker ${n} never started the job (or reported it pending):\n${worker.output()}`,
        );
        worker.child.kill('SIGKILL');
        await worker.exited;
      }
      const last = await spawnWorker(configFile, path.join(dir, 'cache-4'), tokens);
      workers.push(last);
      const record = await harness.waitForJob(id, 30_000);

      expect(await (await harness.services.queue.getJob(id))?.getState()).toBe('failed');
      expect(record).toMatchObject({ state: 'failed', sha });
      expect(record.error).toMatch(/stalled more than allowable limit/);
      expect(record.finishedAt).not.toBeNull();
      expect((await harness.services.store.environmentStatus('web')).lastJobId).toBe(id);
      await until(() => states().at(-1) === 'failure', `no failure status:\n${last.output()}`);
      expect(states()).toEqual(['pending', 'failure']);
      expect(github.requests.every((r) => r.path === `/repos/acme/web-config/statuses/${sha}`)).toBe(true);
      last.child.kill('SIGKILL');
      await last.exited;
      // A late duplicate of its push gets the failed job (nothing was deployed or queued since:
      // SPEC §3); a sync tries the commit again.
      expect(await harness.webhook('web', sha)).toBe(id);
      expect(await harness.manual('web')).not.toBe(id);
    } finally {
      await github.close();
    }
  }, 120_000);

  it('stops on SIGTERM after finishing its current job', async () => {
    const worker = await spawnWorker(configFile, path.join(dir, 'cache-a'));
    workers.push(worker);
    await repo.commit({ 'manifests/cm.yaml': configMap('settings', { v: '1' }) });
    const id = await harness.manual('web');
    await harness.waitForJob(id);

    worker.child.kill('SIGTERM');

    expect(await worker.exited).toBe(0);
    expect(worker.output()).toContain('worker stopped');
  });

  it("deploys without Maglev, V8's mid-tier JIT, when node was started without --no-maglev", async () => {
    // --trace-opt names the tier each function is optimised for. Node.js 22 and later turn
    // Maglev on by default, and a worker's deploys then compile dozens of functions with it.
    const worker = await spawnWorker(configFile, path.join(dir, 'cache-a'), {}, ['--trace-opt']);
    workers.push(worker);
    const files = Object.fromEntries(
      Array.from({ length: 100 }, (_, i) => [
        `manifests/cm-${i}.yaml`,
        configMap(`settings-${i}`, { v: `${i}` }),
      ]),
    );
    await repo.commit(files);
    const id = await harness.manual('web');
    expect((await harness.waitForJob(id)).state).toBe('succeeded');

    // What node's module loader made hot before pushgate's code ran is compiled already.
    const sinceReady = worker.output().slice(worker.output().indexOf('deploy worker ready'));
    const tiers = [...sinceReady.matchAll(/\[compiling method .*\(target (\w+)\)/g)].map((match) => match[1]);
    // TURBOFAN (Node.js 20), TURBOFAN_JS (24): the trace did see code run hot.
    expect(tiers.filter((tier) => tier?.startsWith('TURBOFAN')).length).toBeGreaterThan(0);
    expect(tiers.filter((tier) => tier === 'MAGLEV')).toEqual([]);
  });

  it('waiting for a Redis that does not answer, says so, answers its liveness probe and exports its alert series at 0', async () => {
    const [deadPort, metricsPort] = [await findFreePort(), await findFreePort()];
    await writeFile(configFile, harness.configText.replaceAll(redis.url, `redis://127.0.0.1:${deadPort}`));
    const child = spawn(process.execPath, [cli, 'worker', '--config', configFile], {
      env: { ...process.env, LOG_LEVEL: 'info', WORKER_METRICS_PORT: String(metricsPort) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
    workers.push({ child, output: () => output, exited });

    await until(() => output.includes('Redis does not answer yet'), `no warning in time:\n${output}`, 20_000);
    const warning = output.split('\n').find((line) => line.includes('Redis does not answer yet'))!;
    expect(JSON.parse(warning)).toMatchObject({
      level: 'warn',
      err: expect.stringContaining(`127.0.0.1:${deadPort}`) as unknown,
    });
    const health = await fetch(`http://127.0.0.1:${metricsPort}/healthz`);
    expect(health.status).toBe(200);
    // Alert series start at 0, so `increase()` sees the first failed deploy.
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(metrics).toContain('pushgate_jobs_finished_total{environment="web",state="failed"} 0');
  });

  it('while Redis is away, writes JSON log lines, not one per retry, and says when Redis answers again', async () => {
    const own = await startRedis();
    try {
      await writeFile(configFile, harness.configText.replaceAll(redis.url, own.url));
      const worker = await spawnWorker(configFile, path.join(dir, 'cache-a'));
      workers.push(worker);
      await own.kill();

      const lines = () =>
        worker
          .output()
          .split('\n')
          .filter((line) => line.trim() !== '');
      const errorLines = () => lines().filter((line) => line.includes('ECONNREFUSED'));
      await until(() => errorLines().length >= 1, `no connection error logged:\n${worker.output()}`);
      await own.restart();
      const back = () => lines().find((line) => line.includes('Redis answers again'));
      await until(() => back() !== undefined, `no line saying Redis is back:\n${worker.output()}`);

      expect(lines().filter((line) => !isJson(line))).toEqual([]);
      // Two connections retried (every 200 ms at first) until the restart: one line of it.
      const errors = (JSON.parse(back()!) as { errors: number }).errors;
      expect(errors).toBeGreaterThanOrEqual(2);
      expect(errorLines()).toHaveLength(1);
    } finally {
      await own.stop();
    }
  });

  it('stops on SIGTERM within seconds while Redis does not answer and no deploy runs, not after its deadline', async () => {
    const own = await startRedis();
    try {
      await writeFile(configFile, harness.configText.replaceAll(redis.url, own.url));
      // The shipped deadline (60 s): nothing runs, so there is nothing to wait for.
      const worker = await spawnWorker(configFile, path.join(dir, 'cache-a'));
      workers.push(worker);
      await own.kill();

      const started = Date.now();
      worker.child.kill('SIGTERM');
      const code = await worker.exited;

      expect(code).toBe(0);
      // Each bounded shutdown step at most (3 s each; several finish at once).
      expect(Date.now() - started).toBeLessThan(16_000);
      expect(worker.output()).toContain('Redis does not answer and no deploy is running');
      expect(worker.output()).not.toContain('shutdown deadline passed');
    } finally {
      await own.stop();
    }
  });
});

function isJson(line: string): boolean {
  try {
    JSON.parse(line);
    return true;
  } catch {
    return false;
  }
}
