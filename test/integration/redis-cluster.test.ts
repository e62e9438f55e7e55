import { mkdtempSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/http/app.js';
import { listen, type RunningServer } from '../../src/http/server.js';
import { silentLogger } from '../../src/lib/logger.js';
import { createMetrics } from '../../src/lib/metrics.js';
import { dropRetiredHistories, RETIRED_HISTORY_KEPT_MS } from '../../src/status/retired-histories.js';
import { githubHeaders, githubPush } from '../fixtures/github/payloads.js';
import { cliConfigText, runBuiltCli } from '../helpers/cli.js';
import { createEnvRepo, type EnvRepo } from '../helpers/env-repo.js';
import { createTestNamespace, kubeConfigFromTest, type TestNamespace } from '../helpers/kube.js';
import { freePort, startRedis, uniquePrefix, WEBHOOK_503_WITHIN_MS } from '../helpers/redis.js';
import { startRedisCluster, type ClusterNode, type TestRedisCluster } from '../helpers/redis-cluster.js';
import { until } from '../helpers/until.js';
import { startReceiver, testSecrets } from './receiver-harness.js';
import { createWorkerHarness, type WorkerHarness } from './worker-harness.js';
import { configMap } from './worker-manifests.js';

const SECRET = 'github-secret';

let cluster: TestRedisCluster;

beforeAll(async () => {
  cluster = await startRedisCluster();
});
afterAll(async () => {
  await cluster?.stop();
});

async function keyCount(node: ClusterNode): Promise<number> {
  const client = new Redis({ host: '127.0.0.1', port: node.port, lazyConnect: false });
  try {
    return await client.dbsize();
  } finally {
    client.disconnect();
  }
}

describe('on a Redis Cluster (three real masters; redis.cluster: true)', () => {
  let repo: EnvRepo;
  let namespace: TestNamespace;
  let harness: WorkerHarness;
  let server: RunningServer;

  beforeAll(async () => {
    const prefix = uniquePrefix('cluster');
    // The node the URL names serves none of pushgate's keys: the client must find their owner.
    const entry = await cluster.notOwnerOf(`{${prefix}}`);
    repo = await createEnvRepo({ branch: 'env/test' });
    namespace = await createTestNamespace('redis-cluster');
    harness = await createWorkerHarness({
      redisUrl: entry.url,
      redisCluster: true,
      prefix,
      environments: [{ name: 'web', repo, env: { namespace: namespace.name, healthTimeout: '0' } }],
    });
    await harness.startWorker();
    const app = createApp({
      config: harness.config,
      secrets: testSecrets(),
      logger: silentLogger(),
      metrics: createMetrics(),
      ...harness.services,
    });
    server = await listen(app, '127.0.0.1', 0);
  });
  afterAll(async () => {
    await server?.close(1_000);
    await harness?.close();
    await namespace?.cleanup();
  });

  /** A signed GitHub push of `sha` to the environment's branch, through the real receiver. */
  async function push(sha: string): Promise<string> {
    const body = JSON.stringify(
      githubPush({ repository: 'acme/web-config', branch: 'env/test', after: sha }),
    );
    const response = await fetch(`${server.url}/webhooks/github`, {
      method: 'POST',
      body,
      headers: githubHeaders(SECRET, body),
    });
    const answer = (await response.json()) as { jobs?: { id: string }[] };
    expect(response.status, JSON.stringify(answer)).toBe(202);
    return answer.jobs![0]!.id;
  }

  async function configMapData(name: string): Promise<Record<string, string> | undefined> {
    const core = kubeConfigFromTest().makeApiClient(CoreV1Api);
    return (await core.readNamespacedConfigMap({ name, namespace: namespace.name })).data;
  }

  it('takes a push, deploys it and answers for its job, every key in the one slot of its hash tag', async () => {
    expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
    const sha = await repo.commit({ 'manifests/a.yaml': configMap('alpha', { v: '1' }) });
    const id = await push(sha);
    const record = await harness.waitForJob(id);
    expect(record.state, record.error ?? '').toBe('succeeded');
    expect(record.sha).toBe(sha);
    expect(await configMapData('alpha')).toEqual({ v: '1' });
    const job = (await (await fetch(`${server.url}/jobs/${id}`)).json()) as { state: string };
    expect(job.state).toBe('succeeded');

    const prefix = harness.config.redis.prefix;
    const owner = await cluster.ownerOf(`{${prefix}}`);
    const others = cluster.nodes.filter((node) => node !== owner);
    expect(await keyCount(owner)).toBeGreaterThan(0);
    // Every other test of this file uses its own prefix, hence slot; this one's keys are all on the owner.
    for (const node of others) {
      const client = new Redis({ host: '127.0.0.1', port: node.port });
      try {
        expect(await client.keys(`{${prefix}}*`)).toEqual([]);
      } finally {
        client.disconnect();
      }
    }
  });

  it("finds and drops a removed environment's old history on whichever node serves the slot", async () => {
    const { store, redis: client, keys } = harness.services;
    const longAgo = new Date(Date.now() - RETIRED_HISTORY_KEPT_MS - 60_000).toISOString();
    const ids = ['removed-a', 'removed-b'];
    await store.claimMany(
      ids.map((id) => ({
        id,
        environment: 'removed',
        trigger: { kind: 'manual' as const },
        receivedAt: longAgo,
      })),
    );

    const sweep = (now: number) =>
      dropRetiredHistories({
        redis: client,
        keys,
        runningEnvironments: () => Promise.resolve(new Set(['web'])),
        ranLately: () => Promise.resolve(false),
        logger: silentLogger(),
        now,
      });
    await sweep(Date.now() - RETIRED_HISTORY_KEPT_MS - 60_000);

    const dropped = await sweep(Date.now());

    expect(dropped).toEqual(new Map([['removed', 2]]));
    expect(await store.getMany(ids)).toEqual([]);
  });

  it('goes on when its slot moves to another node (resharding): later pushes deploy, earlier jobs stay readable', async () => {
    const before = await repo.commit({ 'manifests/a.yaml': configMap('alpha', { v: 'before' }) });
    const beforeId = await push(before);
    expect((await harness.waitForJob(beforeId)).state).toBe('succeeded');

    const prefix = harness.config.redis.prefix;
    const { to } = await cluster.moveSlotOf(`{${prefix}}`);
    expect((await cluster.ownerOf(`{${prefix}}`)).port).toBe(to.port);

    // The worker was blocked waiting for jobs on the old owner; the receiver's connection pointed there too.
    const after = await repo.commit({ 'manifests/a.yaml': configMap('alpha', { v: 'after' }) });
    const afterId = await push(after);
    const record = await harness.waitForJob(afterId);
    expect(record.state, record.error ?? '').toBe('succeeded');
    expect(await configMapData('alpha')).toEqual({ v: 'after' });
    const earlier = (await (await fetch(`${server.url}/jobs/${beforeId}`)).json()) as {
      state: string;
      sha: string;
    };
    expect(earlier).toMatchObject({ state: 'succeeded', sha: before });
    const environment = (await (await fetch(`${server.url}/environments/web`)).json()) as {
      lastAppliedSha: string;
    };
    expect(environment.lastAppliedSha).toBe(after);
  });

  it('is not ready while the node serving its slot answers nothing, answers webhooks 503 after its command timeout, and is ready again once it does', async () => {
    const owner = await cluster.ownerOf(`{${harness.config.redis.prefix}}`);
    const resume = cluster.pause(owner);
    try {
      // A PING would go to any node; readiness is about the one holding pushgate's keys.
      for (let probe = 0; probe < 3; probe += 1)
        expect((await fetch(`${server.url}/readyz`)).status).toBe(503);
      const body = JSON.stringify(githubPush({ repository: 'acme/web-config', branch: 'env/test' }));
      const started = Date.now();
      const refused = await fetch(`${server.url}/webhooks/github`, {
        method: 'POST',
        body,
        headers: githubHeaders(SECRET, body),
      });
      expect(refused.status).toBe(503);
      expect(Date.now() - started).toBeLessThan(WEBHOOK_503_WITHIN_MS);
    } finally {
      resume();
    }
    await until(async () => (await fetch(`${server.url}/readyz`)).status === 200);
  });
});

describe('on a Redis Cluster that loses nodes', () => {
  it('keeps reaching the cluster after the node its URL names is gone for good and every connection dropped', async () => {
    const own = await startRedisCluster();
    const prefix = uniquePrefix('lost-seed');
    const seed = await own.notOwnerOf(`{${prefix}}`);
    const receiver = await startReceiver(seed.url, { redisCluster: true, prefix });
    try {
      expect(await pushTo(receiver.url)).toBe(202);
      await own.kill(seed);
      // Every connection the client has left drops: it starts again from the nodes it knows.
      for (const node of own.nodes.filter((candidate) => candidate !== seed)) {
        const client = new Redis({ host: '127.0.0.1', port: node.port });
        try {
          await client.call('CLIENT', 'KILL', 'TYPE', 'normal');
        } finally {
          client.disconnect();
        }
      }
      await until(async () => (await pushTo(receiver.url)) === 202, 15_000);
    } finally {
      await receiver.close();
      await own.stop();
    }
  });
});

/** A signed GitHub push to the receivers' test environment; the answer's status. */
async function pushTo(url: string): Promise<number> {
  const body = JSON.stringify(githubPush({ repository: 'acme/env-config', branch: 'env/staging' }));
  const response = await fetch(`${url}/webhooks/github`, {
    method: 'POST',
    body,
    headers: githubHeaders(SECRET, body),
  });
  return response.status;
}

describe('redis.cluster that does not match the server', () => {
  const closers: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const close of closers.splice(0)) await close();
  });

  it('false on a cluster node: /readyz and every webhook answer 503, and the readiness error says to set redis.cluster: true', async () => {
    const receiver = await startReceiver(cluster.nodes[0]!.url, { skipRedisWait: true });
    closers.push(() => receiver.close());
    const readiness = await until(async () => {
      const response = await fetch(`${receiver.url}/readyz`);
      const body = (await response.json()) as { error?: string };
      return response.status === 503 && body.error?.includes('redis.cluster') ? body.error : undefined;
    });
    // Where Redis is, /readyz (open to anyone) does not say.
    expect(readiness).toBe(
      'redis.cluster is false but Redis is a Redis Cluster node: set redis.cluster: true',
    );
    const body = JSON.stringify(githubPush({ repository: 'acme/env-config', branch: 'env/staging' }));
    const response = await fetch(`${receiver.url}/webhooks/github`, {
      method: 'POST',
      body,
      headers: githubHeaders(SECRET, body),
    });
    expect(response.status).toBe(503);
  });

  /** A config of one environment with `redis.cluster` set, in a folder removed after the test. */
  function configFile(redisCluster: boolean): string {
    const dir = mkdtempSync(join(tmpdir(), 'pushgate-redis-mode-'));
    closers.push(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, 'pushgate.yaml');
    writeFileSync(
      file,
      cliConfigText({ prefix: uniquePrefix('mode') }).replace(
        'redis:\n',
        `redis:\n  cluster: ${redisCluster}\n`,
      ),
    );
    return file;
  }

  function cliEnv(redisUrl: string): NodeJS.ProcessEnv {
    const { PUSHGATE_CONFIG: _config, PORT: _port, ...rest } = process.env;
    return { ...rest, REDIS_URL: redisUrl, GITHUB_WEBHOOK_SECRET: SECRET };
  }

  it('pushgate serve exits 2 naming redis.cluster on a cluster node it was told is standalone', async () => {
    const node = cluster.nodes[1]!;
    const run = await runBuiltCli(['serve', '--config', configFile(false)], {
      env: cliEnv(node.url),
      timeoutMs: 20_000,
    });
    expect(run.code, run.stderr).toBe(2);
    expect(run.stderr).toContain(
      `redis.cluster is false but Redis at 127.0.0.1:${node.port} is a Redis Cluster node: set redis.cluster: true`,
    );
  });

  it('a cluster node that cannot be reached is named with the socket error, not the client\'s "Connection is closed."', async () => {
    const port = await freePort();
    const run = await runBuiltCli(['status', '--config', configFile(true)], {
      env: cliEnv(`redis://127.0.0.1:${port}`),
      timeoutMs: 20_000,
    });
    expect(run.code, run.stderr).toBe(1);
    expect(run.stderr).toContain(
      `Redis did not answer within 5000 ms (127.0.0.1:${port}: connect ECONNREFUSED`,
    );
  });

  it('pushgate sync exits 2 naming redis.cluster, as every command does', async () => {
    const standalone = await startRedis();
    closers.push(() => standalone.stop());
    const run = await runBuiltCli(['sync', 'staging', '--config', configFile(true)], {
      env: cliEnv(standalone.url),
      timeoutMs: 20_000,
    });
    expect(run.code, run.stderr).toBe(2);
    expect(run.stderr).toBe(
      `pushgate sync: redis.cluster is true but Redis at 127.0.0.1:${standalone.port} is not a Redis Cluster (cluster support disabled): set redis.cluster: false\n`,
    );
  });

  it('pushgate status exits 2 naming redis.cluster on a standalone Redis it was told is a cluster', async () => {
    const standalone = await startRedis();
    closers.push(() => standalone.stop());
    const run = await runBuiltCli(['status', '--config', configFile(true)], {
      env: cliEnv(standalone.url),
      timeoutMs: 20_000,
    });
    expect(run.code, run.stderr).toBe(2);
    expect(run.stderr).toContain(
      `redis.cluster is true but Redis at 127.0.0.1:${standalone.port} is not a Redis Cluster (cluster support disabled): set redis.cluster: false`,
    );
  });
});
