import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CommandArgs } from '../../src/commands/command.js';
import { runStatus } from '../../src/commands/status.js';
import { createKeys } from '../../src/queue/keys.js';
import { JobStore } from '../../src/status/job-store.js';
import { CLI, runBuiltCli, type CliRun } from '../helpers/cli.js';
import { startRedis, uniquePrefix, type TestRedis } from '../helpers/redis.js';

// Three environments with seven jobs each: more than the five `status` shows by default.
const ENVIRONMENTS = ['staging', 'production', 'canary'];
const JOBS_EACH = 7;

let redis: TestRedis;
let client: Redis;
let dir: string;
let configFile: string;
let prefix: string;

/** `<environment>-<n>`, n = 1 the oldest; each environment's job n received at minute n. */
function jobId(environment: string, n: number): string {
  return `${environment}-${n}`;
}

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first (npm test does)`);
  redis = await startRedis();
  client = new Redis(redis.url);
  dir = mkdtempSync(join(tmpdir(), 'pushgate-status-filters-'));
  prefix = uniquePrefix('status-filters');
  configFile = join(dir, 'pushgate.yaml');
  writeFileSync(
    configFile,
    [
      'redis:',
      `  url: ${redis.url}`,
      `  prefix: ${prefix}`,
      'clusters:',
      '  - name: local',
      'environments:',
      ...ENVIRONMENTS.flatMap((name) => [
        `  - name: ${name}`,
        `    repo: {provider: github, name: acme/env, url: https://git.example.invalid/acme/env.git}`,
        `    branch: env/${name}`,
        `    path: clusters/${name}`,
        '    cluster: local',
      ]),
      '',
    ].join('\n'),
  );
  const store = new JobStore(client, createKeys(prefix));
  for (const environment of ENVIRONMENTS) {
    for (let n = 1; n <= JOBS_EACH; n++) {
      const id = jobId(environment, n);
      await store.ensure({
        id,
        environment,
        trigger: { kind: 'manual' },
        receivedAt: `2026-12-01T10:0${n}:00.000Z`,
      });
      await store.update(id, {
        state: 'succeeded',
        sha: String(n).repeat(40),
        finishedAt: `2026-12-01T10:0${n}:30.000Z`,
      });
    }
    await store.recordFinished(environment, jobId(environment, JOBS_EACH), {
      sha: String(JOBS_EACH).repeat(40),
      at: `2026-12-01T10:0${JOBS_EACH}:30.000Z`,
    });
  }
});

