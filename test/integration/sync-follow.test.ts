import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { followDeploy, followJob } from '../../src/commands/sync.js';
import { waitForRedis } from '../../src/queue/connection.js';
import { connectProducer, type ProducerServices } from '../../src/runtime.js';
import { CLI, cliConfigText, runBuiltCli } from '../helpers/cli.js';
import { startRedis, uniquePrefix, type TestRedis } from '../helpers/redis.js';

let redis: TestRedis;
let services: ProducerServices;
let prefix: string;
let dir: string;

beforeAll(async () => {
  redis = await startRedis();
  prefix = uniquePrefix('follow');
  services = connectProducer({ url: redis.url, cluster: false }, prefix);
  await waitForRedis(services.redis, 5_000);
  dir = mkdtempSync(join(os.tmpdir(), 'pushgate-follow-'));
});
afterAll(async () => {
  await Promise.all(opened.map((own) => own.close()));
  await services.close();
  await redis.stop();
  rmSync(dir, { recursive: true, force: true });
});

const opened: ProducerServices[] = [];

/**
 * For a test of the built CLI: a configuration of its own (a queue prefix no other test
 * uses: a sync joins one still queued) and services on it.
 */
async function cliWorld(): Promise<{ configFile: string; own: ProducerServices }> {
  const ownPrefix = uniquePrefix('follow-cli');
  const configFile = join(dir, `${ownPrefix}.yaml`);
  writeFileSync(configFile, cliConfigText({ prefix: ownPrefix, url: redis.url }));
  const own = connectProducer({ url: redis.url, cluster: false }, ownPrefix);
  opened.push(own);
  await waitForRedis(own.redis, 5_000);
  return { configFile, own };
}

function collector() {
  const printed: string[] = [];
  const warned: string[] = [];
  return {
    printed,
    warned,
    out: { print: (line: string) => printed.push(line), warn: (line: string) => warned.push(line) },
  };
}

