import { describe, expect, it } from 'vitest';
import { parseConfigText } from '../../../src/config/load.js';
import { ConfigError } from '../../../src/lib/errors.js';

function config(branch: string, extra = ''): string {
  return `${extra}
clusters:
  - name: prod
environments:
  - name: production
    repo:
      provider: github
      name: acme/env-config
      url: https://github.com/acme/env-config.git
    branch: ${JSON.stringify(branch)}
    cluster: prod
`;
}

function configError(text: string): ConfigError {
  try {
    parseConfigText(text, 'p.yaml', {});
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('configuration validation edge cases', () => {
  it('refuses a YAML alias bomb as invalid configuration naming the file (exit 2, not a crash)', () => {
    const bomb = [
      'a: &a [x, x, x, x, x, x, x, x, x, x]',
      'b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]',
      'c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]',
      'd: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]',
    ].join('\n');

    const error = configError(`${bomb}\n`);

    expect(error.code).toBe('config_invalid');
    expect(error.message).toMatch(/^p\.yaml: invalid YAML: .*alias/i);
  });

  it('asks for owner/name as a GitHub repo name (nested groups are GitLab only)', () => {
    const text = config('env/production').replace('name: acme/env-config', 'name: acme/platform/env-config');

    expect(configError(text).message).toBe(
      'p.yaml: environments[0].repo.name: must be owner/name for provider github (group/subgroup/name is GitLab only)',
    );
    expect(() =>
      parseConfigText(text.replace('provider: github', 'provider: gitlab'), 'p.yaml', {}),
    ).not.toThrow();
  });

  it('refuses a re-sync interval under a second, each run being a full deploy, but takes 0 (off)', () => {
    const withInterval = (interval: string) =>
      `${config('env/production')}    reconcileInterval: ${interval}\n`;

    expect(configError(withInterval('500ms')).message).toBe(
      'p.yaml: environments[0].reconcileInterval: must be 0 (off) or at least 1s: each re-sync is a full deploy',
    );
    // Not a duration at all: that alone is said, not also the minimum.
    expect(configError(withInterval('-5m')).message).toBe(
      'p.yaml: environments[0].reconcileInterval: "-5m" is not a duration like 30s, 5m or 0',
    );
    expect(parseConfigText(withInterval('0'), 'p.yaml', {}).environments[0]?.reconcileInterval).toBe(0);
    expect(parseConfigText(withInterval('1s'), 'p.yaml', {}).environments[0]?.reconcileInterval).toBe(1_000);
  });

  it('refuses two environments that deploy one folder of one branch to the same cluster and namespace', () => {
    const twin = (path: string, namespace = 'default', url = 'https://github.com/acme/env-config.git') =>
      `${config('env/production')}    path: deploy\n` +
      [
        '  - name: production-copy',
        '    repo:',
        '      provider: github',
        '      name: acme/env-config',
        `      url: ${url}`,
        '    branch: env/production',
        '    cluster: prod',
        `    path: ${path}`,
        `    namespace: ${namespace}`,
        '',
      ].join('\n');

    expect(configError(twin('./deploy/')).message).toBe(
      'p.yaml: environments[1]: deploys the same repository, branch and path to the same cluster and namespace as ' +
        `environment "production": each would claim the other's objects`,
    );
    // The same repository written another way (host case, no .git, a trailing /, credentials, ssh).
    for (const url of [
      'https://GitHub.com/acme/env-config/',
      'https://x-access-token@github.com/acme/env-config',
      'ssh://git@github.com/acme/env-config.git',
      'git@GitHub.com:acme/env-config.git',
    ])
      expect(configError(twin('deploy', 'default', url)).message).toContain('deploys the same repository');
    // Another folder, or another namespace, is another environment.
    expect(() =>
      parseConfigText(twin('deploy', 'default', 'https://github.com/acme/other.git'), 'p.yaml', {}),
    ).not.toThrow();
    expect(() => parseConfigText(twin('other'), 'p.yaml', {})).not.toThrow();
    expect(() => parseConfigText(twin('deploy', 'staging'), 'p.yaml', {})).not.toThrow();
  });

  it('asks for an address in server.host, the port being server.port', () => {
    for (const host of ['localhost:8080', 'http://0.0.0.0'])
      expect(configError(config('main', `server: { host: "${host}" }`)).message).toBe(
        'p.yaml: server.host: must be an address to listen on (0.0.0.0, 127.0.0.1, ::), without a port or scheme: the port is server.port',
      );
    for (const host of ['::', '::1', '127.0.0.1', 'localhost'])
      expect(parseConfigText(config('main', `server: { host: "${host}" }`), 'p.yaml', {}).server.host).toBe(
        host,
      );
  });

  it('asks for the branch name without refs/heads/', () => {
    const error = configError(config('refs/heads/env/production'));

    expect(error.message).toBe(
      'p.yaml: environments[0].branch: must be a branch name without refs/heads/ (env/production)',
    );
  });

  it.each(['env/*', 'a:b', '-x', 'a..b', 'env/prod.lock', 'a b', 'env/', '.hidden', 'a@{1}', 'a\\b', 'x^'])(
    'refuses %j, which git would not fetch as one branch',
    (branch) => {
      expect(configError(config(branch)).message).toBe(
        'p.yaml: environments[0].branch: is not a valid git branch name',
      );
    },
  );

  it.each(['main', 'env/production', 'release-1.2', 'feature/a_b', 'v1.0/x'])(
    'accepts the branch %j',
    (branch) => {
      expect(parseConfigText(config(branch), 'p.yaml', {}).environments[0]?.branch).toBe(branch);
    },
  );
});
