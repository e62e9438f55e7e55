import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { gitAuthEnv } from '../../../src/git/auth.js';
import { redactSecret } from '../../../src/git/redact.js';

describe('gitAuthEnv', () => {
  it('gives git a credential helper for the repository’s origin, the token in the environment only', () => {
    const env = gitAuthEnv('https://github.com:8443/acme/env.git', 'github', 'ghp_x');

    expect(env).toMatchObject({
      GIT_CONFIG_COUNT: '1',
      GIT_CONFIG_KEY_0: 'credential.https://github.com:8443.helper',
      PUSHGATE_GIT_USERNAME: 'x-access-token',
      PUSHGATE_GIT_PASSWORD: 'ghp_x',
    });
    expect(env.GIT_CONFIG_VALUE_0).not.toContain('ghp_x');
  });

  it('answers git’s credential request, and only that, from the environment', () => {
    const env = gitAuthEnv('https://gitlab.example.com/group/env.git', 'gitlab', "glpat-x'$y");
    const helper = env.GIT_CONFIG_VALUE_0!.slice(1); // git runs "!…" helpers through the shell
    const run = (action: string) =>
      execFileSync('sh', ['-c', `${helper} "$@"`, 'sh', action], { env: { ...env, PATH: process.env.PATH } });

    expect(run('get').toString()).toBe("username=oauth2\npassword=glpat-x'$y\n");
    expect(run('store').toString()).toBe('');
    expect(run('erase').toString()).toBe('');
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
