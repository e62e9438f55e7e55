import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';

/** Where `pushgate start` keeps its private redis-server, relative to the folder it runs in. */
export const EMBEDDED_REDIS_DIR = path.join('.pushgate', 'redis');

/** The embedded Redis's URL, password included, for `status` and `sync` run from the same folder. */
const URL_FILE = 'url';

export function embeddedRedisDir(baseDir: string = process.cwd()): string {
  return path.resolve(baseDir, EMBEDDED_REDIS_DIR);
}

export function embeddedRedisUrlFile(dataDir: string): string {
  return path.join(dataDir, URL_FILE);
}

/**
 * Written to a temporary file created 0600 (never readable by others, not even for a moment)
 * and renamed over the old one, so a reader sees the previous URL or the new one, never half.
 */
export function writeEmbeddedRedisUrl(dataDir: string, url: string): void {
  const file = embeddedRedisUrlFile(dataDir);
  const temporary = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fd = openSync(temporary, 'wx', 0o600);
  try {
    writeSync(fd, `${url}\n`);
  } finally {
    closeSync(fd);
  }
  try {
    renameSync(temporary, file);
  } catch (error) {
    rmSync(temporary, { force: true });
    throw error;
  }
}

/** The URL a running `pushgate start` wrote, or undefined when none runs from this folder. */
export function readEmbeddedRedisUrl(dataDir: string): string | undefined {
  try {
    return readFileSync(embeddedRedisUrlFile(dataDir), 'utf8').trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

export function removeEmbeddedRedisUrl(dataDir: string): void {
  rmSync(embeddedRedisUrlFile(dataDir), { force: true });
}
