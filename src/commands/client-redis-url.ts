import type { Config } from '../config/schema.js';
import {
  embeddedRedisDir,
  embeddedRedisUrlFile,
  readEmbeddedRedisUrl,
} from '../lib/embedded-redis-url-file.js';
import { ConfigError, errorMessage } from '../lib/errors.js';

/**
 * `status` and `sync` talk to the Redis of a receiver that is already running. Unlike for
 * `serve` and `worker`, "use pushgate start instead" is no answer here: what the user needs
 * is the address of the Redis that `pushgate start` runs for itself, on a port and with a
 * password it picks, and which it writes to a file for us (`baseDir`: where start ran).
 */
export function clientRedisUrl(
  config: Config,
  command: 'status' | 'sync' | 'suspend' | 'resume',
  baseDir: string = process.cwd(),
): string {
  if (config.redis.url) return config.redis.url;
  const dataDir = embeddedRedisDir(baseDir);
  const found = readUrlFile(dataDir);
  if (found) return found;
  throw new ConfigError(
    `redis.url is not set: pushgate ${command} reads the Redis of the running receiver; set REDIS_URL to it ` +
      '(redis://[:password@]host:6379). The private redis-server of a pushgate start without REDIS_URL ' +
      `is found by itself when both run from the same folder (${embeddedRedisUrlFile(dataDir)}), and no ` +
      'pushgate start runs from this one',
  );
}

function readUrlFile(dataDir: string): string | undefined {
  const file = embeddedRedisUrlFile(dataDir);
  let url: string | undefined;
  try {
    url = readEmbeddedRedisUrl(dataDir);
  } catch (error) {
    throw new ConfigError(`cannot read ${file}: ${errorMessage(error)}`, { cause: error });
  }
  // Its content is not repeated: it holds a password.
  if (url !== undefined && !/^rediss?:\/\/\S+$/.test(url))
    throw new ConfigError(`${file} does not hold a redis:// URL: delete it, or set REDIS_URL`);
  return url;
}
