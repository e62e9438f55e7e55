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

  it('names the configuration first seen last, among the running workers, the newest', async () => {
    const old = await workerIn('apps-old');
    const current = await workerIn('apps');
    const currentTarget = environmentTarget(current.config.environments[0]!);

    expect(await current.presence.newest('web')).toEqual({ target: currentTarget, mine: true });
    expect(await old.presence.newest('web')).toEqual({ target: currentTarget, mine: false });
    expect(await old.presence.newest('api')).toBeUndefined();

    // A worker of the old configuration that restarts is still old: first seen before.
    const restarted = await workerIn('apps-old');
    expect((await restarted.presence.newest('web'))?.mine).toBe(false);

    // Once no worker of the new one runs (a rollback), the old one is the newest running.
    await current.presence.stop();
    expect((await restarted.presence.newest('web'))?.mine).toBe(true);
  });

  it('does not count a worker that was killed (no renewal within the TTL), and drops its entry', async () => {
    const current = await workerIn('apps');
    const killedTarget = { ...environmentTarget(current.config.environments[0]!), namespace: 'apps-killed' };
    const raw = connection();
    // Its configuration is the newer one, and its entry ran out a moment ago by Redis's clock.
    await raw.hset(keys.configSeen('web'), targetDigest(killedTarget), String(Date.now() + 60_000));
    const [seconds] = await raw.time();
    await raw.hset(
      keys.workers,
      'killed-worker',
      JSON.stringify({ until: Number(seconds) * 1000 - 1, targets: { web: killedTarget } }),
    );

    expect((await current.presence.newest('web'))?.mine).toBe(true);
    expect(await raw.hexists(keys.workers, 'killed-worker')).toBe(0);
  });
});
