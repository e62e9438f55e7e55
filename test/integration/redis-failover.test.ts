import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { cliConfigText, runBuiltCli } from '../helpers/cli.js';
import { githubHeaders, githubPush } from '../fixtures/github/payloads.js';
import { freePort, startRedis, waitUntilAnswers, type TestRedis } from '../helpers/redis.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';
import { until } from '../helpers/until.js';
import { GITHUB_REPO, startReceiver, type Receiver } from './receiver-harness.js';

let primary: TestRedis;
let standby: TestRedis;
let endpoint: TcpProxy;
let receiver: Receiver;

beforeAll(async () => {
  primary = await startRedis();
  standby = await startRedis();
  // The managed service's primary endpoint: one address, moved to the new primary by a failover.
  endpoint = await startTcpProxy(primary.port);
  receiver = await startReceiver(`redis://127.0.0.1:${endpoint.port}`);
});

afterAll(async () => {
  await receiver?.close();
  await endpoint?.close();
  await primary?.stop();
  await standby?.stop();
});

async function push(): Promise<number> {
  const body = JSON.stringify(githubPush({ repository: GITHUB_REPO, branch: 'env/staging' }));
  const response = await fetch(`${receiver.url}/webhooks/github`, {
    method: 'POST',
    body,
    headers: githubHeaders('github-secret', body),
  });
  return response.status;
}

async function replicaOf(server: TestRedis, master: TestRedis | null): Promise<void> {
  const client = new Redis(server.url);
  try {
    await (master ? client.replicaof('127.0.0.1', master.port) : client.replicaof('NO', 'ONE'));
  } finally {
    client.disconnect();
  }
}

it('takes webhooks again after a failover demotes the primary its connection was open to (READONLY)', async () => {
  expect(await push()).toBe(202);
  // Failover: the standby is promoted, the endpoint moves to it, the old primary becomes its
  // replica and refuses writes on the connections still open to it.
  await replicaOf(standby, null);
  endpoint.retarget(standby.port);
  await replicaOf(primary, standby);
  await until(async () => (await push()) === 202, 10_000);
  const standbyClient = new Redis(standby.url);
  try {
    // Queued on the new primary.
    expect(await standbyClient.dbsize()).toBeGreaterThan(0);
  } finally {
    standbyClient.disconnect();
  }
});

it('refuses a URL naming a Redis Sentinel at start, saying redis.url must reach the master (exit 2)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pushgate-sentinel-'));
  const port = await freePort();
  // Sentinel rewrites its configuration file: it must be its own, writable.
  writeFileSync(
    join(dir, 'sentinel.conf'),
    `port ${port}\nbind 127.0.0.1\nsentinel monitor mymaster 127.0.0.1 ${primary.port} 1\n`,
  );
  writeFileSync(join(dir, 'pushgate.yaml'), cliConfigText());
  const sentinel = spawn('redis-server', [join(dir, 'sentinel.conf'), '--sentinel'], { stdio: 'ignore' });
  try {
    await waitUntilAnswers(port, undefined, 10_000);
    const { PUSHGATE_CONFIG: _config, ...env } = process.env;
    const run = await runBuiltCli(['status', '--config', join(dir, 'pushgate.yaml')], {
      env: { ...env, REDIS_URL: `redis://127.0.0.1:${port}` },
      timeoutMs: 20_000,
    });
    expect(run.code, run.stderr).toBe(2);
    expect(run.stderr).toContain(
      `Redis at 127.0.0.1:${port} is a Redis Sentinel, not a Redis server: redis.url must reach the master itself`,
    );
  } finally {
    sentinel.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
});

it('refuses a URL naming a read-only replica at start, saying redis.url must reach the primary (exit 2)', async () => {
  const replica = await startRedis();
  const dir = mkdtempSync(join(tmpdir(), 'pushgate-replica-'));
  try {
    await replicaOf(replica, standby);
    writeFileSync(join(dir, 'pushgate.yaml'), cliConfigText());
    const { PUSHGATE_CONFIG: _config, ...env } = process.env;
    const run = await runBuiltCli(['status', '--config', join(dir, 'pushgate.yaml')], {
      env: { ...env, REDIS_URL: replica.url },
      timeoutMs: 20_000,
    });
    expect(run.code, run.stderr).toBe(2);
    expect(run.stderr).toContain(
      `Redis at 127.0.0.1:${replica.port} is a read-only replica: redis.url must reach the primary`,
    );
  } finally {
    await replica.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
