import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CliFailure, cliErrorOf, jsonErrorLine, withoutSecrets } from '../../../src/commands/cli-failure.js';
import { KubeApiError } from '../../../src/kube/api-error.js';
import { ConfigError, PushgateError, UsageError } from '../../../src/lib/errors.js';

describe('cliErrorOf', () => {
  it.each([
    [new UsageError('--limit "x": must be a whole number'), 'usage', 2],
    [new ConfigError('pushgate.yaml: redis.url: is not a valid URL'), 'config_invalid', 2],
    [
      new CliFailure('environment_not_found', 'unknown environment "x"', { exitCode: 2 }),
      'environment_not_found',
      2,
    ],
    [new PushgateError('unavailable', 'the job queue (Redis) is unavailable'), 'unavailable', 1],
    [new PushgateError('git_failed', 'git fetch failed'), 'git_failed', 1],
    [new PushgateError('manifest_invalid', 'web.yaml document 1: kind is required'), 'commit_rejected', 1],
    [new PushgateError('policy_violation', 'namespace kube-system is not allowed'), 'commit_rejected', 1],
    [new PushgateError('apply_rejected', 'server-side dry-run rejected the set'), 'commit_rejected', 1],
    [new KubeApiError('connect ECONNREFUSED 127.0.0.1:6443', {}), 'unavailable', 1],
    [new KubeApiError('forbidden', { status: 403 }), 'failed', 1],
    [new CliFailure('interrupted', 'stopped following job j', { exitCode: 130 }), 'interrupted', 130],
    [new Error('something else'), 'failed', 1],
  ])('%s is %s, exit %i', (error, code, exitCode) => {
    expect(cliErrorOf(error)).toMatchObject({ code, exitCode, message: error.message });
  });
});

describe('jsonErrorLine', () => {
  it('is one line of JSON, whatever the message holds', () => {
    const line = jsonErrorLine({ code: 'deploy_failed', message: 'job j failed: first\nsecond "quoted"' });
    expect(line.endsWith('\n')).toBe(true);
    expect(line.trimEnd().includes('\n')).toBe(false);
    expect(JSON.parse(line)).toEqual({
      error: { code: 'deploy_failed', message: 'job j failed: first\nsecond "quoted"' },
    });
  });
});

describe('withoutSecrets', () => {
  it('takes out the password of any URL, but not the placeholders of a hint', () => {
    expect(withoutSecrets('cannot reach redis://:hunter2@redis:6379/0 now', {})).toBe(
      'cannot reach redis://:[redacted]@redis:6379/0 now',
    );
    expect(withoutSecrets('fetch https://x-access-token:ghs_abc123@github.com/a/b.git', {})).toBe(
      'fetch https://x-access-token:[redacted]@github.com/a/b.git',
    );
    const hint = 'give it in the URL, redis://:PASSWORD@host:port (redis://[user:password@]host:port[/db])';
    expect(withoutSecrets(hint, {})).toBe(hint);
  });

  it('takes out a password holding @ whole, one in capitals, and a token given as the user name', () => {
    expect(withoutSecrets('cannot reach redis://:p@ss@redis:6379 now', {})).toBe(
      'cannot reach redis://:[redacted]@redis:6379 now',
    );
    expect(withoutSecrets('cannot reach redis://:HUNTER_TWO@redis:6379', {})).toBe(
      'cannot reach redis://:[redacted]@redis:6379',
    );
    expect(withoutSecrets('fetch https://ghp_AbCdEf1234567890xyz@github.com/a/b.git failed', {})).toBe(
      'fetch https://[redacted]@github.com/a/b.git failed',
    );
    expect(withoutSecrets('fetch https://alice@bitbucket.org/a/b.git', {})).toBe(
      'fetch https://alice@bitbucket.org/a/b.git',
    );
  });

  it('reads each secret file on its own: one set to nothing hides no other, the metrics token included', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pushgate-scrub-'));
    try {
      writeFileSync(join(dir, 'empty'), '');
      writeFileSync(join(dir, 'git'), 'file-held-git-token\n');
      writeFileSync(join(dir, 'metrics'), 'file-held-metrics-token');
      const env = {
        PUSHGATE_API_TOKEN_FILE: join(dir, 'empty'),
        GIT_TOKEN_FILE: join(dir, 'git'),
        PUSHGATE_METRICS_TOKEN_FILE: join(dir, 'metrics'),
      };
      expect(withoutSecrets('file-held-git-token, file-held-metrics-token', env)).toBe(
        '[redacted], [redacted]',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('takes out the value of each secret variable and the password of REDIS_URL, wherever they appear', () => {
    const env = {
      PUSHGATE_API_TOKEN: 'old-api-token,new-api-token',
      GIT_TOKEN: 'glpat-secret-token',
      REDIS_URL: 'redis://:p%40ss-word@127.0.0.1:6379',
    };
    expect(
      withoutSecrets('tokens old-api-token new-api-token glpat-secret-token, password p@ss-word', env),
    ).toBe('tokens [redacted] [redacted] [redacted], password [redacted]');
  });

  it('reads the secrets of NAME_FILE and REDIS_URL_FILE too', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pushgate-cli-failure-'));
    try {
      writeFileSync(join(dir, 'token'), 'file-held-token\n');
      writeFileSync(join(dir, 'redis-url'), 'redis://:file-held-password@127.0.0.1:6379\n');
      const env = { GITHUB_TOKEN_FILE: join(dir, 'token'), REDIS_URL_FILE: join(dir, 'redis-url') };
      expect(withoutSecrets('file-held-token and file-held-password', env)).toBe('[redacted] and [redacted]');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
