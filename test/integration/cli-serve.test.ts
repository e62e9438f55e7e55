import { spawn, type ChildProcess } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { request } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { githubHeaders, githubPush } from '../fixtures/github/payloads.js';
import { CLI, cliConfigText, runBuiltCli, type CliRun } from '../helpers/cli.js';
import { freePort, startRedis, uniquePrefix, type TestRedis } from '../helpers/redis.js';

const SECRET = 'cli-secret';

let redis: TestRedis;
let dir: string;
let configFile: string;
const children: ChildProcess[] = [];

function cliEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const { PUSHGATE_CONFIG: _config, GITHUB_WEBHOOK_SECRET: _secret, PORT: _port, ...rest } = process.env;
  return { ...rest, REDIS_URL: redis.url, GITHUB_WEBHOOK_SECRET: SECRET, LOG_LEVEL: 'info', ...extra };
}

function runCli(args: string[], env = cliEnv()): Promise<CliRun> {
  return runBuiltCli(args, { env });
}

interface Served {
  child: ChildProcess;
  url: string;
  output: () => string;
  exited: Promise<number | null>;
}

/** `pushgate serve` as a child process; resolves once it logs the address it listens on. */
function serve(env = cliEnv(), config = configFile): Promise<Served> {
  const child = spawn(process.execPath, [CLI, 'serve', '--config', config], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let output = '';
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start:\n${output}`)), 15_000);
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
      const match = /"url":"(http:\/\/[^"]+)".*"msg":"pushgate serve listening"/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve({ child, url: match[1]!, output: () => output, exited });
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited with ${code} before listening:\n${output}`));
    });
  });
}

