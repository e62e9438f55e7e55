import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { environmentTarget } from '../../src/deploy/config-skew.js';
import {
  configurationFingerprint,
  RECORD_EVERY_MS,
  VANISHED_HOLD_MS,
  WorkerPresence,
} from '../../src/deploy/worker-presence.js';
import { createRedis } from '../../src/queue/connection.js';
import { createKeys } from '../../src/queue/keys.js';
import { createEnvRepo, type EnvRepo } from '../helpers/env-repo.js';
import { startRedis, uniquePrefix, type TestRedis } from '../helpers/redis.js';
import { until } from '../helpers/until.js';
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
  const workerIn = async (
    namespace: string,
    renewMs?: number,
  ): Promise<{ presence: WorkerPresence; config: Config }> => {
    const config = configIn(namespace);
    const presence = new WorkerPresence(connection(), keys, config, renewMs);
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

    // No worker of the new one runs (a drain, or a rollback): the old one waits for it while
    // it ran lately, and is the newest once it has been gone for the hold.
    await current.presence.stop();
    const raw = connection();
    const fingerprint = configurationFingerprint(current.config.environments[0]!, current.config);
    const lastRun = async (agoMs: number): Promise<void> => {
      const [seconds] = await raw.time();
      const at = Number(seconds) * 1000 - agoMs;
      await raw.hset(keys.configLive('web'), fingerprint, JSON.stringify({ at, target: currentTarget }));
    };
    await lastRun(60_000);
    expect(await until(async () => (await restarted.presence.newest('web'))?.mine === false)).toBe(true);
    await lastRun(VANISHED_HOLD_MS + 1_000);
    expect(await until(async () => (await restarted.presence.newest('web'))?.mine)).toBe(true);
  });

  it('rewrites the per-environment records once a minute, not at every renewal, and at once after Redis lost them', async () => {
    const raw = connection();
    await raw.del(keys.configSeen('web'), keys.configLive('web'));
    const { presence, config } = await workerIn('apps-records', 100);
    const fingerprint = configurationFingerprint(config.environments[0]!, config);
    const entryUntil = async (): Promise<number> =>
      (JSON.parse((await raw.hget(keys.workers, presence.id)) ?? '{"until":0}') as { until: number }).until;
    const live = await until(() => raw.hget(keys.configLive('web'), fingerprint));
    const seen = await raw.hget(keys.configSeen('web'), fingerprint);
    const { at, until: liveUntil } = JSON.parse(live) as { at: number; until: number };
    // Up to the next record's tick; in `at` too, which a previous version holds from.
    const [seconds] = await raw.time();
    expect(liveUntil - Number(seconds) * 1000).toBeGreaterThan(RECORD_EVERY_MS - 5_000);
    expect(liveUntil - Number(seconds) * 1000).toBeLessThanOrEqual(RECORD_EVERY_MS + 1_100);
    expect(at).toBe(liveUntil);

    // Renewals go on (the entry's time moves, several times over), the records stay as written:
    // one write per environment a minute, whatever the renewals.
    const renewedAt = await entryUntil();
    await until(async () => (await entryUntil()) > renewedAt + 300);
    expect(await raw.hget(keys.configLive('web'), fingerprint)).toBe(live);

    // What a Redis that lost its data (or a stall past the entry's time) leaves: the next
    // renewal puts the records back, the first sighting as it was.
    await raw.del(keys.workers, keys.configSeen('web'), keys.configLive('web'));
    expect(await until(() => raw.hget(keys.configSeen('web'), fingerprint), 5_000)).toBe(seen);
    expect(await until(() => raw.hexists(keys.configLive('web'), fingerprint), 5_000)).toBe(1);
  });

  it('holds a configuration from the moment its worker stopped, or was last known to run', async () => {
    const raw = connection();
    const { presence, config } = await workerIn('apps-stopping', 100);
    const fingerprint = configurationFingerprint(config.environments[0]!, config);
    await until(() => raw.hexists(keys.configLive('web'), fingerprint));
    const [seconds] = await raw.time();
    await presence.stop();
    const stopped = JSON.parse((await raw.hget(keys.configLive('web'), fingerprint))!) as {
      at: number;
      until: number;
    };
    expect(stopped.until).toBe(stopped.at);
    expect(Math.abs(stopped.until - Number(seconds) * 1000)).toBeLessThan(2_000);

    // A record whose last renewal is older than the hold, but whose worker was due to run
    // until a moment ago (killed between two records), is still waited for.
    const current = await workerIn('apps-current');
    await raw.hset(keys.configSeen('web'), 'killed-config', String(Number(seconds) * 1000 + 60_000));
    await raw.hset(
      keys.configLive('web'),
      'killed-config',
      JSON.stringify({
        at: Number(seconds) * 1000 - VANISHED_HOLD_MS - 1_000,
        until: Number(seconds) * 1000 - 1_000,
        target: { ...environmentTarget(current.config.environments[0]!), namespace: 'apps-killed' },
      }),
    );
    expect((await current.presence.newest('web'))?.mine).toBe(false);
    await raw.hdel(keys.configLive('web'), 'killed-config');
    await raw.hdel(keys.configSeen('web'), 'killed-config');
  });

  it('leaves the record of a configuration another worker still runs as it is when one stops', async () => {
    const raw = connection();
    const first = await workerIn('apps-shared', 100);
    const second = await workerIn('apps-shared', 100);
    const fingerprint = configurationFingerprint(first.config.environments[0]!, first.config);
    const untilOf = async (): Promise<number> =>
      (
        JSON.parse((await raw.hget(keys.configLive('web'), fingerprint)) ?? '{"until":0}') as {
          until: number;
        }
      ).until;
    await until(async () => (await untilOf()) > 0);
    const [seconds] = await raw.time();

    // One goes (a drain evicts it), the other runs on: should that one be killed next, the
    // hold counts from its own last record, not from the first one's stop.
    await first.presence.stop();
    expect((await untilOf()) - Number(seconds) * 1000).toBeGreaterThan(RECORD_EVERY_MS - 5_000);

    await second.presence.stop();
    expect(Math.abs((await untilOf()) - Number(seconds) * 1000)).toBeLessThan(2_000);
  });

  it('does not wait for a configuration that is gone and sends the environment where this one does', async () => {
    const current = await workerIn('apps');
    const raw = connection();
    const [seconds] = await raw.time();
    // A newer one that differed only in, say, healthTimeout, killed a moment ago.
    await raw.hset(keys.configSeen('web'), 'same-place', String(Number(seconds) * 1000 + 60_000));
    await raw.hset(
      keys.configLive('web'),
      'same-place',
      JSON.stringify({
        at: Number(seconds) * 1000,
        target: environmentTarget(current.config.environments[0]!),
      }),
    );

    expect((await current.presence.newest('web'))?.mine).toBe(true);
  });

  it('waits for a newer configuration whose workers vanished, for a while, then forgets it', async () => {
    const current = await workerIn('apps');
    const vanished = { ...environmentTarget(current.config.environments[0]!), namespace: 'apps-vanished' };
    const raw = connection();
    const [seconds] = await raw.time();
    const now = Number(seconds) * 1000;
    // A newer configuration, first seen after this one, whose only worker was killed a moment
    // ago: its entry ran out, its last renewal is recent.
    await raw.hset(keys.configSeen('web'), 'vanished-config', String(now + 60_000));
    await raw.hset(
      keys.workers,
      'killed-worker',
      JSON.stringify({
        until: now - 1,
        environments: { web: { fingerprint: 'vanished-config', target: vanished } },
      }),
    );
    await raw.hset(
      keys.configLive('web'),
      'vanished-config',
      JSON.stringify({ at: now - 40_000, target: vanished }),
    );

    expect(await current.presence.newest('web')).toEqual({ target: vanished, mine: false });
    expect(await raw.hexists(keys.workers, 'killed-worker')).toBe(0);

    // Gone for longer than the hold: this configuration is the newest again.
    await raw.hset(
      keys.configLive('web'),
      'vanished-config',
      JSON.stringify({ at: now - VANISHED_HOLD_MS - 1_000, target: vanished }),
    );
    // Once newest()'s one-second read cache has passed.
    expect(await until(async () => (await current.presence.newest('web'))?.mine)).toBe(true);
  });

  it('forgets a configuration that has not run for the hold, so a rollback to it is the newest at once', async () => {
    const raw = connection();
    // Only this test's configurations: the earlier tests wrote some that are newer.
    await raw.del(keys.configSeen('web'), keys.configLive('web'));
    const old = await workerIn('apps-old');
    const current = await workerIn('apps');
    const oldFingerprint = configurationFingerprint(old.config.environments[0]!, old.config);
    await old.presence.stop();
    const [seconds] = await raw.time();
    const longAgo = Number(seconds) * 1000 - VANISHED_HOLD_MS - 60_000;
    // The old configuration was first seen, and last ran, longer ago than the hold.
    await raw.hset(keys.configSeen('web'), oldFingerprint, String(longAgo));
    await raw.hset(
      keys.configLive('web'),
      oldFingerprint,
      JSON.stringify({ at: longAgo, target: environmentTarget(old.config.environments[0]!) }),
    );

    expect((await current.presence.newest('web'))?.mine).toBe(true);
    expect(
      await until(
        async () =>
          (await raw.hexists(keys.configSeen('web'), oldFingerprint)) === 0 &&
          (await raw.hexists(keys.configLive('web'), oldFingerprint)) === 0,
      ),
    ).toBe(true);
    const currentFingerprint = configurationFingerprint(current.config.environments[0]!, current.config);
    expect(await raw.hexists(keys.configSeen('web'), currentFingerprint)).toBe(1);

    // Rolled back: the old configuration's worker is first seen anew, and takes over at once.
    const rolledBack = await workerIn('apps-old');
    expect((await rolledBack.presence.newest('web'))?.mine).toBe(true);
    expect(await until(async () => (await current.presence.newest('web'))?.mine === false)).toBe(true);
  });

  it("names the environments of every running worker's configuration, and none while an entry cannot be read", async () => {
    const raw = connection();
    await raw.del(keys.workers);
    const { presence, config } = await workerIn('apps-running');
    const configuration = {
      fingerprint: 'f'.repeat(16),
      target: environmentTarget(config.environments[0]!),
    };
    const [seconds] = await raw.time();
    const now = Number(seconds) * 1000;
    await raw.hset(
      keys.workers,
      'other-worker',
      JSON.stringify({ until: now + 60_000, environments: { api: configuration } }),
    );
    // Killed a while ago: its entry is past its time.
    await raw.hset(
      keys.workers,
      'killed-worker',
      JSON.stringify({ until: now - 1_000, environments: { old: configuration } }),
    );

    expect(await presence.runningEnvironments()).toEqual(new Set(['web', 'api']));

    // Another version's entry: past its time, a worker gone; else what it runs is not known.
    await raw.hset(keys.workers, 'old-killed', JSON.stringify({ until: now - 60_000, targets: {} }));
    expect(await presence.runningEnvironments()).toEqual(new Set(['web', 'api']));
    await raw.hset(
      keys.workers,
      'newer-version',
      JSON.stringify({ until: now + 60_000, environments: ['api'] }),
    );
    expect(await presence.runningEnvironments()).toBeUndefined();
    await raw.hdel(keys.workers, 'newer-version', 'other-worker', 'old-killed');
  });

  it('tells an environment whose worker ran within the hold (stalled past its entry, restarting) from one no worker ran lately', async () => {
    const raw = connection();
    const { presence, config } = await workerIn('apps-lately');
    const target = environmentTarget(config.environments[0]!);
    const [seconds] = await raw.time();
    const now = Number(seconds) * 1000;
    const ranAt = async (environment: string, at: number): Promise<void> => {
      await raw.hset(keys.configLive(environment), 'f'.repeat(16), JSON.stringify({ at, until: at, target }));
    };

    await ranAt('stalled', now - 60_000);
    await ranAt('long-gone', now - VANISHED_HOLD_MS - 60_000);

    expect(await presence.ranLately('stalled')).toBe(true);
    expect(await presence.ranLately('long-gone')).toBe(false);
    expect(await presence.ranLately('never')).toBe(false);
  });
});
