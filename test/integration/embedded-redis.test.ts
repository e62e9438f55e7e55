import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  startEmbeddedRedis,
  REDIS_NOT_FOUND_HINT,
  type EmbeddedRedis,
} from '../../src/lib/embedded-redis.js';
import { createLogger, silentLogger } from '../../src/lib/logger.js';
import { childrenRunning, processAlive } from '../helpers/process.js';

const logger = silentLogger();

function portAccepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function passwordOf(url: string): string {
  return decodeURIComponent(new URL(url).password);
}

/** The first answer of a client that sends PING without authenticating. */
function pingWithoutPassword(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let answer = '';
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.setEncoding('utf8').on('data', (chunk: string) => {
      answer += chunk;
      if (!answer.includes('\r\n')) return;
      socket.end();
      resolve(answer.split('\r\n')[0]!);
    });
    socket.on('error', reject);
  });
}

async function until(
  condition: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('embedded redis-server', () => {
  let dir: string;
  const started: EmbeddedRedis[] = [];

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'pushgate-embedded-redis-'));
  });

  afterEach(async () => {
    await Promise.all(started.splice(0).map((redis) => redis.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  async function start(dataDir = join(dir, 'data')): Promise<EmbeddedRedis> {
    const redis = await startEmbeddedRedis({ dataDir, logger });
    started.push(redis);
    return redis;
  }

  it('answers PING on a loopback port, creates its data folder, and closes the port on stop', async () => {
    const redis = await start();
    expect(redis.url).toMatch(/^redis:\/\/:[0-9a-f]{64}@127\.0\.0\.1:\d+$/);
    expect(existsSync(join(dir, 'data'))).toBe(true);

    const client = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 0 });
    await client.connect();
    expect(await client.ping()).toBe('PONG');
    expect(await client.config('GET', 'maxmemory-policy')).toEqual(['maxmemory-policy', 'noeviction']);
    expect(await client.config('GET', 'appendonly')).toEqual(['appendonly', 'yes']);
    expect(await client.config('GET', 'bind')).toEqual(['bind', '127.0.0.1']);
    client.disconnect();

    await redis.stop();
    expect(await portAccepts(redis.port)).toBe(false);
    expect(processAlive(redis.pid)).toBe(false);
  });

  it('closes a data folder that an older version left readable to others (0755 → 0700)', async () => {
    const dataDir = join(dir, 'data');
    mkdirSync(dataDir, { mode: 0o755 });
    chmodSync(dataDir, 0o755);

    await start(dataDir);

    expect(statSync(dataDir).mode & 0o777).toBe(0o700);
  });

  it("logs redis-server's start-up banner at debug level, not as warnings", async () => {
    const lines: { level: string; redis?: string }[] = [];
    const capturing = createLogger({
      level: 'debug',
      destination: { write: (line: string) => void lines.push(JSON.parse(line) as (typeof lines)[number]) },
    });
    const redis = await startEmbeddedRedis({ dataDir: join(dir, 'data'), logger: capturing });
    started.push(redis);
    await redis.stop();

    const banner =
      /Redis is starting|Redis version=|Configuration loaded|Server initialized|Reading config from stdin/;
    expect(lines.some((line) => line.level === 'debug' && banner.test(line.redis ?? ''))).toBe(true);
    expect(lines.filter((line) => line.level === 'warn' && banner.test(line.redis ?? ''))).toEqual([]);
  });

  it('keeps the data across a restart with the same folder (append-only file)', async () => {
    const first = await start();
    const writer = new Redis(first.url, { lazyConnect: true, maxRetriesPerRequest: 0 });
    await writer.connect();
    await writer.set('job', 'still here');
    writer.disconnect();
    await first.stop();

    const second = await start();
    expect(passwordOf(second.url)).not.toBe(passwordOf(first.url));
    const reader = new Redis(second.url, { lazyConnect: true, maxRetriesPerRequest: 0 });
    await reader.connect();
    expect(await reader.get('job')).toBe('still here');
    reader.disconnect();
  });

  it('refuses a client without the password (NOAUTH) and serves one with the returned url', async () => {
    const redis = await start();

    expect(await pingWithoutPassword(redis.port)).toMatch(/^-NOAUTH /);
    const anonymous = new Redis({
      host: '127.0.0.1',
      port: redis.port,
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      // Its ready check (INFO) would be refused too, and ioredis would close the connection.
      enableReadyCheck: false,
    });
    await anonymous.connect();
    await expect(anonymous.get('job')).rejects.toThrow(/NOAUTH/);
    anonymous.disconnect();

    const client = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 0 });
    await client.connect();
    expect(await client.ping()).toBe('PONG');
    client.disconnect();
  });

  it('keeps the password off the command line of redis-server', async () => {
    const redis = await start();
    const cmdline = readFileSync(`/proc/${redis.pid}/cmdline`, 'utf8');
    expect(cmdline).toContain('redis-server');
    expect(cmdline).not.toContain(passwordOf(redis.url));
  });

  it("keeps pushgate's secrets out of the environment of the server's watchdog", async () => {
    const secret = 'ghp_embeddedRedisMustNotHoldThis';
    process.env.GIT_TOKEN = secret;
    try {
      await start();
      const watchdogs = (await childrenRunning(process.pid, 'sh')).filter((pid) =>
        readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('pushgate-redis-watchdog'),
      );
      expect(watchdogs.length).toBeGreaterThan(0);
      // redis-server writes its title over its own environment, so /proc shows the watchdog's only.
      for (const pid of watchdogs) {
        const environ = readFileSync(`/proc/${pid}/environ`, 'utf8');
        expect(environ).toContain('PATH=');
        expect(environ).not.toContain(secret);
      }
    } finally {
      delete process.env.GIT_TOKEN;
    }
  });

  it('holds its url in a 0600 file of the data folder while running and removes it on stop', async () => {
    const redis = await start();
    expect(redis.urlFile).toBe(join(dir, 'data', 'url'));
    expect(statSync(redis.urlFile).mode & 0o777).toBe(0o600);
    expect(readFileSync(redis.urlFile, 'utf8').trim()).toBe(redis.url);

    await redis.stop();
    expect(existsSync(redis.urlFile)).toBe(false);
  });

  it('removes its url file when the server dies by itself', async () => {
    const redis = await start();
    process.kill(redis.pid, 'SIGKILL');
    await until(() => !existsSync(redis.urlFile), 10_000, `${redis.urlFile} to be removed`);
  });

  it('never logs the password, not even at debug level with the server output', async () => {
    const lines: string[] = [];
    const capturing = createLogger({
      level: 'debug',
      destination: { write: (line: string) => void lines.push(line) },
    });
    const redis = await startEmbeddedRedis({ dataDir: join(dir, 'data'), logger: capturing });
    started.push(redis);
    await redis.stop();

    expect(lines.length).toBeGreaterThan(0);
    expect(lines.join('')).not.toContain(passwordOf(redis.url));
  });

  it('fails with the install hint when redis-server is not on PATH', async () => {
    const emptyDir = join(dir, 'empty-bin');
    mkdirSync(emptyDir);
    await expect(
      startEmbeddedRedis({ dataDir: join(dir, 'data'), logger, env: { PATH: emptyDir } }),
    ).rejects.toThrow(REDIS_NOT_FOUND_HINT);
    expect(REDIS_NOT_FOUND_HINT).toContain('apt-get install redis-server');
  });

  it('refuses a second server on a data folder that a live server uses', async () => {
    await start();
    await expect(start()).rejects.toThrow(/already uses/);
  });

  it('stops the server when its parent process is killed with SIGKILL', async () => {
    // The compiled module: a separate Node process owns the server, then dies without any cleanup.
    const modulePath = fileURLToPath(new URL('../../dist/src/lib/embedded-redis.js', import.meta.url));
    if (!existsSync(modulePath)) throw new Error(`${modulePath} is missing: run npm run build first`);
    const script = `
      const { startEmbeddedRedis } = await import(${JSON.stringify(modulePath)});
      const { silentLogger } = await import(${JSON.stringify(modulePath.replace('embedded-redis.js', 'logger.js'))});
      const redis = await startEmbeddedRedis({ dataDir: ${JSON.stringify(join(dir, 'orphan'))}, logger: silentLogger() });
      process.stdout.write(JSON.stringify({ pid: redis.pid, port: redis.port }) + '\\n');
      setInterval(() => undefined, 1000);
    `;
    const parent = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const line = await new Promise<string>((resolve, reject) => {
      let out = '';
      parent.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        out += chunk;
        if (out.includes('\n')) resolve(out.split('\n')[0]!);
      });
      parent.once('exit', (code) => reject(new Error(`parent exited early with ${code}`)));
    });
    const { pid, port } = JSON.parse(line) as { pid: number; port: number };
    expect(await portAccepts(port)).toBe(true);
    const urlFile = join(dir, 'orphan', 'url');
    expect(existsSync(urlFile)).toBe(true);

    parent.kill('SIGKILL');
    await until(() => !processAlive(pid), 15_000, `redis-server ${pid} to stop after its parent died`);
    expect(await portAccepts(port)).toBe(false);
    // status and sync must not find a server that is gone.
    expect(existsSync(urlFile)).toBe(false);
  });
});
