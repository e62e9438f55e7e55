import { Redis, type RedisOptions } from 'ioredis';

export type RedisRole = 'producer' | 'worker';

/**
 * Producers fail fast (no offline queue, one retry) so a dead Redis becomes a 503 within a
 * second; workers block on Redis and must never give up a request (BullMQ requires it).
 */
export function createRedis(url: string, role: RedisRole): Redis {
  const common: RedisOptions = {
    connectTimeout: 1_000,
    lazyConnect: false,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2_000),
  };
  const options: RedisOptions =
    role === 'producer'
      ? {
          ...common,
          enableOfflineQueue: false,
          maxRetriesPerRequest: 1,
          commandTimeout: 1_000,
          // No auto-pipelining: BullMQ defines its scripts on this connection after start-up,
          // and an auto-pipeline built before then lacks them (ioredis crashes the process).
        }
      : { ...common, maxRetriesPerRequest: null, enableReadyCheck: true };
  const redis = new Redis(url, options);
  // Connection errors surface on the commands that need the connection; an unhandled
  // 'error' event would otherwise crash the process while Redis restarts.
  redis.on('error', () => undefined);
  return redis;
}

export async function waitForRedis(redis: Redis, timeoutMs: number): Promise<void> {
  if (redis.status === 'ready') return;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`Redis did not answer within ${timeoutMs} ms`));
    }, timeoutMs);
    const onReady = (): void => {
      cleanup();
      resolve();
    };
    const cleanup = (): void => {
      clearTimeout(timer);
      redis.off('ready', onReady);
    };
    redis.on('ready', onReady);
  });
}
