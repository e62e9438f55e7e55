import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CommandArgs } from '../../src/commands/command.js';
import { runStatus } from '../../src/commands/status.js';
import { runCommand } from '../../src/commands/run-command.js';
import { runResume, runSync } from '../../src/commands/sync.js';
import { createKeys } from '../../src/queue/keys.js';
import { JobStore } from '../../src/status/job-store.js';
import { StatusOutbox } from '../../src/status/reporters/status-outbox.js';
import { startRedis, uniquePrefix, type TestRedis } from '../helpers/redis.js';

// What a job record holds comes from outside: the pusher's name from the webhook payload, the
// delivery id from a header, file names and API server messages in the error. Printed raw,
// an escape sequence in any of them is acted on by the operator's terminal.
const ESC = '\u001b';
const PUSHER = `mallory${ESC}]0;owned${ESC}\\\nstate        succeeded`;
const ERROR = `m/${ESC}[2J${ESC}[31m.yaml document 1: invalid\nsecond line \u202eevil`;

let redis: TestRedis;
let client: Redis;
let dir: string;
let configFile: string;
let prefix: string;

beforeAll(async () => {
  redis = await startRedis();
  client = new Redis(redis.url);
  dir = mkdtempSync(join(tmpdir(), 'pushgate-status-output-'));
  prefix = uniquePrefix('status-output');
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
      '  - name: staging',
      '    repo: {provider: gitlab, name: acme/env, url: https://git.example.invalid/acme/env.git}',
      '    branch: env/staging',
      '    cluster: local',
      '',
    ].join('\n'),
  );
});

