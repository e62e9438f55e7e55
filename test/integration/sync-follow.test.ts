import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { followJob } from '../../src/commands/sync.js';
import { waitForRedis } from '../../src/queue/connection.js';
import { connectProducer, type ProducerServices } from '../../src/runtime.js';
import { startRedis, uniquePrefix, type TestRedis } from '../helpers/redis.js';

let redis: TestRedis;
let services: ProducerServices;

beforeAll(async () => {
  redis = await startRedis();
  services = connectProducer(redis.url, uniquePrefix('follow'));
  await waitForRedis(services.redis, 5_000);
});
afterAll(async () => {
  await services.close();
  await redis.stop();
});

function collector() {
  const printed: string[] = [];
  const warned: string[] = [];
  return {
    printed,
    warned,
    out: { print: (line: string) => printed.push(line), warn: (line: string) => warned.push(line) },
  };
}

describe('pushgate sync --wait following its job', () => {
  it('rides out a Redis restart and reports the job as it ends', async () => {
    const { id } = await services.producer.enqueue('web', { kind: 'manual' });
    const { printed, warned, out } = collector();
    const following = followJob(services.store, id, out);
    await redis.kill();
    await expect.poll(() => warned.length, { timeout: 10_000 }).toBeGreaterThan(0);
    await redis.restart();
    await waitForRedis(services.redis, 10_000);
    // Redis restarted from its snapshot-less state: the test writes the record the worker would.
    await services.store.ensure({
      id,
      environment: 'web',
      trigger: { kind: 'manual' },
      receivedAt: new Date().toISOString(),
    });
    await services.store.update(id, { state: 'succeeded', finishedAt: new Date().toISOString() });

    const record = await following;

    expect(record.state).toBe('succeeded');
    expect(warned[0]).toMatch(/^Redis does not answer .*; still following job /);
    expect(warned).toContain('Redis answers again');
    expect(printed.at(-1)).toMatch(/^succeeded/);
  });

  it('gives up, saying why, when the job has no record any more', async () => {
    const { id } = await services.producer.enqueue('web', { kind: 'manual' });
    const { out } = collector();
    const following = followJob(services.store, id, out, { redisGoneMs: 60_000, recordGoneMs: 300 });
    await services.redis.del(`${services.keys.job(id)}`);

    await expect(following).rejects.toThrow(`job ${id} has no record any more: Redis lost it`);
  });
});
