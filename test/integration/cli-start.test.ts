import { spawn, type ChildProcess } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CLI, cliConfigText } from '../helpers/cli.js';
import { processAlive } from '../helpers/process.js';
import { freePort, uniquePrefix } from '../helpers/redis.js';
import { until } from '../helpers/until.js';

const START_TIMEOUT_MS = 30_000;

interface LogLine {
  msg?: string;
  url?: string;
  pid?: number;
}

function cliEnv(): NodeJS.ProcessEnv {
  const { PUSHGATE_CONFIG: _config, REDIS_URL: _redis, PORT: _port, ...rest } = process.env;
  return { ...rest, GITHUB_WEBHOOK_SECRET: 'start-secret', LOG_LEVEL: 'info' };
}

function exitOf(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve(child.exitCode);
    child.once('close', (code) => resolve(code));
  });
}

describe('pushgate start with its own redis-server', () => {
  let dir: string;
  let configFile: string;
  let child: ChildProcess | undefined;

  beforeEach(() => {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first (npm test does)`);
    dir = mkdtempSync(join(tmpdir(), 'pushgate-cli-start-'));
    configFile = join(dir, 'pushgate.yaml');
    // `url: ${REDIS_URL}` with REDIS_URL unset: start runs its own redis-server, status finds it.
    writeFileSync(
      configFile,
      cliConfigText({ prefix: uniquePrefix('cli-start'), environmentLines: ['reconcileInterval: 0'] }),
    );
  });

  afterEach(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exitOf(child);
    }
    rmSync(dir, { recursive: true, force: true });
  });

  /** `pushgate start` run from `dir`; resolves with its output once it logs "pushgate started". */
  function start(env = cliEnv()): Promise<() => string> {
    const started = spawn(process.execPath, [CLI, 'start', '--config', configFile], {
      cwd: dir,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = started;
    let output = '';
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`start did not log "pushgate started":\n${output}`)),
        START_TIMEOUT_MS,
      );
      started.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
      started.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        output += chunk;
        if (!output.includes('"msg":"pushgate started"')) return;
        clearTimeout(timer);
        resolve(() => output);
      });
      void exitOf(started).then((code) => {
        clearTimeout(timer);
        reject(new Error(`start exited with ${code} before it started:\n${output}`));
      });
    });
  }

  function runStatus(): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const status = spawn(process.execPath, [CLI, 'status', '--config', configFile], {
      cwd: dir,
      env: cliEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    status.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    status.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    return exitOf(status).then((code) => ({ code, stdout, stderr }));
  }

  it(
    'exits instead of hanging when it cannot start, leaving no redis-server behind',
    async () => {
      const run = async (env: NodeJS.ProcessEnv) => {
        child = spawn(process.execPath, [CLI, 'start', '--config', configFile], { cwd: dir, env });
        let stderr = '';
        child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
        const code = await exitOf(child);
        return { code, stderr };
      };
      const badSetting = await run({ ...cliEnv(), PUSHGATE_GIT_FETCH_MAX_BYTES: '0' });
      expect(badSetting.code).toBe(2);
      expect(badSetting.stderr).toContain('PUSHGATE_GIT_FETCH_MAX_BYTES="0" must be a positive integer');

      const taken = createServer();
      await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
      try {
        const port = (taken.address() as AddressInfo).port;
        const portInUse = await run({ ...cliEnv(), PORT: String(port) });
        expect(portInUse.code).toBe(1);
        expect(portInUse.stderr).toContain('EADDRINUSE');
      } finally {
        taken.close();
      }
      // The embedded redis-server was stopped: its URL file is gone with it.
      expect(existsSync(join(dir, '.pushgate/redis/url'))).toBe(false);
    },
    START_TIMEOUT_MS,
  );

  it('answers /healthz, and 503 on /readyz, while the Redis of REDIS_URL does not answer', async () => {
    const [deadRedis, port] = [await freePort(), await freePort()];
    child = spawn(process.execPath, [CLI, 'start', '--config', configFile], {
      cwd: dir,
      env: { ...cliEnv(), REDIS_URL: `redis://127.0.0.1:${deadRedis}`, PORT: String(port) },
      stdio: 'ignore',
    });
    const answer = async (path: string) =>
      (await fetch(`http://127.0.0.1:${port}${path}`).catch(() => undefined))?.status;

    await until(async () => (await answer('/healthz')) === 200, START_TIMEOUT_MS);
    expect(await answer('/readyz')).toBe(503);
  });

  it('logs its Redis without the password, and status run from the same folder finds it', async () => {
    const output = await start();
    const urlFile = join(dir, '.pushgate', 'redis', 'url');
    expect(statSync(urlFile).mode & 0o777).toBe(0o600);
    const password = decodeURIComponent(new URL(readFileSync(urlFile, 'utf8').trim()).password);
    expect(password).toMatch(/^[0-9a-f]{64}$/);

    const startedLine = output()
      .split('\n')
      .find((line) => line.includes('"msg":"embedded redis-server started"'));
    expect(startedLine).toBeDefined();
    expect((JSON.parse(startedLine!) as LogLine).url).toMatch(/^redis:\/\/127\.0\.0\.1:\d+$/);
    expect(startedLine).not.toContain(password);

    const status = await runStatus();
    expect(status.stderr).toBe('');
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/staging\s+-\s+\(no jobs\)/);

    child!.kill('SIGTERM');
    expect(await exitOf(child!)).toBe(0);
    expect(existsSync(urlFile)).toBe(false);
    expect(output()).not.toContain(password);
  });

  it('logs where to send webhooks and read the status API in its "pushgate started" line', async () => {
    const output = await start();
    child!.kill('SIGTERM');
    expect(await exitOf(child!)).toBe(0);
    const startedLine = output()
      .split('\n')
      .find((line) => line.includes('"msg":"pushgate started"'));
    const { url } = JSON.parse(startedLine!) as LogLine;
    expect(JSON.parse(startedLine!)).toMatchObject({
      githubWebhookUrl: `${url}/webhooks/github`,
      gitlabWebhookUrl: `${url}/webhooks/gitlab`,
      statusUrl: `${url}/environments`,
    });
  });

  it('warns that GitHub webhooks will be refused when GITHUB_WEBHOOK_SECRET is not set', async () => {
    const { GITHUB_WEBHOOK_SECRET: _secret, ...env } = cliEnv();
    const output = await start(env);
    child!.kill('SIGTERM');
    expect(await exitOf(child!)).toBe(0);
    const warning = output()
      .split('\n')
      .find((line) => line.includes('"level":"warn"') && line.includes('GITHUB_WEBHOOK_SECRET'));
    expect(JSON.parse(warning!)).toMatchObject({
      provider: 'github',
      msg: 'GITHUB_WEBHOOK_SECRET is not set; GitHub webhooks will be refused (401)',
    });
  });
});

