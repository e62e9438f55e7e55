import { describe, expect, it } from 'vitest';
import { gitAuthEnv } from '../../../src/git/auth.js';
import { redactSecret } from '../../../src/git/redact.js';

describe('gitAuthEnv', () => {
  it('scopes a Basic header to the repository’s origin, through the environment only', () => {
    const env = gitAuthEnv('https://github.com/acme/env.git', 'github', 'ghp_x');

    expect(env).toEqual({
      GIT_CONFIG_COUNT: '1',
      GIT_CONFIG_KEY_0: 'http.https://github.com/.extraHeader',
      GIT_CONFIG_VALUE_0: `Authorization: Basic ${Buffer.from('x-access-token:ghp_x').toString('base64')}`,
    });
  });

  it('uses the oauth2 user for GitLab', () => {
    const env = gitAuthEnv('https://gitlab.example.com/group/env.git', 'gitlab', 'glpat-x');

    expect(env.GIT_CONFIG_VALUE_0).toBe(
      `Authorization: Basic ${Buffer.from('oauth2:glpat-x').toString('base64')}`,
    );
  });

  it('sends nothing without a token or over file:// and ssh', () => {
    expect(gitAuthEnv('https://github.com/acme/env.git', 'github', undefined)).toEqual({});
    expect(gitAuthEnv('file:///srv/env.git', 'github', 'ghp_x')).toEqual({});
    expect(gitAuthEnv('git@github.com:acme/env.git', 'github', 'ghp_x')).toEqual({});
  });
});

describe('redactSecret', () => {
  it('removes the token and its Basic-auth encodings', () => {
    const basic = Buffer.from('x-access-token:ghp_secret').toString('base64');

    expect(redactSecret(`fatal: ghp_secret rejected; header Basic ${basic}`, 'ghp_secret')).toBe(
      'fatal: [redacted] rejected; header Basic [redacted]',
    );
  });
});
