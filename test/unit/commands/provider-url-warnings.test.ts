import { describe, expect, it } from 'vitest';
import { configSchema } from '../../../src/config/schema.js';
import { providerUrlWarnings } from '../../../src/commands/provider-url-warnings.js';

function config(providers: Record<string, unknown>, provider: 'github' | 'gitlab' = 'github') {
  return configSchema.parse({
    redis: { url: 'redis://127.0.0.1:6379' },
    providers,
    clusters: [{ name: 'local' }],
    environments: [
      {
        name: 'staging',
        repo: { provider, name: 'acme/env', url: 'https://git.example.com/acme/env.git' },
        branch: 'env/staging',
        cluster: 'local',
      },
    ],
  });
}

describe('providerUrlWarnings', () => {
  it('warns about a token sent in clear text and the usual slips with self-hosted instances', () => {
    expect(providerUrlWarnings(config({ github: { apiUrl: 'http://ghe.example.com/api/v3' } }))).toEqual([
      'providers.github.apiUrl is http://: GITHUB_TOKEN would cross the network unencrypted; use https://',
    ]);
    expect(providerUrlWarnings(config({ github: { apiUrl: 'https://ghe.example.com' } }))).toEqual([
      'providers.github.apiUrl https://ghe.example.com has no path: GitHub Enterprise Server serves its API at https://ghe.example.com/api/v3',
    ]);
    expect(
      providerUrlWarnings(config({ gitlab: { url: 'https://gitlab.example.com/api/v4' } }, 'gitlab')),
    ).toEqual([
      "providers.gitlab.url ends in /api/v4: give the instance's address (https://gitlab.example.com); /api/v4 is added to it",
    ]);
    // Installed under a path, the instance keeps it.
    expect(
      providerUrlWarnings(config({ gitlab: { url: 'https://code.example.com/gitlab/api/v4/' } }, 'gitlab')),
    ).toEqual([
      "providers.gitlab.url ends in /api/v4: give the instance's address (https://code.example.com/gitlab); /api/v4 is added to it",
    ]);
  });

  it('warns about the credentials of a repository URL sent over http://, GIT_TOKEN or not', () => {
    const cleartextRepo = configSchema.parse({
      clusters: [{ name: 'local' }],
      environments: [
        {
          name: 'env0',
          repo: {
            provider: 'gitlab',
            name: 'acme/env',
            url: 'http://oauth2:s3cr3t@git.example.com/acme/env.git',
          },
          branch: 'main',
          cluster: 'local',
        },
      ],
    });

    expect(providerUrlWarnings(cleartextRepo, false)).toEqual([
      'environments[0].repo.url is http://: the credentials in it would cross the network unencrypted; use https://',
    ]);
  });

  it('does not print the token left in front of a repository path that lost its https://', () => {
    const schemeless = configSchema.parse({
      clusters: [{ name: 'local' }],
      environments: [
        {
          name: 'env0',
          repo: { provider: 'github', name: 'acme/env', url: 'ghp_s3cr3t@github.com/acme/env.git' },
          branch: 'main',
          cluster: 'local',
        },
      ],
    });

    const [warning] = providerUrlWarnings(schemeless);

    expect(warning).toMatch(/^environments\[0\]\.repo\.url "…@github\.com\/acme\/env\.git" is neither a URL/);
    expect(warning).not.toContain('ghp_s3cr3t');
  });

  it('warns about GIT_TOKEN sent to a repository over http://, only where it is set', () => {
    const cleartextRepo = configSchema.parse({
      clusters: [{ name: 'local' }],
      environments: ['http://git.example.com/acme/env.git', 'http://127.0.0.1:3000/acme/env.git'].map(
        (url, index) => ({
          name: `env${index}`,
          repo: { provider: 'gitlab', name: 'acme/env', url },
          branch: 'main',
          cluster: 'local',
        }),
      ),
    });

    expect(providerUrlWarnings(cleartextRepo, true)).toEqual([
      'environments[0].repo.url is http://: GIT_TOKEN would cross the network unencrypted; use https://',
    ]);
    expect(providerUrlWarnings(cleartextRepo, false)).toEqual([]);
  });

  it('says nothing of the defaults, a local stand-in, or a provider no environment uses', () => {
    expect(providerUrlWarnings(config({}))).toEqual([]);
    expect(providerUrlWarnings(config({ github: { apiUrl: 'http://127.0.0.1:8080' } }))).toEqual([]);
    expect(providerUrlWarnings(config({ gitlab: { url: 'http://gitlab.example.com' } }))).toEqual([]);
  });
});
