import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCheck } from '../../../src/commands/check.js';

describe('pushgate check on a fleet of environments', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'pushgate-check-fleet-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('names a few environments that will get no commit status, and counts the rest', async () => {
    const environments = Array.from(
      { length: 40 },
      (_, i) => `  - name: env-${i}
    repo: { provider: github, name: acme/env-${i}, url: https://git.example.invalid/acme/env-${i}.git }
    branch: env/production
    cluster: local
    namespace: env-${i}
`,
    ).join('');
    const config = path.join(dir, 'pushgate.yaml');
    await writeFile(
      config,
      `redis: { url: redis://127.0.0.1:1 }\nclusters:\n  - name: local\nenvironments:\n${environments}`,
    );
    let stderr = '';
    const errors = new PassThrough().on('data', (chunk: Buffer) => (stderr += chunk.toString()));

    const code = await runCheck({
      positionals: [],
      config,
      ref: undefined,
      wait: false,
      json: false,
      env: { GITHUB_WEBHOOK_SECRET: 'x' },
      stdout: new PassThrough(),
      stderr: errors,
    });

    expect(code).toBe(0);
    expect(stderr).toContain(
      'warning: GITHUB_TOKEN is not set; commits of env-0, env-1, env-2, env-3, env-4 and 35 more (github) will get no commit status\n',
    );
  });

  async function check(body: string, env: Record<string, string> = {}) {
    const config = path.join(dir, 'pushgate.yaml');
    await writeFile(config, `redis: { url: redis://127.0.0.1:1 }\nclusters:\n  - name: local\n${body}`);
    let stderr = '';
    const errors = new PassThrough().on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const result = runCheck({
      positionals: [],
      config,
      ref: undefined,
      wait: false,
      json: false,
      env: { GITHUB_WEBHOOK_SECRET: 'x', GITHUB_TOKEN: 'x', ...env },
      stdout: new PassThrough(),
      stderr: errors,
    });
    const code = await result;
    // No kubeconfig on this machine: that warning is another test's.
    const warnings = stderr
      .split('\n')
      .filter((line) => line.startsWith('warning: ') && !line.includes('kubeconfig'));
    return { code, warnings };
  }

  const environment = (name: string, fields: string) => `  - name: ${name}
    repo: { provider: github, name: acme/env, url: https://git.example.invalid/acme/env.git }
    branch: env/${name}
    cluster: local
    namespace: apps
${fields}`;

  it('warns about namespace policies that refuse what the environment deploys, and repository URLs git reads as folders', async () => {
    const { code, warnings } = await check(
      'server: { publicUrl: https://deploy.example.com }\nenvironments:\n' +
        environment('a', '    allow: { namespaces: [web] }\n') +
        environment('b', '    allow: { namespaces: [Apps, "app[s]"] }\n') +
        environment('c', '    allow: { namespaces: [] }\n') +
        environment('d', '    allow: { namespaces: ["apps", "apps-*"] }\n').replace(
          'https://git.example.invalid/acme/env.git',
          'github.com/acme/env',
        ),
    );

    expect(code).toBe(0);
    expect(warnings).toEqual([
      `warning: environments[0].allow.namespaces (web) does not match environment a's own namespace "apps": every object that names no namespace will be refused`,
      'warning: environments[1].allow.namespaces: "Apps", "app[s]" can match no namespace (names are lowercase letters, digits and "-"; * and ? are the only wildcards)',
      `warning: environments[1].allow.namespaces (Apps, app[s]) does not match environment b's own namespace "apps": every object that names no namespace will be refused`,
      'warning: environments[2].allow.namespaces is empty: environment c may deploy no namespaced object',
      `warning: environments[3].repo.url "github.com/acme/env" is neither a URL (https://…, ssh://…, file://…) nor scp-like (git@host:path): git reads it as a folder relative to the worker's working directory`,
    ]);
  });

  it('warns about credentials in a repository URL, pointing to GIT_TOKEN, and prints them nowhere', async () => {
    const token = 'glpat-Zq8s3cr3tT0k3n';
    const config = path.join(dir, 'pushgate.yaml');
    await writeFile(
      config,
      `redis: { url: redis://127.0.0.1:1 }
clusters:
  - name: local
environments:
  - name: a
    repo:
      provider: github
      name: acme/env
      url: https://oauth2:\${REPO_TOKEN}@gitlab.example.invalid/acme/env.git
    branch: env/a
    cluster: local
`,
    );
    let out = '';
    const stdout = new PassThrough().on('data', (chunk: Buffer) => (out += chunk.toString()));
    const stderr = new PassThrough().on('data', (chunk: Buffer) => (out += chunk.toString()));

    const code = await runCheck({
      positionals: [],
      config,
      ref: undefined,
      wait: false,
      json: false,
      env: { GITHUB_WEBHOOK_SECRET: 'x', GITHUB_TOKEN: 'x', REPO_TOKEN: token },
      stdout,
      stderr,
    });

    expect(code).toBe(0);
    expect(out).toContain(
      "warning: environments[0].repo.url has a user name and password in it: git is given the URL on its command line, where anyone on the worker's machine can read it (ps); " +
        'set https://gitlab.example.invalid/acme/env.git and the token in GIT_TOKEN or GIT_TOKEN_FILE, which git gets in its environment and sends only to that host when it asks\n',
    );
    expect(out).not.toContain(token);
    expect(out).not.toContain('oauth2');
  });

  it('warns that no environment is configured, and refuses (exit 2) the worker settings the worker would refuse', async () => {
    expect(await check('')).toEqual({
      code: 0,
      warnings: ['warning: no environments configured: nothing will be deployed'],
    });
    await expect(check('', { PUSHGATE_WORKER_CONCURRENCY: '0' })).rejects.toThrow(
      /PUSHGATE_WORKER_CONCURRENCY/,
    );
  });
});
