import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, cliConfigText } from '../helpers/cli.js';
import { startRedis, uniquePrefix, type TestRedis } from '../helpers/redis.js';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

let redis: TestRedis;
let dir: string;
let configFile: string;

/** The environment of a user's shell, less anything of pushgate's, plus `extra`. */
function cliEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const rest = Object.fromEntries(
    Object.entries(process.env).filter(
      ([name]) => !/^(PUSHGATE_|REDIS_URL|GITHUB_|GITLAB_|GIT_TOKEN|PORT$)/.test(name),
    ),
  );
  return { ...rest, LOG_LEVEL: 'warn', ...extra };
}

function runCli(args: string[], env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first (npm test does)`);
  redis = await startRedis();
  dir = mkdtempSync(join(tmpdir(), 'pushgate-cli-config-'));
  configFile = join(dir, 'pushgate.yaml');
  writeFileSync(configFile, cliConfigText({ prefix: uniquePrefix('cli-config') }));
});

afterAll(async () => {
  await redis.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('${VAR} read from VAR_FILE', () => {
  it('status reaches the Redis whose URL is in REDIS_URL_FILE', async () => {
    const urlFile = join(dir, 'redis-url');
    writeFileSync(urlFile, `${redis.url}\n`);

    const run = await runCli(['status', '--config', configFile], cliEnv({ REDIS_URL_FILE: urlFile }));

    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/staging\s+-\s+\(no jobs\)/);
  });

  it('exits 2 naming both variables when REDIS_URL and REDIS_URL_FILE are set', async () => {
    const urlFile = join(dir, 'redis-url');
    writeFileSync(urlFile, `${redis.url}\n`);

    const run = await runCli(
      ['status', '--config', configFile],
      cliEnv({ REDIS_URL: redis.url, REDIS_URL_FILE: urlFile }),
    );

    expect(run.code).toBe(2);
    expect(run.stderr).toContain('redis.url: REDIS_URL and REDIS_URL_FILE are both set');
  });
});