describe('npm start', () => {
  const root = fileURLToPath(new URL('../../', import.meta.url));
  let dir: string;
  let npm: ChildProcess | undefined;

  beforeEach(() => {
    // The project's package.json and dist/ in a folder of its own, so the embedded redis-server
    // keeps its data there and not in the checkout (npm runs scripts from the package folder).
    dir = mkdtempSync(join(tmpdir(), 'pushgate-npm-start-'));
    copyFileSync(join(root, 'package.json'), join(dir, 'package.json'));
    symlinkSync(join(root, 'dist'), join(dir, 'dist'));
    symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'));
    writeFileSync(
      join(dir, 'pushgate.yaml'),
      cliConfigText({ prefix: uniquePrefix('npm-start'), environmentLines: ['reconcileInterval: 0'] }),
    );
  });

  afterEach(async () => {
    // Whatever the outcome, nothing of the run survives it: npm and pushgate share a group.
    if (npm?.pid !== undefined) {
      try {
        process.kill(-npm.pid, 'SIGKILL');
      } catch {
        // already gone
      }
      await exitOf(npm);
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it(
    'SIGTERM to the npm process stops pushgate and its embedded redis-server',
    async () => {
      // --ignore-scripts skips prestart (the build): the test suite has built dist/ already.
      // detached: its own process group, as `setsid npm start`, so SIGTERM reaches npm alone.
      npm = spawn('npm', ['start', '--ignore-scripts'], {
        cwd: dir,
        detached: true,
        env: {
          ...cliEnv(),
          PUSHGATE_CONFIG: join(dir, 'pushgate.yaml'),
          npm_config_update_notifier: 'false',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      npm.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
      npm.stderr!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
      const until = async (what: string, condition: () => boolean): Promise<void> => {
        const deadline = Date.now() + START_TIMEOUT_MS;
        while (!condition()) {
          if (Date.now() > deadline) throw new Error(`npm start: no ${what} in time:\n${output}`);
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      };
      await until('"pushgate started"', () => output.includes('"msg":"pushgate started"'));
      const redisLine = output
        .split('\n')
        .find((line) => line.includes('"msg":"embedded redis-server started"'));
      const redisPid = (JSON.parse(redisLine!) as LogLine).pid!;
      expect(processAlive(redisPid)).toBe(true);

      npm.kill('SIGTERM');
      await until('"pushgate stopped"', () => output.includes('"msg":"pushgate stopped"'));
      await until('exit of the embedded redis-server', () => !processAlive(redisPid));
      expect(existsSync(join(dir, '.pushgate', 'redis', 'url'))).toBe(false);
    },
    3 * START_TIMEOUT_MS,
  );
});