describe('pushgate sync --wait following its job', () => {
  it('rides out a Redis restart and reports the job as it ends', async () => {
    const { id } = await services.producer.enqueue('web', { kind: 'manual' });
    const { printed, warned, out } = collector();
    const following = followJob(services.store, id, out);
    await redis.kill();
    await expect.poll(() => warned.length, { timeout: 10_000 }).toBeGreaterThan(0);
    await redis.restart();
    await waitForRedis(services.redis, 10_000);
    // Redis restarted from its snapshot-less state: the test writes the record the worker would.
    await services.store.ensure({
      id,
      environment: 'web',
      trigger: { kind: 'manual' },
      receivedAt: new Date().toISOString(),
    });
    await services.store.update(id, { state: 'succeeded', finishedAt: new Date().toISOString() });

    const record = await following;

    expect(record.state).toBe('succeeded');
    expect(warned[0]).toMatch(/^Redis does not answer .*; still following job /);
    expect(warned).toContain('Redis answers again');
    expect(printed.at(-1)).toMatch(/^succeeded/);
  });

  it('follows a superseded job on to the deploy that took its place, and ends as it does', async () => {
    const newer = 'c'.repeat(40);
    const { id } = await services.producer.enqueue('web', { kind: 'manual' });
    // The worker's part: the sync's deploy is overtaken by a push of a newer commit, whose own
    // deploy then fails its health check.
    const pushed = await services.producer.enqueue('web', {
      kind: 'webhook',
      provider: 'github',
      sha: newer,
    });
    await services.store.update(id, {
      state: 'superseded',
      finishedAt: new Date().toISOString(),
      supersededBy: newer,
      message: `applied; superseded by ${newer} during the health wait`,
    });
    const { printed, out } = collector();
    const following = followDeploy(services.store, id, out);
    await services.store.update(pushed.id, {
      state: 'running',
      sha: newer,
      startedAt: new Date().toISOString(),
    });
    await services.store.update(pushed.id, {
      state: 'failed',
      finishedAt: new Date().toISOString(),
      error: 'health check timed out',
    });

    const record = await following;

    expect(record).toMatchObject({ id: pushed.id, state: 'failed' });
    expect(printed).toContain(`following job ${pushed.id}, the deploy of ${newer.slice(0, 12)}`);
  });

  it('ends with a superseded job whose successor is no longer known', async () => {
    const { id } = await services.producer.enqueue('web', { kind: 'manual' });
    await services.store.update(id, {
      state: 'superseded',
      finishedAt: new Date().toISOString(),
      supersededBy: 'd'.repeat(40),
    });
    const { out } = collector();

    expect(await followDeploy(services.store, id, out)).toMatchObject({ id, state: 'superseded' });
  });

  it('gives up, saying why, when the job has no record any more', async () => {
    const { id } = await services.producer.enqueue('web', { kind: 'manual' });
    const { out } = collector();
    const following = followJob(services.store, id, out, { redisGoneMs: 60_000, recordGoneMs: 300 });
    await services.redis.del(`${services.keys.job(id)}`);

    await expect(following).rejects.toThrow(`job ${id} has no record any more: Redis lost it`);
  });

  it('goes on following when its reader stops reading (`| head -1`), and exits as the job ended', async () => {
    const { configFile, own } = await cliWorld();
    const child = spawn(process.execPath, [CLI, 'sync', 'staging', '--wait', '--config', configFile], {
      env: { ...process.env, LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    // Like `head -1`: read the job id, then close the pipe.
    const id = await new Promise<string>((resolve) =>
      child.stdout.setEncoding('utf8').once('data', (chunk: string) => resolve(chunk.split('\n')[0]!)),
    );
    child.stdout.destroy();
    // The worker's part: the job runs, then fails; each change is a line sync --wait prints.
    await own.store.update(id, { state: 'running', startedAt: new Date().toISOString() });
    await own.store.update(id, { state: 'failed', finishedAt: new Date().toISOString(), error: 'boom' });

    expect(await exited).toBe(1);
    expect(stderr).not.toMatch(/EPIPE|Unhandled|at /);
  });

  it.each([
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const)('stopped by %s, says the job continues and exits %i', async (signal, code) => {
    const { configFile, own } = await cliWorld();
    const child = spawn(process.execPath, [CLI, 'sync', 'staging', '--wait', '--config', configFile], {
      env: { ...process.env, LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    const id = await new Promise<string>((resolve) =>
      child.stdout.setEncoding('utf8').once('data', (chunk: string) => resolve(chunk.split('\n')[0]!)),
    );

    child.kill(signal);

    expect(await exited).toBe(code);
    expect(stderr).toBe(`pushgate sync: stopped following job ${id}; it continues (pushgate status ${id})\n`);
    expect(await own.store.get(id)).toMatchObject({ state: 'queued' });
  });

  it('stops following after --timeout when no worker takes the job, exits 1 and says how to follow it', async () => {
    const { configFile } = await cliWorld();
    const started = Date.now();

    const run = await runBuiltCli(
      ['sync', 'staging', '--wait', '--timeout', '1s', '--json', '--config', configFile],
      { env: { ...process.env, LOG_LEVEL: 'warn' }, timeoutMs: 20_000 },
    );

    expect(run.code).toBe(1);
    expect(Date.now() - started).toBeLessThan(15_000);
    const [queued, last, ...more] = run.stdout.trim().split('\n');
    expect(more).toEqual([]);
    const id = (JSON.parse(queued!) as { jobs: { id: string }[] }).jobs[0]!.id;
    // The second line is the job as the wait left it, where the finished job would be.
    expect(JSON.parse(last!)).toMatchObject({ id, environment: 'staging', state: 'queued' });
    // Why it exits 1, as one JSON line on stderr (--json): stdout keeps the job lines alone.
    expect(JSON.parse(run.stderr)).toEqual({
      error: {
        code: 'timeout',
        message: `job ${id} still queued after 1s; follow it with: pushgate status ${id}`,
      },
    });
  });

  it('with --json, a deploy that failed is a deploy_failed error on stderr, the failed job the last line on stdout', async () => {
    const { configFile, own } = await cliWorld();
    const child = spawn(
      process.execPath,
      [CLI, 'sync', 'staging', '--wait', '--json', '--config', configFile],
      { env: { ...process.env, LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    const firstLine = new Promise<string>((resolve) =>
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        stdout += chunk;
        if (stdout.includes('\n')) resolve(stdout.split('\n')[0]!);
      }),
    );
    const id = (JSON.parse(await firstLine) as { jobs: { id: string }[] }).jobs[0]!.id;
    // The worker's part: the job runs, then fails.
    await own.store.update(id, { state: 'running', startedAt: new Date().toISOString() });
    await own.store.update(id, {
      state: 'failed',
      finishedAt: new Date().toISOString(),
      error: 'manifests/web.yaml document 1: metadata.name is required',
    });

    expect(await exited).toBe(1);
    const lines = stdout.trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(JSON.parse(lines[1]!)).toMatchObject({ id, state: 'failed' });
    expect(JSON.parse(stderr)).toEqual({
      error: {
        code: 'deploy_failed',
        message: `job ${id} failed: manifests/web.yaml document 1: metadata.name is required`,
      },
    });
  });

  it('with --json, stopped by SIGTERM: an interrupted error on stderr, exit 143', async () => {
    const { configFile } = await cliWorld();
    const child = spawn(
      process.execPath,
      [CLI, 'sync', 'staging', '--wait', '--json', '--config', configFile],
      { env: { ...process.env, LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    const line = await new Promise<string>((resolve) =>
      child.stdout.setEncoding('utf8').once('data', (chunk: string) => resolve(chunk.split('\n')[0]!)),
    );
    const id = (JSON.parse(line) as { jobs: { id: string }[] }).jobs[0]!.id;

    child.kill('SIGTERM');

    expect(await exited).toBe(143);
    expect(JSON.parse(stderr)).toEqual({
      error: {
        code: 'interrupted',
        message: `stopped following job ${id}; it continues (pushgate status ${id})`,
      },
    });
  });
});

describe('pushgate sync while an earlier sync waits', () => {
  const syncJson = (configFile: string) =>
    runBuiltCli(['sync', 'staging', '--json', '--config', configFile], {
      env: { ...process.env, LOG_LEVEL: 'warn' },
      timeoutMs: 20_000,
    });
  const jobIdOf = (stdout: string) => (JSON.parse(stdout) as { jobs: { id: string }[] }).jobs[0]!.id;

  it('syncs from several CLI processes and a receiver at once queue one job, all answered with it', async () => {
    const { configFile, own } = await cliWorld();

    const [cli, receiver] = await Promise.all([
      Promise.all([1, 2, 3, 4].map(() => syncJson(configFile))),
      Promise.all([1, 2, 3, 4].map(() => own.producer.enqueue('staging', { kind: 'manual' }))),
    ]);

    const ids = new Set([...cli.map((run) => jobIdOf(run.stdout)), ...receiver.map((job) => job.id)]);
    expect(cli.map((run) => run.code)).toEqual([0, 0, 0, 0]);
    expect(ids.size).toBe(1);
    expect(await own.store.list({ environment: 'staging', limit: 10 })).toHaveLength(1);
    // Those answered with an earlier sync's job say so, to whoever reads stderr.
    const [id] = [...ids];
    const told = cli.filter((run) => run.stderr.includes('queued earlier has not started yet'));
    expect(told.length + receiver.filter((job) => !job.created).length).toBe(7);
    expect(await own.store.get(id!)).toMatchObject({ state: 'queued', trigger: { kind: 'manual' } });
  });

  it('a sync once the job has started gets a job of its own', async () => {
    const { configFile, own } = await cliWorld();
    const first = await syncJson(configFile);
    const id = jobIdOf(first.stdout);
    // The worker's part: it takes the job, then fetches the branch head.
    await own.store.update(id, { state: 'running', attempts: 1, startedAt: new Date().toISOString() });

    const second = await syncJson(configFile);
    const third = await syncJson(configFile);

    expect(second.code).toBe(0);
    expect(jobIdOf(second.stdout)).not.toBe(id);
    expect(second.stderr).toBe('');
    expect(jobIdOf(third.stdout)).toBe(jobIdOf(second.stdout));
    expect(third.stderr).toContain(
      'pushgate sync: a sync of staging queued earlier has not started yet; it deploys the branch head as it is then, so this is that job',
    );
  });
});
