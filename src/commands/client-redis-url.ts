import type { Config } from '../config/schema.js';
import { ConfigError } from '../lib/errors.js';

/**
 * `status` and `sync` talk to the Redis of a receiver that is already running. Unlike for
 * `serve` and `worker`, "use pushgate start instead" is no answer here: what the user needs
 * is the address of the Redis that `pushgate start` runs for itself, on a port it picks.
 */
export function clientRedisUrl(config: Config, command: 'status' | 'sync'): string {
  if (config.redis.url) return config.redis.url;
  throw new ConfigError(
    `redis.url is not set: pushgate ${command} reads the Redis of the running receiver; set REDIS_URL to it ` +
      '(redis://host:6379). pushgate start without REDIS_URL runs its own redis-server on a free port and logs ' +
      'its address at start: the "url" of the line "embedded redis-server started"',
  );
}