/** The JSON log lines of a process's output. */
function logLines(output: string): Record<string, unknown>[] {
  return output
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first (npm test does)`);
  redis = await startRedis();
  dir = mkdtempSync(join(tmpdir(), 'pushgate-cli-'));
  configFile = join(dir, 'pushgate.yaml');
  writeFileSync(
    configFile,
    cliConfigText({
      prefix: uniquePrefix('cli'),
      environmentLines: ['path: clusters/staging', 'namespace: apps', 'prune: false'],
    }),
  );
});

afterAll(async () => {
  for (const child of children)
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await redis.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('pushgate check', () => {
  it('prints the environments table and exits 0 for a valid configuration', async () => {
    const run = await runCli(['check', '--config', configFile]);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`${configFile}: valid, 1 environment(s), 1 cluster(s)`);
    expect(run.stdout).toMatch(/ENVIRONMENT\s+REPO\s+BRANCH\s+PATH\s+CLUSTER\s+NAMESPACE\s+PRUNE/);
    expect(run.stdout).toMatch(
      /staging\s+github acme\/env-config\s+env\/staging\s+clusters\/staging\s+local\s+apps\s+no/,
    );
  });

  it('exits 2 naming the file, the field and the reason for an invalid configuration', async () => {
    const invalid = join(dir, 'invalid.yaml');
    writeFileSync(invalid, cliConfigText().replace('    branch: env/staging\n', ''));
    const run = await runCli(['check', '--config', invalid]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`${invalid}: environments[0].branch: Required`);
  });

  it('exits 2 when a ${VAR} is not set, naming it', async () => {
    const withVariable = join(dir, 'branch-variable.yaml');
    writeFileSync(withVariable, cliConfigText().replace('branch: env/staging', 'branch: ${STAGING_BRANCH}'));
    const run = await runCli(['check', '--config', withVariable]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('environments[0].branch: environment variable STAGING_BRANCH is not set');
  });

  it('accepts an unset REDIS_URL as pushgate start does, warning that serve and worker need it', async () => {
    const { REDIS_URL: _url, ...env } = cliEnv();
    const run = await runCli(['check', '--config', configFile], env);
    expect(run.code).toBe(0);
    expect(run.stderr).toContain('warning: redis.url is not set (REDIS_URL is not set)');
    // A secret file mounted empty is named, not taken for no variable.
    const emptyFile = join(dir, 'redis-url-empty');
    writeFileSync(emptyFile, '');
    const fromEmptyFile = await runCli(['check', '--config', configFile], {
      ...env,
      REDIS_URL_FILE: emptyFile,
    });
    expect(fromEmptyFile.stderr).toContain(
      `warning: redis.url is not set (REDIS_URL_FILE: ${emptyFile} is empty)`,
    );
    const serve = await runCli(['serve', '--config', configFile], env);
    expect(serve.code).toBe(2);
    expect(serve.stderr).toContain('redis.url');
  });

  it('names the variable the configuration reads redis.url from, when it is not set', async () => {
    const otherVariable = join(dir, 'redis-variable.yaml');
    const text = cliConfigText().replace(/url: .*REDIS_URL.*/, 'url: ${QUEUE_REDIS_URL}');
    expect(text).toContain('${QUEUE_REDIS_URL}');
    writeFileSync(otherVariable, text);
    const run = await runCli(['check', '--config', otherVariable]);
    expect(run.code).toBe(0);
    expect(run.stderr).toContain('warning: redis.url is not set (QUEUE_REDIS_URL is not set)');
    // The shipped configuration's form, with an empty default.
    writeFileSync(otherVariable, text.replace('${QUEUE_REDIS_URL}', '${QUEUE_REDIS_URL:-}'));
    const withDefault = await runCli(['check', '--config', otherVariable]);
    expect(withDefault.stderr).toContain('warning: redis.url is not set (QUEUE_REDIS_URL is not set)');
  });

  it('warns where commit statuses will link when a status token is set without server.publicUrl', async () => {
    const warning =
      'warning: server.publicUrl is not set; commit statuses link to each job at http://localhost:';
    const withToken = await runCli(['check', '--config', configFile], cliEnv({ GITHUB_TOKEN: 'ghs_x' }));
    expect(withToken.code).toBe(0);
    expect(withToken.stderr).toContain(warning);
    expect(withToken.stderr).not.toContain('ghs_x');
    const withoutToken = await runCli(['check', '--config', configFile]);
    expect(withoutToken.stderr).not.toContain(warning);
  });

  it('warns that commits get no status when the environments’ provider has no token', async () => {
    const without = await runCli(['check', '--config', configFile]);
    expect(without.code).toBe(0);
    expect(without.stderr).toMatch(
      /warning: GITHUB_TOKEN is not set; commits of \S.* \(github\) will get no commit status/,
    );
    const withToken = await runCli(['check', '--config', configFile], cliEnv({ GITHUB_TOKEN: 'ghs_x' }));
    expect(withToken.stderr).not.toContain('GITHUB_TOKEN is not set');
  });

  it('names the _FILE variable, and says its file is empty, when a secret is missing because of it', async () => {
    const empty = join(dir, 'empty-secret');
    writeFileSync(empty, '\n');
    const { GITHUB_WEBHOOK_SECRET: _secret, ...env } = cliEnv();
    const run = await runCli(['check', '--config', configFile], {
      ...env,
      GITHUB_WEBHOOK_SECRET_FILE: empty,
      GITHUB_TOKEN_FILE: empty,
    });
    expect(run.code).toBe(0);
    expect(run.stderr).toContain(
      `warning: GITHUB_WEBHOOK_SECRET_FILE: ${empty} is empty; GitHub webhooks will be refused (401)`,
    );
    expect(run.stderr).toContain(
      `warning: GITHUB_TOKEN_FILE: ${empty} is empty; commits of staging (github) will get no commit status until it holds a token`,
    );
    expect(run.stderr).not.toMatch(/GITHUB_(WEBHOOK_SECRET|TOKEN) is not set/);
  });

  it('reads $PUSHGATE_CONFIG when --config is not given', async () => {
    const run = await runCli(['check'], cliEnv({ PUSHGATE_CONFIG: configFile }));
    expect(run.code).toBe(0);
  });

  it('reads config/pushgate.yaml when PUSHGATE_CONFIG is empty, as when it is unset', async () => {
    mkdirSync(join(dir, 'config'), { recursive: true });
    copyFileSync(configFile, join(dir, 'config/pushgate.yaml'));
    const run = await runBuiltCli(['check'], { env: cliEnv({ PUSHGATE_CONFIG: '' }), cwd: dir });
    expect(run.stderr).not.toContain('cannot read');
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('config/pushgate.yaml: valid, 1 environment(s)');
  });
});

describe('pushgate serve and status', () => {
  it('answers /healthz, queues a signed push, and stops with exit 0 on SIGTERM', async () => {
    const server = await serve();
    const health = await fetch(`${server.url}/healthz`);
    expect(health.status).toBe(200);

    const body = JSON.stringify(githubPush({ repository: 'acme/env-config', branch: 'env/staging' }));
    const webhook = await fetch(`${server.url}/webhooks/github`, {
      method: 'POST',
      body,
      headers: githubHeaders(SECRET, body),
    });
    expect(webhook.status).toBe(202);
    const { jobs } = (await webhook.json()) as { jobs: { id: string }[] };
    const jobId = jobs[0]!.id;

    const shown = await runCli(['status', jobId, '--config', configFile]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(new RegExp(`job\\s+${jobId}`));
    expect(shown.stdout).toMatch(/state\s+queued/);

    const json = await runCli(['status', jobId, '--json', '--config', configFile]);
    expect(JSON.parse(json.stdout)).toMatchObject({ id: jobId, environment: 'staging', state: 'queued' });

    const latest = await runCli(['status', '--config', configFile]);
    expect(latest.code).toBe(0);
    expect(latest.stdout).toMatch(new RegExp(`staging\\s+${jobId}\\s+queued`));

    // --json shows environments as GET /environments/:name does.
    const api = (await (await fetch(`${server.url}/environments/staging`)).json()) as Record<string, unknown>;
    const latestJson = await runCli(['status', '--json', '--config', configFile]);
    const { environments } = JSON.parse(latestJson.stdout) as { environments: Record<string, unknown>[] };
    const { jobs: apiJobs, ...apiEnvironment } = api;
    expect(environments[0]).toMatchObject(apiEnvironment);
    expect((environments[0]!.jobs as unknown[])[0]).toEqual((apiJobs as unknown[])[0]);

    const unknown = await runCli(['status', 'no-such-job', '--config', configFile]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('job "no-such-job" not found');

    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);
    expect(server.output()).toContain('"msg":"stopped"');
  });

  it('lets a request in flight finish after SIGTERM', async () => {
    const server = await serve();
    const url = new URL(server.url);
    const body = JSON.stringify(githubPush({ repository: 'acme/env-config', branch: 'env/staging' }));
    const answer = new Promise<number>((resolve, reject) => {
      const req = request(
        {
          host: url.hostname,
          port: url.port,
          path: '/webhooks/github',
          method: 'POST',
          // 100-continue: the server's "continue" proves it has the request before SIGTERM is sent.
          headers: {
            ...githubHeaders(SECRET, body),
            'content-length': Buffer.byteLength(body),
            expect: '100-continue',
          },
        },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.on('continue', () => {
        server.child.kill('SIGTERM');
        req.end(body);
      });
    });
    expect(await answer).toBe(202);
    expect(await server.exited).toBe(0);
  });

  it('warns at startup, as check does, that GitHub webhooks will be refused without GITHUB_WEBHOOK_SECRET', async () => {
    const warning = 'GITHUB_WEBHOOK_SECRET is not set; GitHub webhooks will be refused (401)';
    const { GITHUB_WEBHOOK_SECRET: _secret, ...env } = cliEnv();
    const check = await runCli(['check', '--config', configFile], env);
    expect(check.stderr).toContain(`warning: ${warning}`);

    const withoutSecret = await serve(env);
    withoutSecret.child.kill('SIGTERM');
    expect(await withoutSecret.exited).toBe(0);
    const lines = logLines(withoutSecret.output());
    expect(lines).toContainEqual(
      expect.objectContaining({ level: 'warn', provider: 'github', msg: warning }),
    );

    const withSecret = await serve();
    withSecret.child.kill('SIGTERM');
    expect(await withSecret.exited).toBe(0);
    expect(withSecret.output()).not.toContain(warning);
  });

  it('logs where to send webhooks and read the status API when it starts listening', async () => {
    const server = await serve();
    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);
    const listening = logLines(server.output()).find((line) => line.msg === 'pushgate serve listening');
    expect(listening).toMatchObject({
      url: server.url,
      githubWebhookUrl: `${server.url}/webhooks/github`,
      gitlabWebhookUrl: `${server.url}/webhooks/gitlab`,
      statusUrl: `${server.url}/environments`,
    });
    // Loopback: only this machine reaches the status API, so no warning about it.
    expect(server.output()).not.toContain('PUSHGATE_API_TOKEN');
  });

  it('warns that the status API is unauthenticated on a non-loopback address without PUSHGATE_API_TOKEN', async () => {
    const allInterfaces = join(dir, 'all-interfaces.yaml');
    writeFileSync(
      allInterfaces,
      readFileSync(configFile, 'utf8').replace('host: 127.0.0.1', 'host: 0.0.0.0'),
    );
    const { PUSHGATE_API_TOKEN: _token, ...env } = cliEnv();

    const open = await serve(env, allInterfaces);
    open.child.kill('SIGTERM');
    expect(await open.exited).toBe(0);
    const lines = logLines(open.output());
    expect(lines.find((line) => line.msg === 'pushgate serve listening')).toMatchObject({
      githubWebhookUrl: expect.stringMatching(/^http:\/\/localhost:\d+\/webhooks\/github$/) as unknown,
    });
    const warning = lines.find(
      (line) => line.level === 'warn' && String(line.msg).includes('PUSHGATE_API_TOKEN'),
    );
    expect(warning).toMatchObject({ address: '0.0.0.0' });
    expect(warning!.msg).toContain('POST /environments/:name/sync');

    const guarded = await serve({ ...env, PUSHGATE_API_TOKEN: 'api-token' }, allInterfaces);
    guarded.child.kill('SIGTERM');
    expect(await guarded.exited).toBe(0);
    expect(guarded.output()).not.toContain('PUSHGATE_API_TOKEN');
  });

  it('exits 1 at once when it cannot listen, with Redis dialled (port taken, address not here)', async () => {
    const running = await serve();
    const port = new URL(running.url).port;
    const taken = await runBuiltCli(['serve', '--config', configFile], {
      env: cliEnv({ PORT: port }),
      timeoutMs: 15_000,
    });
    expect(taken.code).toBe(1);
    expect(taken.stderr).toContain('EADDRINUSE');
    running.child.kill('SIGTERM');
    expect(await running.exited).toBe(0);

    // 192.0.2.1 (TEST-NET-1, RFC 5737) is an address no machine of these tests has.
    const elsewhere = join(dir, 'address-not-here.yaml');
    writeFileSync(elsewhere, readFileSync(configFile, 'utf8').replace('host: 127.0.0.1', 'host: 192.0.2.1'));
    const notHere = await runBuiltCli(['serve', '--config', elsewhere], { env: cliEnv(), timeoutMs: 15_000 });
    expect(notHere.code).toBe(1);
    expect(notHere.stderr).toContain('EADDRNOTAVAIL');
  });

  it('status exits 1 with a message when Redis cannot be reached', async () => {
    const run = await runCli(
      ['status', '--config', configFile],
      cliEnv({ REDIS_URL: 'redis://127.0.0.1:1' }),
    );
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('Redis did not answer');
  });

  it('sync and resume exit 1 saying, as status does, that Redis did not answer', async () => {
    const port = await freePort();
    const env = cliEnv({ REDIS_URL: `redis://127.0.0.1:${port}` });
    const commands = ['sync', 'resume'] as const;
    const runs = await Promise.all(
      commands.map((command) => runCli([command, 'staging', '--config', configFile], env)),
    );
    commands.forEach((command, index) => {
      expect(runs[index]!.code).toBe(1);
      expect(runs[index]!.stderr).toMatch(
        new RegExp(
          `^pushgate ${command}: cannot ${command} staging: Redis did not answer within 5000 ms \\(127\\.0\\.0\\.1:${port}: connect ECONNREFUSED [^\\n]*\\)\\n$`,
        ),
      );
    });
  });

  it('client commands say once, with no stack trace, that a Redis which accepts but never answers did not answer', async () => {
    // A listener that accepts and never writes: a hung redis-server (kill -STOP) looks the same.
    const silent = createServer((socket) => socket.on('error', () => undefined));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as AddressInfo;
    try {
      const env = cliEnv({ REDIS_URL: `redis://127.0.0.1:${port}` });
      const commands = [
        ['status'],
        ['status', 'some-job'],
        ['sync', 'staging'],
        ['resume', 'staging'],
        ['suspend', 'staging'],
      ];
      const runs = await Promise.all(
        commands.map((args) => runBuiltCli([...args, '--config', configFile], { env, timeoutMs: 40_000 })),
      );
      runs.forEach((run, index) => {
        const command = commands[index]![0]!;
        expect(run.code).toBe(1);
        expect(run.stderr).toMatch(
          new RegExp(
            `^pushgate ${command}: (cannot ${command} staging: )?Redis did not answer within 5000 ms \\(127\\.0\\.0\\.1:${port}[^\\n]*\\)\\n$`,
          ),
        );
      });
    } finally {
      silent.close();
    }
  });
});
