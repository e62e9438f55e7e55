import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, cliConfigText, runBuiltCli, type CliRun } from '../helpers/cli.js';
import { createEnvRepo } from '../helpers/env-repo.js';
import { createTestNamespace, kubeconfigPathFromTest } from '../helpers/kube.js';
import { startRedis, uniquePrefix, type TestRedis } from '../helpers/redis.js';

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

function runCli(args: string[], env: NodeJS.ProcessEnv): Promise<CliRun> {
  return runBuiltCli(args, { env });
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

describe('a Redis URL that cannot be parsed', () => {
  it('check, serve and status exit 2 naming the file and redis.url, without the password', async () => {
    const env = cliEnv({ REDIS_URL: 'redis://user:s3cret@127.0.0.1:notaport' });
    for (const command of ['check', 'serve', 'status']) {
      const run = await runBuiltCli([command, '--config', configFile], { env, timeoutMs: 15_000 });
      expect(run.code).toBe(2);
      expect(run.stderr).toContain(
        `${configFile}: redis.url: is not a valid URL: the port must be a number from 1 to 65535 (and a / ? or # in the password must be percent-encoded)`,
      );
      expect(run.stderr + run.stdout).not.toContain('s3cret');
    }
  });
});

/** One environment on a good cluster, and three clusters render and the worker could not load. */
function clustersConfigText(): string {
  // The context names a user the file lacks: client-go refuses it, rather than go out anonymous.
  const missingUser = join(dir, 'missing-user.kubeconfig');
  writeFileSync(
    missingUser,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'c', cluster: { server: 'https://127.0.0.1:1' } }],
      users: [{ name: 'deployer', user: { token: 't' } }],
      contexts: [{ name: 'ctx', context: { cluster: 'c', user: 'deployr' } }],
      'current-context': 'ctx',
    }),
  );
  return cliConfigText({ prefix: uniquePrefix('cli-clusters') }).replace(
    'clusters:\n  - name: local\n',
    [
      'clusters:',
      '  - name: local',
      `    kubeconfig: ${kubeconfigPathFromTest()}`,
      '  - name: missing-file',
      '    kubeconfig: /nope/kubeconfig',
      '  - name: missing-context',
      `    kubeconfig: ${kubeconfigPathFromTest()}`,
      '    context: nope',
      '  - name: missing-user',
      `    kubeconfig: ${missingUser}`,
      '',
    ].join('\n'),
  );
}

