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

/** Redis's answers to a connection without the right password: waiting longer cannot help. */
const AUTH_REFUSED = /\b(WRONGPASS|NOAUTH)\b/;

/** Redis refused the URL's credentials (see waitForRedis). */
export class RedisAuthRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RedisAuthRefusedError';
  }
}

/**
 * Resolves once `redis` is ready. Rejects at once when Redis refuses the credentials, and
 * after `timeoutMs` otherwise, with the last connection error. Messages name host and port,
 * never the URL (it holds the password).
 */
export async function waitForRedis(redis: Redis, timeoutMs: number): Promise<void> {
  if (redis.status === 'ready') return;
  const where = `${redis.options.host ?? 'localhost'}:${redis.options.port ?? 6379}`;
  const tls = redis.options.tls !== undefined;
  await new Promise<void>((resolve, reject) => {
    let lastError: Error | undefined;
    const timer = setTimeout(() => {
      cleanup();
      const detail = lastError ? `: ${lastError.message}` : '';
      // A TLS client meets a plain port as silence: its handshake is never answered.
      const hint =
        tls &&
        lastError &&
        /ETIMEDOUT|ECONNRESET|socket disconnected|wrong version number/i.test(lastError.message)
          ? '; the URL is rediss:// (TLS): does the server at that port speak TLS?'
          : '';
      reject(new Error(`Redis did not answer within ${timeoutMs} ms (${where}${detail}${hint})`));
    }, timeoutMs);
    const onReady = (): void => {
      cleanup();
      resolve();
    };
    const onError = (error: Error): void => {
      lastError = error;
      const refused = AUTH_REFUSED.exec(error.message);
      if (!refused) return;
      cleanup();
      reject(
        new RedisAuthRefusedError(
          refused[1] === 'NOAUTH'
            ? `Redis at ${where} wants a password (NOAUTH): give it in the URL, redis://:PASSWORD@host:port`
            : `Redis at ${where} refused the user name or password of the URL (${error.message.trim()})`,
        ),
      );
    };
    const cleanup = (): void => {
      clearTimeout(timer);
      redis.off('ready', onReady);
      redis.off('error', onError);
    };
    redis.on('ready', onReady);
    redis.on('error', onError);
  });
}

/**
 * Waits as long as it takes for Redis, saying so every `intervalMs` with the last connection
 * error (host and port, never the URL): a process that waits in silence looks hung, and on
 * Kubernetes its empty log hides why it restarts. Rejects at once if Redis refuses the
 * credentials.
 */
export async function waitForRedisSaying(
  redis: Redis,
  warn: (error: Error) => void,
  intervalMs = 5_000,
): Promise<void> {
  for (;;) {
    try {
      await waitForRedis(redis, intervalMs);
      return;
    } catch (error) {
      if (error instanceof RedisAuthRefusedError || !(error instanceof Error)) throw error;
      warn(error);
    }
  }
}
