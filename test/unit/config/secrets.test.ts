import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readSecrets, unsetSecret } from '../../../src/config/secrets.js';
import { ConfigError } from '../../../src/lib/errors.js';

describe('secrets', () => {
  it('reads each secret from its variable', () => {
    const secrets = readSecrets({ GITHUB_WEBHOOK_SECRET: 'gh', GIT_TOKEN: 'git', PUSHGATE_API_TOKEN: 'api' });
    expect(secrets).toMatchObject({
      githubWebhookSecrets: ['gh'],
      gitToken: 'git',
      apiTokens: ['api'],
      gitlabWebhookTokens: [],
    });
  });

  it('splits a comma-separated list, so old and new secrets are accepted during a rotation', () => {
    const secrets = readSecrets({ GITHUB_WEBHOOK_SECRET: 'new, old ,', GITLAB_WEBHOOK_TOKEN: 'a,b' });
    expect(secrets.githubWebhookSecrets).toEqual(['new', 'old']);
    expect(secrets.gitlabWebhookTokens).toEqual(['a', 'b']);
  });

  it('reads NAME_FILE when NAME is not set, without the trailing newline', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pushgate-secrets-'));
    writeFileSync(join(dir, 'secret'), 'from-file,second\n');
    const secrets = readSecrets({
      GITHUB_WEBHOOK_SECRET_FILE: join(dir, 'secret'),
      GITLAB_TOKEN_FILE: join(dir, 'secret'),
    });
    expect(secrets.githubWebhookSecrets).toEqual(['from-file', 'second']);
    expect(secrets.gitlabToken).toBe('from-file');
    expect(
      readSecrets({ GITHUB_WEBHOOK_SECRET: '', GITHUB_WEBHOOK_SECRET_FILE: join(dir, 'secret') })
        .githubWebhookSecrets,
    ).toEqual(['from-file', 'second']);
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses NAME and NAME_FILE both set, naming both, as ${VAR} in the config does', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pushgate-secrets-'));
    writeFileSync(join(dir, 'secret'), 'from-file\n');
    const read = () =>
      readSecrets({ GITHUB_WEBHOOK_SECRET: 'direct', GITHUB_WEBHOOK_SECRET_FILE: join(dir, 'secret') });
    expect(read).toThrow(ConfigError);
    expect(read).toThrow(
      'GITHUB_WEBHOOK_SECRET and GITHUB_WEBHOOK_SECRET_FILE are both set: set only one of them',
    );
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a GitLab signing token that is not whsec_ + base64, naming its place but not its value', () => {
    const good = `whsec_${Buffer.from('a-signing-key-of-32-bytes-length').toString('base64')}`;
    expect(readSecrets({ GITLAB_WEBHOOK_SIGNING_TOKEN: good }).gitlabSigningTokens).toEqual([good]);
    for (const bad of ['my secret!', 'whsec_%%%']) {
      const read = () => readSecrets({ GITLAB_WEBHOOK_SIGNING_TOKEN: `${good},${bad}` });
      expect(read).toThrow(ConfigError);
      expect(read).toThrow(/^GITLAB_WEBHOOK_SIGNING_TOKEN: entry 2 of 2 is not a signing token/);
      expect(read).not.toThrow(bad);
    }
  });

  it('refuses an API token set to nothing, which would leave the status API open, but not one that is unset', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pushgate-secrets-'));
    writeFileSync(join(dir, 'empty'), '\n');
    for (const [env, named] of [
      [{ PUSHGATE_API_TOKEN: '' }, 'PUSHGATE_API_TOKEN'],
      [{ PUSHGATE_API_TOKEN: ' , ' }, 'PUSHGATE_API_TOKEN'],
      [{ PUSHGATE_API_TOKEN_FILE: join(dir, 'empty') }, 'PUSHGATE_API_TOKEN_FILE'],
    ] as const) {
      expect(() => readSecrets(env)).toThrow(ConfigError);
      expect(() => readSecrets(env)).toThrow(
        `${named} is set but holds no token, which would leave the status API open`,
      );
    }
    expect(readSecrets({}).apiTokens).toEqual([]);
    expect(() => readSecrets({ PUSHGATE_METRICS_TOKEN: ' ' })).toThrow(
      'PUSHGATE_METRICS_TOKEN is set but holds no token, which would leave /metrics open: give it a token, or unset it',
    );
    expect(readSecrets({ PUSHGATE_METRICS_TOKEN: 'new, old' }).metricsTokens).toEqual(['new', 'old']);
    // Other secrets set to nothing fail closed (no webhook is accepted), so they read as unset.
    expect(readSecrets({ GITHUB_WEBHOOK_SECRET: '' }).githubWebhookSecrets).toEqual([]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('says a secret missing because its NAME_FILE is empty is so, naming the file, not NAME', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pushgate-secrets-'));
    writeFileSync(join(dir, 'empty'), '\n');
    writeFileSync(join(dir, 'secret'), 'from-file\n');
    const secrets = readSecrets({
      GITHUB_WEBHOOK_SECRET_FILE: join(dir, 'empty'),
      GITLAB_WEBHOOK_TOKEN_FILE: join(dir, 'secret'),
    });
    expect(secrets.githubWebhookSecrets).toEqual([]);
    expect(unsetSecret('GITHUB_WEBHOOK_SECRET', secrets)).toBe(
      `GITHUB_WEBHOOK_SECRET_FILE: ${join(dir, 'empty')} is empty`,
    );
    expect(unsetSecret('GITHUB_TOKEN', secrets)).toBe('GITHUB_TOKEN is not set');
    expect(secrets.emptyFiles).toEqual({ GITHUB_WEBHOOK_SECRET: join(dir, 'empty') });
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses an API token holding whitespace, which no bearer header can carry, naming the variable not the token', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pushgate-secrets-'));
    writeFileSync(join(dir, 'token'), 'good-one,two\tparts\n');
    for (const [env, named, entry] of [
      [{ PUSHGATE_API_TOKEN: 'two words' }, 'PUSHGATE_API_TOKEN', '1 of 1'],
      [{ PUSHGATE_API_TOKEN_FILE: join(dir, 'token') }, 'PUSHGATE_API_TOKEN_FILE', '2 of 2'],
    ] as const) {
      expect(() => readSecrets(env)).toThrow(ConfigError);
      expect(() => readSecrets(env)).toThrow(
        `${named}: entry ${entry} holds whitespace, which an Authorization: Bearer header cannot carry`,
      );
      expect(() => readSecrets(env)).not.toThrow(/words|parts/);
    }
    // Around the commas it is trimmed, as for every list.
    expect(readSecrets({ PUSHGATE_API_TOKEN: ' new , old ' }).apiTokens).toEqual(['new', 'old']);
    rmSync(dir, { recursive: true, force: true });
  });

  it('names the variable and the file when NAME_FILE cannot be read, never its content', () => {
    expect(() => readSecrets({ PUSHGATE_API_TOKEN_FILE: '/nonexistent/token' })).toThrow(ConfigError);
    expect(() => readSecrets({ PUSHGATE_API_TOKEN_FILE: '/nonexistent/token' })).toThrow(
      'PUSHGATE_API_TOKEN_FILE: cannot read /nonexistent/token (ENOENT)',
    );
  });
});