describe('kubeconfigs that cannot be loaded', () => {
  it('check warns once per such cluster, naming it and the reason, and still exits 0', async () => {
    const file = join(dir, 'clusters.yaml');
    writeFileSync(file, clustersConfigText());

    const run = await runCli(['check', '--config', file], cliEnv({ REDIS_URL: redis.url }));

    expect(run.code).toBe(0);
    expect(run.stdout).toContain('valid, 1 environment(s), 4 cluster(s)');
    const warnings = run.stderr.split('\n').filter((line) => line.startsWith('warning: cluster '));
    expect(warnings).toHaveLength(3);
    expect(warnings[0]).toContain(
      "warning: cluster missing-file: cannot load kubeconfig: ENOENT: no such file or directory, open '/nope/kubeconfig'",
    );
    expect(warnings[1]).toContain(
      'warning: cluster missing-context: context "nope" is not in the kubeconfig',
    );
    expect(warnings[2]).toBe(
      'warning: cluster missing-user: user "deployr" was not found for context "ctx" (render and deploys from this machine will fail)',
    );
  });

  it('the worker logs one warning per such cluster when it starts', async () => {
    const file = join(dir, 'clusters-worker.yaml');
    writeFileSync(file, clustersConfigText());
    const child: ChildProcess = spawn(process.execPath, [CLI, 'worker', '--config', file], {
      env: cliEnv({ REDIS_URL: redis.url, PUSHGATE_CACHE_DIR: join(dir, 'cache'), LOG_LEVEL: 'info' }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
    try {
      const deadline = Date.now() + 20_000;
      while (!output.includes('deploy worker ready')) {
        if (child.exitCode !== null) throw new Error(`pushgate worker exited early:\n${output}`);
        if (Date.now() > deadline) throw new Error(`pushgate worker not ready in time:\n${output}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);

    const warnings = output
      .split('\n')
      .filter((line) => line.includes('cluster kubeconfig cannot be loaded'))
      .map((line) => JSON.parse(line) as { level: string; cluster: string; err: string });
    expect(warnings.map((warning) => [warning.level, warning.cluster])).toEqual([
      ['warn', 'missing-file'],
      ['warn', 'missing-context'],
      ['warn', 'missing-user'],
    ]);
    expect(warnings[0]?.err).toContain("open '/nope/kubeconfig'");
    expect(warnings[1]?.err).toContain('context "nope" is not in the kubeconfig');
  });
});

describe('status when Redis cannot be used', () => {
  const PASSWORD = 'the-right-password';
  let port: number;
  let locked: TestRedis;

  beforeAll(async () => {
    locked = await startRedis({ password: PASSWORD });
    port = locked.port;
  });

  afterAll(() => locked.stop());

  it('names a wrong password as such (WRONGPASS), without printing it', async () => {
    const run = await runCli(
      ['status', '--config', configFile],
      cliEnv({ REDIS_URL: `redis://:not-the-password@127.0.0.1:${port}` }),
    );

    expect(run.code).toBe(1);
    expect(run.stderr).toBe(
      `pushgate status: Redis at 127.0.0.1:${port} refused the user name or password of the URL ` +
        '(WRONGPASS invalid username-password pair or user is disabled.)\n',
    );
  });

  it('sync names the refused password too, not only that Redis is unavailable', async () => {
    const run = await runCli(
      ['sync', 'staging', '--config', configFile],
      cliEnv({ REDIS_URL: `redis://:not-the-password@127.0.0.1:${port}` }),
    );

    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`Redis at 127.0.0.1:${port} refused the user name or password of the URL`);
    expect(run.stderr).not.toContain('not-the-password');
  });

  it('with --json, a refused password is an unavailable error naming it, the password left out', async () => {
    const run = await runCli(
      ['sync', 'staging', '--json', '--config', configFile],
      cliEnv({ REDIS_URL: `redis://:not-the-password@127.0.0.1:${port}` }),
    );

    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(JSON.parse(run.stderr)).toEqual({
      error: {
        code: 'unavailable',
        message:
          `cannot sync staging: Redis at 127.0.0.1:${port} refused the user name or password of the URL ` +
          '(WRONGPASS invalid username-password pair or user is disabled.)',
      },
    });
    expect(run.stderr).not.toContain('not-the-password');
  });

  it('says Redis wants a password when the URL gives none (NOAUTH)', async () => {
    const run = await runCli(
      ['status', '--config', configFile],
      cliEnv({ REDIS_URL: `redis://127.0.0.1:${port}` }),
    );

    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`pushgate status: Redis at 127.0.0.1:${port} wants a password (NOAUTH)`);
  });

  it('fails a rediss:// URL at a plain port with one message, no stack trace', async () => {
    const run = await runCli(
      ['status', '--config', configFile],
      cliEnv({ REDIS_URL: `rediss://:${PASSWORD}@127.0.0.1:${port}` }),
    );

    expect(run.code).toBe(1);
    const lines = run.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      new RegExp(
        `^pushgate status: Redis did not answer within 5000 ms \\(127\\.0\\.0\\.1:${port}: .+; the URL is rediss://`,
      ),
    );
    expect(run.stderr).not.toContain(PASSWORD);
  });
});

describe('render --show-secrets', () => {
  it('render prints Secret values only with --show-secrets, an option of render alone', async () => {
    const repo = await createEnvRepo({ branch: 'env/staging' });
    const namespace = await createTestNamespace('render-secrets');
    try {
      await repo.commit({
        'manifests/s.yaml':
          'apiVersion: v1\nkind: Secret\nmetadata: {name: creds}\nstringData: {password: hunter2-hunter2}\n',
      });
      const file = join(dir, 'render.yaml');
      writeFileSync(
        file,
        clustersConfigText()
          .replace('https://git.example.invalid/acme/env-config.git', repo.url)
          .replace(
            '    cluster: local\n',
            `    cluster: local\n    path: manifests\n    namespace: ${namespace.name}\n`,
          ),
      );
      const env = cliEnv({ PUSHGATE_CACHE_DIR: join(dir, 'cache') });

      const hidden = await runCli(['render', 'staging', '--config', file], env);
      const shown = await runCli(['render', 'staging', '--show-secrets', '--config', file], env);
      const elsewhere = await runCli(['check', '--show-secrets', '--config', file], env);
      const help = await runCli(['render', '--help'], env);

      expect(hidden.code).toBe(0);
      expect(hidden.stdout).toMatch(/password: ["']\[redacted: 15 bytes\]["']/);
      expect(hidden.stdout).not.toContain('hunter2');
      expect(shown.code).toBe(0);
      expect(shown.stdout).toContain('password: hunter2-hunter2');
      expect(elsewhere.code).toBe(2);
      expect(elsewhere.stderr).toContain('--show-secrets');
      expect(help.stdout).toContain('--show-secrets');
    } finally {
      await namespace.cleanup();
      await repo.remove();
    }
  });
});
