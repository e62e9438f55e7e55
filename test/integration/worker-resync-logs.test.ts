import { AppsV1Api, CoreV1Api } from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createLogger, type Logger } from '../../src/lib/logger.js';
import type { JobRecord } from '../../src/status/job-record.js';
import { createEnvRepo, type EnvRepo } from '../helpers/env-repo.js';
import {
  createTestNamespace,
  kubeConfigFromTest,
  markDeploymentReady,
  type TestNamespace,
} from '../helpers/kube.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { until } from '../helpers/until.js';
import { createWorkerHarness, type WorkerHarness } from './worker-harness.js';
import { configMap, deployment } from './worker-manifests.js';

type LogLine = Record<string, unknown> & { level: string; msg: string; time: string };

/** A deploy's step lines, as a push's deploy logs them (the health wait's of one ready Deployment). */
const DEPLOY_STEPS = [
  'deploy started',
  'fetched branch head',
  'manifests loaded',
  'dry-run ok: 3 objects',
  'applied: 3 objects',
  'waiting up to 30s for 1 workload to be ready',
  'all workloads ready',
  'deploy succeeded',
];

let redis: TestRedis;

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis.stop();
});

describe('the log of a re-sync (real Redis, git, kube-apiserver)', () => {
  let repo: EnvRepo;
  let namespace: TestNamespace;
  let harness: WorkerHarness;
  let lines: LogLine[];
  let logger: Logger;

  beforeEach(async () => {
    repo = await createEnvRepo({ branch: 'env/test' });
    namespace = await createTestNamespace('w-resync-logs');
    harness = await createWorkerHarness({
      redisUrl: redis.url,
      environments: [
        {
          name: 'web',
          repo,
          env: { namespace: namespace.name, reconcileInterval: '1s', healthTimeout: '30s' },
        },
      ],
    });
    lines = [];
    logger = createLogger({
      level: 'debug',
      destination: { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) },
    });
  });

  afterEach(async () => {
    await harness.close();
    await namespace.cleanup();
    await repo.remove();
  });

  /** Commits two ConfigMaps and a Deployment; the worker's first re-sync creates them (made ready here). */
  async function deployedByFirstResync(): Promise<string> {
    const sha = await repo.commit({
      'manifests/a.yaml': configMap('alpha', { v: '1' }),
      'manifests/b.yaml': configMap('beta', { v: '1' }),
      'manifests/web.yaml': deployment('web'),
    });
    await harness.startWorker({ logger });
    const apps = kubeConfigFromTest().makeApiClient(AppsV1Api);
    await until(() =>
      apps.readNamespacedDeployment({ name: 'web', namespace: namespace.name }).then(
        () => true,
        () => false,
      ),
    );
    await markDeploymentReady(namespace.name, 'web');
    return sha;
  }

  /** The first finished re-sync for which `matches` holds, once its last line is logged. */
  async function resync(matches: (record: JobRecord) => boolean): Promise<JobRecord> {
    const record = await until(async () => {
      const records = await harness.services.store.list({ environment: 'web', limit: 100 });
      return records.reverse().find((r) => r.trigger.kind === 'reconcile' && r.finishedAt && matches(r));
    }, 30_000);
    // The record is final just before the line that ends the run is logged.
    await until(() =>
      Promise.resolve(linesOf(record).some((line) => line.level !== 'debug' && isLast(line))),
    );
    return record;
  }

  function linesOf(record: JobRecord): LogLine[] {
    return lines.filter((line) => line.jobId === record.id);
  }

  function isLast(line: LogLine): boolean {
    return ['deploy succeeded', 're-sync: nothing changed', 'deploy failed'].includes(line.msg);
  }

  it('one that changes nothing logs one info line, its steps at debug', async () => {
    const sha = await deployedByFirstResync();

    const record = await resync(
      (r) => r.state === 'succeeded' && r.resources.every((x) => x.action === 'unchanged'),
    );

    const logged = linesOf(record);
    const info = logged.filter((line) => line.level !== 'debug');
    expect(info).toEqual([
      expect.objectContaining({
        level: 'info',
        msg: 're-sync: nothing changed',
        jobId: record.id,
        environment: 'web',
        sha,
        objects: 3,
      }),
    ]);
    expect(info[0]?.durationMs).toBeGreaterThan(0);
    // The steps are still there for LOG_LEVEL=debug, each with the time it was logged at.
    const steps = logged.filter((line) => line.level === 'debug' && DEPLOY_STEPS.includes(line.msg));
    expect(steps.map((line) => line.msg)).toEqual(DEPLOY_STEPS.slice(0, -1));
    for (const step of steps) expect(step).toMatchObject({ jobId: record.id, environment: 'web' });
    const times = [...steps, ...info].map((line) => Date.parse(line.time));
    expect(times).toEqual([...times].sort((a, b) => a - b));
    expect(times[0]).toBeLessThan(times.at(-1)!);
  });

  it('one that corrects drift logs every step at info, as a push does', async () => {
    await deployedByFirstResync();
    await resync((r) => r.state === 'succeeded' && r.resources.every((x) => x.action === 'unchanged'));
    const core = kubeConfigFromTest().makeApiClient(CoreV1Api);
    const live = await core.readNamespacedConfigMap({ name: 'alpha', namespace: namespace.name });
    await core.replaceNamespacedConfigMap({
      name: 'alpha',
      namespace: namespace.name,
      body: { ...live, data: { v: 'edited by hand' } },
    });

    const record = await resync((r) => r.resources.some((x) => x.action === 'configured'));

    const info = linesOf(record).filter((line) => line.level !== 'debug');
    expect(info.map((line) => line.msg)).toEqual(DEPLOY_STEPS);
    for (const line of info)
      expect(line).toMatchObject({ level: 'info', jobId: record.id, environment: 'web' });
    const times = info.map((line) => Date.parse(line.time));
    expect(times).toEqual([...times].sort((a, b) => a - b));
    // The first re-sync, which created the objects, too (and said what its health wait was on).
    const first = await resync((r) => r.resources.some((x) => x.action === 'created'));
    const created = linesOf(first).filter((line) => line.level !== 'debug');
    expect(created.every((line) => line.level === 'info')).toBe(true);
    expect(created.map((line) => line.msg).filter((msg) => DEPLOY_STEPS.includes(msg))).toEqual(DEPLOY_STEPS);
  });

  it('one that fails logs its steps at info before the error', async () => {
    await deployedByFirstResync();
    await resync((r) => r.state === 'succeeded' && r.resources.every((x) => x.action === 'unchanged'));
    await repo.commit({ 'manifests/bad.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata: [unclosed\n' });

    const record = await resync((r) => r.state === 'failed');

    const shown = linesOf(record).filter((line) => line.level !== 'debug');
    expect(shown.map((line) => [line.level, line.msg])).toEqual([
      ['info', 'deploy started'],
      ['info', 'fetched branch head'],
      ['error', 'deploy failed'],
    ]);
    for (const line of shown) expect(line).toMatchObject({ jobId: record.id, environment: 'web' });
  });
});
