import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { REFUSED_ATTEMPTS } from '../../src/deploy/failure.js';
import type { JobRecord } from '../../src/status/job-record.js';
import { createEnvRepo, type EnvRepo } from '../helpers/env-repo.js';
import {
  createTestNamespace,
  kubeconfigPathFromTest,
  namespacedKubeconfig,
  type TestNamespace,
} from '../helpers/kube.js';
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

/**
 * A worker whose credentials the API server refuses: a wrong token, or a ServiceAccount the
 * RoleBinding was forgotten for. Retrying for minutes cannot fix either; the push's commit
 * and `sync --wait` should hear of it within seconds.
 */
describe('deploy with refused credentials (real Redis, git, kube-apiserver)', () => {
  let repo: EnvRepo;
  let namespace: TestNamespace;
  let dir: string;
  let harness: WorkerHarness | undefined;

  beforeEach(async () => {
    repo = await createEnvRepo({ branch: 'env/test' });
    namespace = await createTestNamespace('w-refused');
    dir = await mkdtemp(path.join(tmpdir(), 'pushgate-refused-'));
  });
  afterEach(async () => {
    await harness?.close();
    harness = undefined;
    await namespace.cleanup();
    await repo.remove();
    await rm(dir, { recursive: true, force: true });
  });

  /** The job of one push, as a worker with this kubeconfig deploys it. */
  const pushWith = async (kubeconfig: string): Promise<JobRecord> => {
    harness = await createWorkerHarness({
      redisUrl: redis.url,
      kubeconfig,
      environments: [{ name: 'web', repo, env: { namespace: namespace.name, healthTimeout: '0' } }],
    });
    await harness.startWorker();
    const sha = await repo.commit({ 'manifests/app.yaml': configMap('app', { v: '1' }) });
    return harness.waitForJob(await harness.webhook('web', sha), 20_000);
  };

  it('fails a deploy whose token is refused (401) after a few attempts, naming the cluster', async () => {
    const config = parse(await readFile(kubeconfigPathFromTest(), 'utf8')) as {
      users: { name: string; user: Record<string, unknown> }[];
    };
    for (const entry of config.users) entry.user = { token: 'not-a-token-this-cluster-knows' };
    const file = path.join(dir, 'kubeconfig');
    await writeFile(file, stringify(config));

    const record = await pushWith(file);

    expect(record.state).toBe('failed');
    expect(record.attempts).toBe(REFUSED_ATTEMPTS);
    expect(record.error).toContain('cluster test (');
    expect(record.error).toContain('401 Unauthorized');
  });

  it('fails a deploy the RBAC does not allow (403) after a few attempts, saying what is forbidden', async () => {
    // Every verb on ConfigMaps, but no `get` on the namespace every deploy reads.
    const restricted = await namespacedKubeconfig(
      dir,
      [namespace.name],
      [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'create', 'patch', 'delete'] }],
    );
    try {
      const record = await pushWith(restricted.path);

      expect(record.state).toBe('failed');
      expect(record.attempts).toBe(REFUSED_ATTEMPTS);
      expect(record.error).toContain('forbidden');
    } finally {
      await restricted.cleanup();
    }
  });
});
