import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createKeys } from '../../src/queue/keys.js';
import type { JobRecord } from '../../src/status/job-record.js';
import { createEnvRepo, type EnvRepo } from '../helpers/env-repo.js';
import { createTestNamespace, type TestNamespace } from '../helpers/kube.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { createWorkerHarness, type EnvironmentOptions, type WorkerHarness } from './worker-harness.js';
import { configMap } from './worker-manifests.js';
import { until } from '../helpers/until.js';

let redis: TestRedis;

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis.stop();
});

/** One environment `web` of its own repository and namespace for each test of the block. */
function withHarness(namespacePrefix: string, env: Omit<EnvironmentOptions, 'namespace'>) {
  const fixture = {} as { repo: EnvRepo; namespace: TestNamespace; harness: WorkerHarness };
  beforeEach(async () => {
    fixture.repo = await createEnvRepo({ branch: 'env/test' });
    fixture.namespace = await createTestNamespace(namespacePrefix);
    fixture.harness = await createWorkerHarness({
      redisUrl: redis.url,
      environments: [{ name: 'web', repo: fixture.repo, env: { namespace: fixture.namespace.name, ...env } }],
    });
  });
  afterEach(async () => {
    await fixture.harness.close();
    await fixture.namespace.cleanup();
    await fixture.repo.remove();
  });
  return fixture;
}

describe('job record fields of reconcile jobs (real Redis, git, kube-apiserver)', () => {
  const fixture = withHarness('w-job-fields', { reconcileInterval: '3s' });

  it('a reconcile job is received when it falls due, not when the previous run scheduled it', async () => {
    await fixture.repo.commit({ 'manifests/a.yaml': configMap('alpha', { v: '1' }) });
    await fixture.harness.startWorker();

    const deadline = Date.now() + 20_000;
    let finished: JobRecord[] = [];
    while (finished.length < 2) {
      if (Date.now() > deadline) throw new Error('fewer than two reconcile runs finished in time');
      await new Promise((resolve) => setTimeout(resolve, 100));
      const records = await fixture.harness.services.store.list({ environment: 'web', limit: 10 });
      finished = records.filter((record) => record.state === 'succeeded');
    }

    for (const record of finished) {
      const waited = Date.parse(record.startedAt!) - Date.parse(record.receivedAt);
      // Nothing else runs: each run starts as soon as it is due.
      expect(waited, `${record.id} received ${record.receivedAt}, started ${record.startedAt}`).toBeLessThan(
        1_500,
      );
    }
  });
});

describe('the end of a job (real Redis, git, kube-apiserver)', () => {
  const fixture = withHarness('w-job-end', {});

  it("a job turns final in the same transaction that makes it the environment's last job and commit", async () => {
    // Whoever sees a job final (`sync --wait`, the status URL) and then asks for the
    // environment must find that job's commit there, not the one before it.
    const connection = new Redis(redis.url);
    const monitor = await connection.monitor();
    const commands: { client: string; args: string[] }[] = [];
    monitor.on('monitor', (_time: string, args: string[], client: string) => commands.push({ client, args }));
    const named = (command: { args: string[] }, name: string) => command.args[0]?.toUpperCase() === name;
    try {
      await fixture.harness.startWorker();
      const sha = await fixture.repo.commit({ 'manifests/a.yaml': configMap('alpha', { v: '1' }) });
      const id = await fixture.harness.webhook('web', sha);
      expect(await fixture.harness.waitForJob(id)).toMatchObject({ state: 'succeeded', sha });

      const keys = createKeys(fixture.harness.config.redis.prefix);
      // MONITOR's lines come on a connection of their own, maybe after the job was seen final.
      const finalWrite = (command: { args: string[] }) =>
        named(command, 'SET') && command.args[1] === keys.job(id) && command.args[2]?.includes('"succeeded"');
      const { final } = await until(() => {
        const index = commands.findIndex(finalWrite);
        return Promise.resolve(index > -1 && { final: index });
      }, 5_000);
      const { client } = commands[final]!;
      const ofClient = (from: number) => commands.slice(from).filter((command) => command.client === client);
      const opened = commands
        .slice(0, final)
        .filter((command) => command.client === client)
        .findLast((command) => named(command, 'MULTI') || named(command, 'EXEC'));
      expect(opened && named(opened, 'MULTI')).toBe(true);
      const rest = await until(() => {
        const after = ofClient(final + 1);
        return Promise.resolve(after.some((command) => named(command, 'EXEC')) && after);
      }, 5_000);
      const environmentWrite = rest
        .slice(
          0,
          rest.findIndex((command) => named(command, 'EXEC')),
        )
        // A script that writes it only while the deploy's lock is still the worker's.
        .find((command) => named(command, 'EVAL') && command.args[3] === keys.environment('web'));
      expect(environmentWrite?.args).toEqual(
        expect.arrayContaining([keys.environmentLock('web'), 'lastJobId', id, 'lastAppliedSha', sha]),
      );
    } finally {
      monitor.disconnect();
      connection.disconnect();
    }
  });
});
