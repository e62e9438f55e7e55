import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { environmentTarget } from '../../src/deploy/config-skew.js';
import { targetDigest } from '../../src/deploy/target-change.js';
import { WorkerPresence } from '../../src/deploy/worker-presence.js';
import { createRedis } from '../../src/queue/connection.js';
import { createKeys } from '../../src/queue/keys.js';
import { createEnvRepo, type EnvRepo } from '../helpers/env-repo.js';
import { startRedis, uniquePrefix, type TestRedis } from '../helpers/redis.js';
import { testConfigText } from './worker-harness.js';

let redis: TestRedis;
let repo: EnvRepo;

beforeAll(async () => {
  redis = await startRedis();
  repo = await createEnvRepo({ branch: 'env/test' });
});
afterAll(async () => {
  await repo.remove();
  await redis.stop();
});

describe('which configurations the running workers have (real Redis)', () => {
  const prefix = uniquePrefix('presence');
  const keys = createKeys(prefix);
  const started: WorkerPresence[] = [];
  const connections: ReturnType<typeof createRedis>[] = [];
  const connection = (): ReturnType<typeof createRedis> => {
    const made = createRedis({ url: redis.url, cluster: false }, 'worker');
    connections.push(made);
    return made;
  };

  const configIn = (namespace: string): Config =>
    parseConfigText(
      testConfigText({
        prefix,
        redisUrl: redis.url,
        environments: [{ name: 'web', repo, env: { namespace } }],
      }),
      'test-config.yaml',
      {},
    );
  const workerIn = async (namespace: string): Promise<{ presence: WorkerPresence; config: Config }> => {
    const config = configIn(namespace);
    const presence = new WorkerPresence(connection(), keys, config);
    await presence.start();
    started.push(presence);
    return { presence, config };
  };

  afterEach(async () => {
    for (const presence of started.splice(0)) await presence.stop();
  });
  afterAll(() => {
    for (const made of connections) made.disconnect();
  });

  it("tells whether another worker has a job's configuration, and forgets a worker that stopped", async () => {
    const current = await workerIn('apps');
    const old = await workerIn('apps-old');
    const oldTarget = environmentTarget(old.config.environments[0]!);
    const currentTarget = environmentTarget(current.config.environments[0]!);

    expect(await current.presence.othersHave('web', oldTarget)).toBe(true);
    // Its own configuration does not count: the question is whether someone else takes the job.
    expect(await current.presence.othersHave('web', currentTarget)).toBe(false);
    expect(await current.presence.othersHave('api', oldTarget)).toBe(false);

    await old.presence.stop();
    expect(await current.presence.othersHave('web', oldTarget)).toBe(false);
  });

  it('does not count a worker that was killed (no renewal within the TTL), and drops its entry', async () => {
    const current = await workerIn('apps');
    const killedTarget = { ...environmentTarget(current.config.environments[0]!), namespace: 'apps-killed' };
    const raw = connection();
    await raw.hset(
      keys.workers,
      'killed-worker',
      JSON.stringify({ until: Date.now() - 1, targets: { web: targetDigest(killedTarget) } }),
    );

    expect(await current.presence.othersHave('web', killedTarget)).toBe(false);
    expect(await raw.hexists(keys.workers, 'killed-worker')).toBe(0);
  });
});
