import { afterAll, beforeAll } from 'vitest';
import { waitForRedis } from '../../src/queue/connection.js';
import { connectProducer, type ProducerServices } from '../../src/runtime.js';
import { startRedis, uniquePrefix, type TestRedis } from './redis.js';

export interface ProducerFixture {
  /** The file's redis-server (started before its tests). */
  redis: () => TestRedis;
  /** Producer services on it, under a prefix of their own: no test sees another's keys. */
  services: () => Promise<ProducerServices>;
}

/** A redis-server for the test file, and producer services on it; everything is closed after the file. */
export function producerFixture(name: string): ProducerFixture {
  let redis: TestRedis | undefined;
  const opened: ProducerServices[] = [];
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await Promise.all(opened.map((services) => services.close()));
    await redis?.stop();
  });
  const started = (): TestRedis => {
    if (!redis) throw new Error('the redis-server starts in beforeAll: use it inside a test');
    return redis;
  };
  return {
    redis: started,
    services: async () => {
      const connected = connectProducer({ url: started().url, cluster: false }, uniquePrefix(name));
      opened.push(connected);
      await waitForRedis(connected.redis, 5_000);
      return connected;
    },
  };
}
