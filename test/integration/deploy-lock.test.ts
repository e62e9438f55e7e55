import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EnvironmentLock } from '../../src/deploy/environment-lock.js';
import { createRedis, type RedisClient } from '../../src/queue/connection.js';
import { createKeys } from '../../src/queue/keys.js';
import { startRedis, uniquePrefix, type TestRedis } from '../helpers/redis.js';

async function until(check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met before the deadline');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('environment lock (real Redis)', () => {
  let server: TestRedis;
  let redis: RedisClient;

  beforeAll(async () => {
    server = await startRedis();
    redis = createRedis({ url: server.url, cluster: false }, 'worker');
  });
  afterAll(async () => {
    redis.disconnect();
    await server.stop();
  });

  it('lets one holder in per environment and the next one after release', async () => {
    const locks = new EnvironmentLock(redis, createKeys(uniquePrefix('lock')), 5_000);

    const first = await locks.acquire('production');
    const second = await locks.acquire('production');
    const other = await locks.acquire('staging');

    expect(first).not.toBeNull();
    expect(second).toBeNull();
    expect(other).not.toBeNull();
    await first!.release();
    const third = await locks.acquire('production');
    expect(third).not.toBeNull();
    await Promise.all([third!.release(), other!.release()]);
  });

  it('stays held past its TTL while the holder renews it', async () => {
    // A TTL long enough that a loaded machine's pauses do not outlast it, short enough that
    // the lock must be renewed a few times meanwhile.
    const locks = new EnvironmentLock(redis, createKeys(uniquePrefix('lock')), 1_500);
    const held = await locks.acquire('production');
    const startedAt = Date.now();

    await until(() => Promise.resolve(Date.now() - startedAt > 4_000), 8_000);

    await expect(held!.assertHeld()).resolves.toBeUndefined();
    expect(await locks.acquire('production')).toBeNull();
    await held!.release();
  });

  it('refuses, without asking Redis, a write by a holder frozen past its TTL, before any renewal can run', async () => {
    const locks = new EnvironmentLock(redis, createKeys(uniquePrefix('lock')), 300);
    const held = (await locks.acquire('staging'))!;
    held.assertHeldNow();

    // A SIGSTOP or a VM pause, as the process sees it: time passed, no timer ran.
    const until = Date.now() + 400;
    while (Date.now() < until);

    expect(() => held.assertHeldNow()).toThrow(
      /lost the deploy lock of environment "staging": not renewed for \d+ ms/,
    );
    await held.release();
  });

  it('fences a holder whose lock expired and was taken by another worker', async () => {
    const keys = createKeys(uniquePrefix('lock'));
    const locks = new EnvironmentLock(redis, keys, 5_000);
    const stale = await locks.acquire('production');
    // As if the holder had been paused past its TTL: the key expires and another worker takes it.
    await redis.del(keys.environmentLock('production'));
    const fresh = await locks.acquire('production');

    await expect(stale!.assertHeld()).rejects.toThrow(
      'lost the deploy lock of environment "production": another worker holds it',
    );
    await stale!.release(); // must not delete the new holder's lock
    await expect(fresh!.assertHeld()).resolves.toBeUndefined();
    await fresh!.release();
  });

  it('expires when its holder stops renewing, so another worker can take it', async () => {
    const keys = createKeys(uniquePrefix('lock'));
    await redis.set(keys.environmentLock('production'), 'dead-worker', 'PX', 200);
    const locks = new EnvironmentLock(redis, keys, 5_000);

    expect(await locks.acquire('production')).toBeNull();
    let taken: Awaited<ReturnType<EnvironmentLock['acquire']>> = null;
    await until(async () => (taken = await locks.acquire('production')) !== null, 2_000);
    await taken!.release();
  });

  it('says a lock Redis lost is gone, not held by another worker', async () => {
    const keys = createKeys(uniquePrefix('lock'));
    const held = await new EnvironmentLock(redis, keys, 5_000).acquire('production');
    // As after a restart of a Redis that keeps nothing: no worker holds it.
    await redis.del(keys.environmentLock('production'));

    await expect(held!.assertHeld()).rejects.toThrow(
      'lost the deploy lock of environment "production": it is gone (it expired, or Redis lost it)',
    );
    await held!.release();

    // Found by a renewal, the same.
    const renewed = await new EnvironmentLock(redis, keys, 600).acquire('staging');
    await redis.del(keys.environmentLock('staging'));
    await until(() => renewed!.isLost(), 2_000);
    expect(() => renewed!.assertHeldNow()).toThrow('it is gone (it expired, or Redis lost it)');
    await renewed!.release();
  });
});