afterAll(async () => {
  client.disconnect();
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function status(
  options: Partial<Pick<CommandArgs, 'positionals' | 'environments' | 'limit' | 'json'>> = {},
): Promise<string> {
  const stdout = new PassThrough();
  let out = '';
  stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  const code = await runStatus({
    positionals: [],
    config: configFile,
    ref: undefined,
    wait: false,
    json: false,
    env: { PATH: process.env.PATH, LOG_LEVEL: 'silent' },
    stdout,
    stderr: new PassThrough(),
    ...options,
  });
  expect(code).toBe(0);
  return out;
}

/** The environments table and the jobs table of `status` output. */
function tables(out: string): { environments: string[]; jobs: string[] } {
  const [environments = '', jobs = ''] = out.split('\n\n');
  return { environments: environments.split('\n').slice(1), jobs: jobs.split('\n').slice(1, -1) };
}

function firstColumn(lines: readonly string[]): string[] {
  return lines.map((line) => line.split(/\s+/)[0] ?? '');
}

function runCli(args: string[]): Promise<CliRun> {
  const { PUSHGATE_CONFIG: _config, REDIS_URL: _redis, ...rest } = process.env;
  return runBuiltCli(['status', ...args, '--config', configFile], {
    env: { ...rest, LOG_LEVEL: 'silent' },
    cwd: dir,
    timeoutMs: 15_000,
  });
}

describe('pushgate status --environment', () => {
  it('shows only the environments named, repeated or comma-separated, in the order of the config', async () => {
    const repeated = await status({ environments: ['canary', 'staging'] });
    const commas = await status({ environments: ['canary,staging'] });

    expect(commas).toBe(repeated);
    const { environments, jobs } = tables(repeated);
    expect(firstColumn(environments)).toEqual(['staging', 'canary']);
    expect(new Set(firstColumn(jobs))).toEqual(new Set(['staging', 'canary']));
    expect(repeated).not.toContain('production');
  });

  it('with --json, lists only those environments', async () => {
    const answer = JSON.parse(await status({ environments: ['production'], json: true })) as {
      environments: { name: string; jobs: { id: string }[] }[];
    };

    expect(answer.environments.map((environment) => environment.name)).toEqual(['production']);
    expect(answer.environments[0]?.jobs).toHaveLength(5);
  });

  it.each([
    [['--environment', 'prodution'], 'unknown environment "prodution"'],
    [['--environment', 'staging,prodution,qa'], 'unknown environments "prodution", "qa"'],
  ])('%j is bad usage (exit 2) naming what is wrong, and prints nothing', async (args, problem) => {
    const run = await runCli(args);

    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`pushgate status: ${problem}`);
    expect(run.stderr).toContain('configured: staging, production, canary');
    expect(run.stdout).toBe('');
  });

  it('with no name in it is bad usage (exit 2), not every environment', async () => {
    const run = await runCli(['--environment', ',']);

    expect(run.code).toBe(2);
    expect(run.stderr).toContain('pushgate status: --environment: give a name');
    expect(run.stdout).toBe('');
  });
});

describe('pushgate status --limit', () => {
  it('shows the 5 newest jobs of each environment by default, and N with --limit N', async () => {
    const byDefault = tables(await status({ environments: ['staging'] })).jobs;
    const two = tables(await status({ environments: ['staging'], limit: '2' })).jobs;
    const all = tables(await status({ environments: ['staging'], limit: '100' })).jobs;

    const ids = (lines: string[]) => lines.map((line) => line.split(/\s+/)[1]);
    expect(ids(byDefault)).toEqual([7, 6, 5, 4, 3].map((n) => jobId('staging', n)));
    expect(ids(two)).toEqual([jobId('staging', 7), jobId('staging', 6)]);
    expect(ids(all)).toHaveLength(JOBS_EACH);
  });

  it('0 prints the environments table alone: one line each, no job table', async () => {
    const out = await status({ limit: '0' });

    const lines = out.trimEnd().split('\n');
    expect(lines).toHaveLength(1 + ENVIRONMENTS.length);
    expect(lines[0]).toMatch(/^ENVIRONMENT\s+BRANCH\s+LAST APPLIED\s+APPLIED AT\s+LAST JOB\s+SUSPENDED$/);
    expect(firstColumn(lines.slice(1))).toEqual(ENVIRONMENTS);
    // Each newest job is still read: what the environment runs and how its last job ended.
    expect(lines[1]).toMatch(
      /^staging\s+env\/staging\s+7{12}\s+2026-12-01T10:07:30\.000Z\s+succeeded on 7{12}\s+-$/,
    );
    expect(out).not.toContain('(no jobs)');
  });

  it('0 with --json lists the environments as GET /environments does, without jobs', async () => {
    const answer = JSON.parse(await status({ limit: '0', json: true })) as {
      environments: Record<string, unknown>[];
    };

    expect(answer.environments.map((environment) => environment.name)).toEqual(ENVIRONMENTS);
    expect(answer.environments[0]).not.toHaveProperty('jobs');
    expect(answer.environments[0]).toMatchObject({
      lastJob: { id: jobId('staging', JOBS_EACH), state: 'succeeded' },
    });
  });

  it.each([['101'], ['x'], ['1.5'], ['']])('--limit %j is bad usage (exit 2)', async (limit) => {
    const run = await runCli(['--limit', limit]);

    expect(run.code).toBe(2);
    expect(run.stderr).toContain(
      `pushgate status: --limit ${JSON.stringify(limit)}: must be a whole number of jobs per environment from 0 to 100`,
    );
    expect(run.stdout).toBe('');
  });

  it('is refused with a JOB_ID (exit 2): one job has no environments to choose', async () => {
    const run = await runCli([jobId('staging', 1), '--limit', '1']);

    expect(run.code).toBe(2);
    expect(run.stderr).toContain('pushgate status: JOB_ID shows one job');
  });

  it('combines with --environment through the built CLI', async () => {
    const run = await runCli(['--environment', 'canary', '--limit', '1']);

    expect(run.code).toBe(0);
    const { environments, jobs } = tables(run.stdout);
    expect(firstColumn(environments)).toEqual(['canary']);
    expect(jobs).toHaveLength(1);
    expect(jobs[0]).toContain(jobId('canary', JOBS_EACH));
  });
});
