import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.js';
import { readSecrets } from '../../src/config/secrets.js';
import { silentLogger } from '../../src/lib/logger.js';
import { createCommitStatusReporter } from '../../src/status/reporters/commit-status-reporter.js';
import { startFakeGithub, type FakeProvider } from '../helpers/fake-github.js';
import { startFakeGitlab } from '../helpers/fake-gitlab.js';
import { startRedis, uniquePrefix, type TestRedis } from '../helpers/redis.js';

const SHA = '0123456789abcdef0123456789abcdef01234567';
/** A UTF-16 surrogate without its other half: not a character, and not valid in the JSON GitHub and GitLab parse. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

let redis: TestRedis;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis.stop();
});

describe('commit status descriptions cut to the providers’ limits', () => {
  const servers: FakeProvider[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((server) => server.close()));
  });

  it('are cut between characters, never inside one', async () => {
    const github = await startFakeGithub();
    const gitlab = await startFakeGitlab();
    servers.push(github, gitlab);
    const config = parseConfigText(
      `
server: { port: 8080 }
redis: { prefix: ${uniquePrefix('descriptions')}, url: "${redis.url}" }
providers:
  github: { apiUrl: "${github.url}" }
  gitlab: { url: "${gitlab.url}" }
clusters: [{ name: local }]
environments:
  - name: production
    repo: { provider: github, name: acme/env-config, url: "file:///nowhere" }
    branch: env/production
    cluster: local
  - name: staging
    repo: { provider: gitlab, name: acme/env-config, url: "file:///nowhere" }
    branch: env/staging
    cluster: local
`,
      'test.yaml',
      {},
    );
    const reporter = createCommitStatusReporter(
      config,
      readSecrets({ GITHUB_TOKEN: 'ghs_test', GITLAB_TOKEN: 'glpat-test' }),
      silentLogger(),
      { timeoutMs: 10_000 },
    );
    const environment = (name: string) => config.environments.find((e) => e.name === name)!;

    // An API server error quoting a value: the emoji straddles GitHub's 140th and GitLab's 255th character.
    for (const [name, limit] of [
      ['production', 140],
      ['staging', 255],
    ] as const) {
      reporter.report({
        environment: environment(name),
        sha: SHA,
        state: 'failure',
        description: `${'x'.repeat(limit - 1)}🚀 rest of the message`,
        jobId: 'j-1',
      });
    }
    await reporter.flush();
    await reporter.close();

    const sent = [...github.requests, ...gitlab.requests].map(
      (request) => (request.body as { description: string }).description,
    );
    for (const description of sent) expect(description).not.toMatch(LONE_SURROGATE);
    // The emoji is the last character each provider takes.
    expect(sent).toEqual([`${'x'.repeat(139)}🚀`, `${'x'.repeat(254)}🚀`]);
  });
});
