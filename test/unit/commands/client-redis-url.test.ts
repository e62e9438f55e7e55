import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { clientRedisUrl } from '../../../src/commands/client-redis-url.js';
import { parseConfigText } from '../../../src/config/load.js';
import { EMBEDDED_REDIS_DIR, writeEmbeddedRedisUrl } from '../../../src/lib/embedded-redis-url-file.js';
import { ConfigError } from '../../../src/lib/errors.js';

const CONFIG = `
redis:
  url: \${REDIS_URL:-}
clusters:
  - name: local
environments: []
`;

const EMBEDDED_URL = 'redis://:0123abcd@127.0.0.1:41234';

describe('clientRedisUrl', () => {
  let baseDir: string;

  beforeEach(() => {
    baseDir = mkdtempSync(join(tmpdir(), 'pushgate-client-redis-url-'));
  });

  afterEach(() => {
    rmSync(baseDir, { recursive: true, force: true });
  });

  function writeUrlFile(content: string): void {
    const dataDir = join(baseDir, EMBEDDED_REDIS_DIR);
    mkdirSync(dataDir, { recursive: true });
    writeFileSync(join(dataDir, 'url'), content);
  }

  it('uses redis.url when it is set, even where a pushgate start runs', () => {
    writeUrlFile(`${EMBEDDED_URL}\n`);
    const config = parseConfigText(CONFIG, 'f.yaml', { REDIS_URL: 'redis://r:6379' });
    expect(clientRedisUrl(config, 'status', baseDir)).toBe('redis://r:6379');
  });

  it('finds the url, password included, that pushgate start wrote in its data folder', () => {
    const dataDir = join(baseDir, EMBEDDED_REDIS_DIR);
    mkdirSync(dataDir, { recursive: true });
    writeEmbeddedRedisUrl(dataDir, EMBEDDED_URL);
    const config = parseConfigText(CONFIG, 'f.yaml', {});
    expect(clientRedisUrl(config, 'sync', baseDir)).toBe(EMBEDDED_URL);
  });

  it('without either, says to set REDIS_URL or to run from the folder of pushgate start', () => {
    const config = parseConfigText(CONFIG, 'f.yaml', {});
    const run = (): string => clientRedisUrl(config, 'status', baseDir);
    expect(run).toThrow(ConfigError);
    expect(run).toThrow(
      /redis\.url is not set: pushgate status reads the Redis of the running receiver; set REDIS_URL/,
    );
    expect(run).toThrow(join(baseDir, '.pushgate', 'redis', 'url'));
  });

  it('refuses a url file that holds no redis:// URL, without repeating what it holds', () => {
    writeUrlFile('not a url with secret-ish content\n');
    const config = parseConfigText(CONFIG, 'f.yaml', {});
    expect(() => clientRedisUrl(config, 'status', baseDir)).toThrow(
      new ConfigError(
        `${join(baseDir, '.pushgate', 'redis', 'url')} does not hold a redis:// URL: delete it, or set REDIS_URL`,
      ),
    );
  });
});