afterAll(async () => {
  client.disconnect();
  await redis.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function jobWithHostileText(id: string): Promise<void> {
  const store = new JobStore(client, createKeys(prefix));
  await store.claimMany([
    {
      id,
      environment: 'staging',
      trigger: { kind: 'webhook', provider: 'gitlab', deliveryId: `d${ESC}[8m`, pusher: PUSHER },
      receivedAt: new Date().toISOString(),
    },
  ]);
  await store.update(id, {
    state: 'failed',
    finishedAt: new Date().toISOString(),
    error: ERROR,
    resources: [{ apiVersion: 'v1', kind: 'ConfigMap', name: `web${ESC}[1m`, action: 'failed' }],
  });
}

function commandArgs(positionals: string[], stdout: PassThrough): CommandArgs {
  return {
    positionals,
    config: configFile,
    ref: undefined,
    wait: true,
    json: false,
    env: { PATH: process.env.PATH, LOG_LEVEL: 'silent' },
    stdout,
    stderr: new PassThrough(),
  };
}

function capture(): { stdout: PassThrough; text: () => string } {
  const stdout = new PassThrough();
  let out = '';
  stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  return { stdout, text: () => out };
}

function expectPrintable(out: string): void {
  expect(out).not.toContain(ESC);
  expect(out).not.toContain('\u202e');
  // The newline in the pusher's name does not forge a line of its own.
  expect(out).not.toMatch(/^state {8}succeeded/m);
}

describe('pushgate status and sync on a terminal', () => {
  it('status JOB shows control characters from the record escaped, not raw', async () => {
    await jobWithHostileText('hostile-1');
    const { stdout, text } = capture();

    const code = await runStatus(commandArgs(['hostile-1'], stdout));

    expect(code).toBe(0);
    const out = text();
    expectPrintable(out);
    expect(out).toContain('by mallory\\u001b]0;owned\\u001b\\\\u000astate');
    expect(out).toContain('delivery d\\u001b[8m');
    expect(out).toContain('web\\u001b[1m');
    // A multi-line error keeps its lines.
    expect(out).toContain(
      'error        m/\\u001b[2J\\u001b[31m.yaml document 1: invalid\nsecond line \\u202eevil',
    );
  });

  it('status JOB shows what became of the commit status, as GET /jobs/:id does', async () => {
    const keys = createKeys(prefix);
    const store = new JobStore(client, keys);
    const sha = 'c'.repeat(40);
    await store.claimMany([
      {
        id: 'reported-1',
        environment: 'staging',
        trigger: { kind: 'manual' },
        receivedAt: new Date().toISOString(),
      },
    ]);
    await store.update('reported-1', { state: 'succeeded', sha, finishedAt: new Date().toISOString() });
    await new StatusOutbox(client, keys).offer({
      environment: 'staging',
      sha,
      provider: 'github',
      repo: 'acme/env-config',
      ref: 'env/staging',
      state: 'success',
      description: 'Deployed',
      targetUrl: 'https://deploy.example.com/jobs/reported-1',
      jobId: 'reported-1',
      quiet: false,
    });
    const shown = capture();
    const json = capture();

    expect(await runStatus(commandArgs(['reported-1'], shown.stdout))).toBe(0);
    expect(await runStatus({ ...commandArgs(['reported-1'], json.stdout), json: true })).toBe(0);

    expect(shown.text()).toMatch(/^commit {7}success \(not delivered yet\)$/m);
    expect(JSON.parse(json.text())).toMatchObject({ commitStatus: { state: 'success', delivered: false } });
  });

  it('status shows a job waiting out its retry backoff as retrying, not merely queued', async () => {
    const store = new JobStore(client, createKeys(prefix));
    await store.claimMany([
      {
        id: 'retrying-1',
        environment: 'staging',
        trigger: { kind: 'manual' },
        receivedAt: new Date().toISOString(),
      },
    ]);
    await store.update('retrying-1', {
      state: 'queued',
      attempts: 3,
      error: 'connect ECONNREFUSED 127.0.0.1:1',
    });
    const { stdout, text } = capture();

    expect(await runStatus(commandArgs([], stdout))).toBe(0);

    expect(text()).toMatch(/staging\s+retrying-1\s+queued \(attempt 3 failed, retrying\)/);
  });

  it('status first shows what each environment runs, and the commit its last job tried', async () => {
    const store = new JobStore(client, createKeys(prefix));
    const [live, tried] = ['a'.repeat(40), 'b'.repeat(40)];
    await store.recordFinished('staging', 'applied-1', { sha: live, at: '2026-12-01T10:00:00.000Z' });
    await store.claimMany([
      {
        id: 'broken-1',
        environment: 'staging',
        trigger: { kind: 'manual' },
        receivedAt: new Date().toISOString(),
      },
    ]);
    await store.update('broken-1', {
      state: 'failed',
      sha: tried,
      error: 'workloads not ready after 300s',
      finishedAt: new Date().toISOString(),
    });
    const { stdout, text } = capture();

    expect(await runStatus(commandArgs([], stdout))).toBe(0);

    const [environments] = text().split('\n\n');
    expect(environments).toMatch(
      /^ENVIRONMENT\s+BRANCH\s+LAST APPLIED\s+APPLIED AT\s+LAST JOB\s+SUSPENDED\n/,
    );
    expect(environments).toMatch(
      /\nstaging\s+env\/staging\s+aaaaaaaaaaaa\s+2026-12-01T10:00:00\.000Z\s+failed on bbbbbbbbbbbb\s+-$/,
    );
  });

  it('status shows, for a newest job that was superseded, the job that took its place', async () => {
    const store = new JobStore(client, createKeys(prefix));
    const sha = 'e'.repeat(40);
    const at = (minutes: number): string => new Date(Date.now() + minutes * 60_000).toISOString();
    await store.claimMany([
      { id: 'deploying-1', environment: 'staging', trigger: { kind: 'manual' }, receivedAt: at(10) },
      { id: 'resync-1', environment: 'staging', trigger: { kind: 'reconcile' }, receivedAt: at(11) },
    ]);
    await store.update('deploying-1', { state: 'running', sha, startedAt: at(10) });
    await store.update('resync-1', { state: 'superseded', finishedAt: at(11), supersededBy: sha });
    await store.update('deploying-1', { state: 'failed', finishedAt: at(12), error: 'not ready' });

    for (const limit of ['0', '5']) {
      const { stdout, text } = capture();
      expect(await runStatus({ ...commandArgs([], stdout), limit })).toBe(0);
      expect(text().split('\n\n')[0]).toMatch(/^staging\s.*\sfailed on eeeeeeeeeeee\s+-$/m);
    }
  });

  it('resume --json shows the suspension it lifted as the API does, null when there was none', async () => {
    const store = new JobStore(client, createKeys(prefix));
    const suspension = await store.suspensions.suspend('staging', 'incident 42');
    const answers: unknown[] = [];
    for (let time = 0; time < 2; time++) {
      const { stdout, text } = capture();
      expect(await runResume({ ...commandArgs(['staging'], stdout), wait: false, json: true })).toBe(0);
      answers.push(JSON.parse(text()));
    }

    const job = {
      id: expect.any(String) as string,
      environment: 'staging',
      statusUrl: expect.any(String) as string,
    };
    expect(answers).toEqual([
      { jobs: [job], resumed: { at: suspension.at, reason: 'incident 42' } },
      { jobs: [job], resumed: null },
    ]);
  });

  it('sync --wait shows the error of the job it follows escaped, not raw', async () => {
    const store = new JobStore(client, createKeys(prefix));
    const { stdout, text } = capture();

    const running = runCommand('sync', runSync, commandArgs(['staging'], stdout));
    const deadline = Date.now() + 10_000;
    while (!text().includes('\n') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const id = text().split('\n')[0]!;
    await store.update(id, { state: 'failed', finishedAt: new Date().toISOString(), error: ERROR });
    const code = await running;

    expect(code).toBe(1);
    const out = text();
    expectPrintable(out);
    expect(out).toContain(
      'failed: m/\\u001b[2J\\u001b[31m.yaml document 1: invalid\nsecond line \\u202eevil',
    );
  });
});
