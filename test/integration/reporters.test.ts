import { afterEach, describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.js';
import { readSecrets } from '../../src/config/secrets.js';
import { silentLogger } from '../../src/lib/logger.js';
import { createCommitStatusReporter } from '../../src/status/reporters/commit-status-reporter.js';
import type { FakeProvider } from '../helpers/fake-github.js';
import { startFakeGithub } from '../helpers/fake-github.js';
import { startFakeGitlab } from '../helpers/fake-gitlab.js';

const SHA = '0123456789abcdef0123456789abcdef01234567';

function configFor(
  providerUrls: { github: string; gitlab: string },
  server = '{ port: 8080, publicUrl: "https://deploy.example.com/pushgate" }',
) {
  return parseConfigText(
    `
server: ${server}
providers:
  github: { apiUrl: "${providerUrls.github}" }
  gitlab: { url: "${providerUrls.gitlab}" }
clusters: [{ name: local }]
environments:
  - name: production
    repo: { provider: github, name: acme/env-config, url: "file:///nowhere" }
    branch: env/production
    cluster: local
  - name: staging
    repo: { provider: gitlab, name: acme/platform/env-config, url: "file:///nowhere" }
    branch: env/staging
    cluster: local
`,
    'test.yaml',
    {},
  );
}

describe('commit status reporters (local servers speaking the providers’ documented API)', () => {
  const servers: FakeProvider[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((server) => server.close()));
  });

  async function setup(retry = { attempts: 3, retryDelayMs: 10 }, server?: string) {
    const github = await startFakeGithub();
    const gitlab = await startFakeGitlab();
    servers.push(github, gitlab);
    const config = configFor({ github: github.url, gitlab: gitlab.url }, server);
    const secrets = readSecrets({ GITHUB_TOKEN: 'ghs_statustoken', GITLAB_TOKEN: 'glpat-statustoken' });
    const reporter = createCommitStatusReporter(config, secrets, silentLogger(), {
      timeoutMs: 2_000,
      ...retry,
    });
    const env = (name: string) => config.environments.find((e) => e.name === name)!;
    return { github, gitlab, reporter, env };
  }

  it('posts pending then success to GitHub with context, target URL and token', async () => {
    const { github, reporter, env } = await setup();

    reporter.report({
      environment: env('production'),
      sha: SHA,
      state: 'pending',
      description: 'Deploying',
      jobId: 'j-1',
    });
    reporter.report({
      environment: env('production'),
      sha: SHA,
      state: 'success',
      description: 'Deployed: 3 objects',
      jobId: 'j-1',
    });
    await reporter.flush();

    expect(github.requests.map((r) => [r.method, r.path])).toEqual([
      ['POST', `/repos/acme/env-config/statuses/${SHA}`],
      ['POST', `/repos/acme/env-config/statuses/${SHA}`],
    ]);
    expect(github.requests.map((r) => r.body)).toEqual([
      {
        state: 'pending',
        context: 'pushgate/production',
        target_url: 'https://deploy.example.com/pushgate/jobs/j-1',
        description: 'Deploying',
      },
      {
        state: 'success',
        context: 'pushgate/production',
        target_url: 'https://deploy.example.com/pushgate/jobs/j-1',
        description: 'Deployed: 3 objects',
      },
    ]);
    expect(github.requests[0]!.headers.authorization).toBe('token ghs_statustoken');
  });

  it('links to the status URL the job was answered with, else to the local receiver (SPEC §4)', async () => {
    const { github, gitlab, reporter, env } = await setup(undefined, '{ port: 8080 }');
    const answered = 'http://pushgate.internal:8080/jobs/j-9';
    reporter.report({
      environment: env('production'),
      sha: SHA,
      state: 'pending',
      description: 'Deploying',
      jobId: 'j-9',
      statusUrl: answered,
    });
    reporter.report({
      environment: env('staging'),
      sha: SHA,
      state: 'pending',
      description: 'Deploying',
      jobId: 'j-10',
    });
    await reporter.flush();

    expect(github.requests).toHaveLength(1);
    expect(github.requests[0]!.body).toMatchObject({ target_url: answered });
    expect(gitlab.requests).toHaveLength(1);
    expect(gitlab.requests[0]!.body).toMatchObject({
      name: 'pushgate/staging',
      target_url: 'http://localhost:8080/jobs/j-10',
    });
  });

  it('reports a superseded commit to GitHub as success naming the newer commit', async () => {
    const { github, reporter, env } = await setup();

    reporter.report({
      environment: env('production'),
      sha: SHA,
      state: 'superseded',
      description: 'Superseded by abcdef1',
      jobId: 'j-2',
    });
    await reporter.flush();

    expect(github.requests[0]!.body).toMatchObject({
      state: 'success',
      description: 'Superseded by abcdef1',
    });
  });

  it('posts to GitLab with the URL-encoded project path, name and failed state', async () => {
    const { gitlab, reporter, env } = await setup();

    reporter.report({
      environment: env('staging'),
      sha: SHA,
      state: 'pending',
      description: 'Deploying',
      jobId: 'j-3',
    });
    reporter.report({
      environment: env('staging'),
      sha: SHA,
      state: 'failure',
      description: 'web.yaml: bad',
      jobId: 'j-3',
    });
    await reporter.flush();

    expect(gitlab.requests.map((r) => [r.method, r.path])).toEqual([
      ['POST', `/api/v4/projects/acme%2Fplatform%2Fenv-config/statuses/${SHA}`],
      ['POST', `/api/v4/projects/acme%2Fplatform%2Fenv-config/statuses/${SHA}`],
    ]);
    expect(gitlab.requests.map((r) => r.body)).toEqual([
      {
        state: 'pending',
        name: 'pushgate/staging',
        target_url: 'https://deploy.example.com/pushgate/jobs/j-3',
        description: 'Deploying',
      },
      {
        state: 'failed',
        name: 'pushgate/staging',
        target_url: 'https://deploy.example.com/pushgate/jobs/j-3',
        description: 'web.yaml: bad',
      },
    ]);
    expect(gitlab.requests[0]!.headers['private-token']).toBe('glpat-statustoken');
  });

  it('retries a provider 502 and then delivers', async () => {
    const { github, reporter, env } = await setup();
    github.failNext(1, 502);

    reporter.report({
      environment: env('production'),
      sha: SHA,
      state: 'pending',
      description: 'Deploying',
      jobId: 'j-4',
    });
    await reporter.flush();

    expect(github.requests).toHaveLength(2);
    expect(github.requests[1]!.body).toMatchObject({ state: 'pending' });
  });

  it('gives up quietly when the provider keeps failing, without throwing', async () => {
    const { github, reporter, env } = await setup({ attempts: 2, retryDelayMs: 10 });
    github.failNext(5, 500);

    expect(() =>
      reporter.report({
        environment: env('production'),
        sha: SHA,
        state: 'pending',
        description: 'Deploying',
        jobId: 'j-5',
      }),
    ).not.toThrow();
    await reporter.flush();

    expect(github.requests).toHaveLength(2);
  });
});
