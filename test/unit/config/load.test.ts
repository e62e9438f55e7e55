import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig, parseConfigText, resolveConfigPath } from '../../../src/config/load.js';
import { ConfigError } from '../../../src/lib/errors.js';

const VALID = `
server:
  port: 8080
  bodyLimit: 1mb
redis:
  url: \${REDIS_URL}
  prefix: pg
clusters:
  - name: prod
environments:
  - name: production
    repo:
      provider: github
      name: acme/env-config
      url: https://github.com/acme/env-config.git
    branch: env/production
    path: clusters/production
    cluster: prod
    namespace: apps
    healthTimeout: 2m
    reconcileInterval: 0
`;

function messageOf(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('configuration loading', () => {
  it('replaces ${VAR} from the environment and applies defaults', () => {
    const config = parseConfigText(VALID, 'pushgate.yaml', { REDIS_URL: 'redis://r:6379' });
    expect(config.redis).toEqual({ url: 'redis://r:6379', prefix: 'pg', cluster: false });
    expect(config.server.bodyLimit).toBe(1024 * 1024);
    const [environment] = config.environments;
    expect(environment).toMatchObject({
      prune: true,
      healthTimeout: 120_000,
      reconcileInterval: 0,
      allow: { namespaces: ['*'] },
    });
  });

  it('refuses a Redis URL its connection could not parse, never quoting it (it may hold a password)', () => {
    const problemOf = (url: string) => messageOf(() => parseConfigText(VALID, 'p.yaml', { REDIS_URL: url }));
    const port =
      'p.yaml: redis.url: is not a valid URL: the port must be a number from 1 to 65535 (and a / ? or # in the password must be percent-encoded)';
    expect(problemOf('redis://127.0.0.1:notaport')).toBe(port);
    expect(problemOf('redis://user:s3cret@127.0.0.1:99999')).toBe(port);
    expect(problemOf('redis://[::1]:x')).toBe(port);
    // A / in the password ends the host early: what is left after the user name reads as the port.
    expect(problemOf('redis://user:pa/ss@127.0.0.1:6379')).toBe(port);
    // An @ or : in it is read as the WHATWG parser reads it (the last @ ends the user info).
    const atAndColon = 'redis://user:p@s:s@127.0.0.1:6379';
    expect(parseConfigText(VALID, 'p.yaml', { REDIS_URL: atAndColon }).redis.url).toBe(atAndColon);
    expect(problemOf('redis://127.0.0.1:0')).toBe(
      'p.yaml: redis.url: the port must be a number from 1 to 65535',
    );
    expect(problemOf('redis://r:6379/cache')).toBe(
      'p.yaml: redis.url: the path must be a database number (/0, /1...) or nothing',
    );
    expect(problemOf('redis://:s3cret@r o')).toMatch(/^p\.yaml: redis\.url: is not a valid URL \(/);
    expect(problemOf('http://r:6379')).toBe('p.yaml: redis.url: must start with redis:// or rediss://');
    for (const url of ['redis://user:s3cret@127.0.0.1:99999', 'redis://:s3cret@r o'])
      expect(problemOf(url)).not.toContain('s3cret');
    for (const url of ['redis://r', 'rediss://u:p%40ss@r:6380/2?family=6', 'redis://[::1]:6379/'])
      expect(parseConfigText(VALID, 'p.yaml', { REDIS_URL: url }).redis.url).toBe(url);
  });

  it('takes redis.cluster from the environment, and refuses it without a URL or with a database number', () => {
    const text = VALID.replace('  prefix: pg', '  prefix: pg\n  cluster: ${REDIS_CLUSTER:-false}');
    expect(parseConfigText(text, 'p.yaml', { REDIS_URL: 'redis://r:6379' }).redis.cluster).toBe(false);
    expect(
      parseConfigText(text, 'p.yaml', { REDIS_URL: 'rediss://u:p@r:6379/0', REDIS_CLUSTER: 'true' }).redis,
    ).toEqual({ url: 'rediss://u:p@r:6379/0', prefix: 'pg', cluster: true });
    const start = { unsetWhenVariableMissing: ['redis.url'] };
    expect(messageOf(() => parseConfigText(text, 'p.yaml', { REDIS_CLUSTER: 'true' }, start))).toBe(
      'p.yaml: redis.cluster: needs redis.url (a node of the cluster): the private redis-server of pushgate start is not a cluster',
    );
    // check, render and diff never connect: the receiver's file, read without its secrets, is valid.
    const noRedis = { ...start, redisUnused: true };
    expect(parseConfigText(text, 'p.yaml', { REDIS_CLUSTER: 'true' }, noRedis).redis).toEqual({
      prefix: 'pg',
      cluster: true,
    });
    // A file that sets no URL at all is wrong for every command, and is named with its other problems.
    const noUrl = text
      .replace('  url: ${REDIS_URL}\n', '')
      .replace('healthTimeout: 2m', 'healthTimeout: soon');
    expect(messageOf(() => parseConfigText(noUrl, 'p.yaml', { REDIS_CLUSTER: 'true' }, noRedis))).toBe(
      [
        'p.yaml: environments[0].healthTimeout: "soon" is not a duration like 30s, 5m or 0',
        'p.yaml: redis.cluster: needs redis.url (a node of the cluster): the private redis-server of pushgate start is not a cluster',
      ].join('\n'),
    );
    expect(
      messageOf(() =>
        parseConfigText(text, 'p.yaml', { REDIS_URL: 'redis://r:6379/2', REDIS_CLUSTER: 'true' }),
      ),
    ).toBe('p.yaml: redis.url: a Redis Cluster has only database 0: remove the database number from the URL');
    expect(
      messageOf(() => parseConfigText(text, 'p.yaml', { REDIS_URL: 'redis://r', REDIS_CLUSTER: 'yes' })),
    ).toContain('p.yaml: redis.cluster: must be true or false');
  });

  it('refuses a body limit of nothing, which would answer every webhook 413', () => {
    for (const limit of ['0', '0kb', '0.1b']) {
      const text = VALID.replace('bodyLimit: 1mb', `bodyLimit: "${limit}"`);
      expect(messageOf(() => parseConfigText(text, 'p.yaml', { REDIS_URL: 'redis://r' }))).toContain(
        `p.yaml: server.bodyLimit: "${limit}" is not a size like 512kb or 5mb`,
      );
    }
  });

  it('names the missing variable, the file and the field', () => {
    expect(messageOf(() => parseConfigText(VALID, 'conf/pushgate.yaml', {}))).toBe(
      'conf/pushgate.yaml: redis.url: environment variable REDIS_URL is not set',
    );
  });

  it('uses ${VAR:-default} when the variable is unset, and an empty default means "not set"', () => {
    const text = VALID.replace('${REDIS_URL}', '${REDIS_URL:-}');
    expect(parseConfigText(text, 'f.yaml', {}).redis.url).toBeUndefined();
    const withDefault = VALID.replace('${REDIS_URL}', '${REDIS_URL:-redis://localhost:6379}');
    expect(parseConfigText(withDefault, 'f.yaml', {}).redis.url).toBe('redis://localhost:6379');
  });

  it('leaves redis.url unset for pushgate start when its variable is missing (SPEC §2), and only that field', () => {
    const start = { unsetWhenVariableMissing: ['redis.url'] };
    expect(parseConfigText(VALID, 'f.yaml', {}, start).redis.url).toBeUndefined();
    expect(parseConfigText(VALID, 'f.yaml', { REDIS_URL: 'redis://r:6379' }, start).redis.url).toBe(
      'redis://r:6379',
    );
    // A variable inside a longer URL is part of that URL: missing, the URL is broken, not unset.
    const withPassword = VALID.replace('${REDIS_URL}', 'redis://:${REDIS_PASSWORD}@redis.prod:6379');
    expect(messageOf(() => parseConfigText(withPassword, 'f.yaml', {}, start))).toBe(
      'f.yaml: redis.url: environment variable REDIS_PASSWORD is not set',
    );
    const otherField = VALID.replace('prefix: pg', 'prefix: ${PREFIX}');
    expect(messageOf(() => parseConfigText(otherField, 'f.yaml', {}, start))).toBe(
      'f.yaml: redis.prefix: environment variable PREFIX is not set',
    );
  });

  describe('${VAR} from VAR_FILE, as secrets are read', () => {
    let dir: string;
    beforeEach(() => {
      dir = mkdtempSync(join(tmpdir(), 'pushgate-var-file-'));
    });
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    it('reads VAR_FILE when VAR is unset or empty, without one trailing newline', () => {
      const file = join(dir, 'redis-url');
      writeFileSync(file, 'redis://:pw@r:6379\n');
      expect(parseConfigText(VALID, 'f.yaml', { REDIS_URL_FILE: file }).redis.url).toBe('redis://:pw@r:6379');
      expect(parseConfigText(VALID, 'f.yaml', { REDIS_URL: '', REDIS_URL_FILE: file }).redis.url).toBe(
        'redis://:pw@r:6379',
      );
      const optional = VALID.replace('${REDIS_URL}', '${REDIS_URL:-}');
      expect(parseConfigText(optional, 'f.yaml', { REDIS_URL_FILE: file }).redis.url).toBe(
        'redis://:pw@r:6379',
      );
      const start = { unsetWhenVariableMissing: ['redis.url'] };
      expect(parseConfigText(VALID, 'f.yaml', { REDIS_URL_FILE: file }, start).redis.url).toBe(
        'redis://:pw@r:6379',
      );
    });

    it('refuses VAR and VAR_FILE both set, naming both and neither value', () => {
      const file = join(dir, 'redis-url');
      writeFileSync(file, 'redis://:from-file@r:6379\n');
      const message = messageOf(() =>
        parseConfigText(VALID, 'f.yaml', { REDIS_URL: 'redis://:direct@r', REDIS_URL_FILE: file }),
      );
      expect(message).toBe(
        'f.yaml: redis.url: REDIS_URL and REDIS_URL_FILE are both set: set only one of them',
      );
    });

    it('names the variable and the path when VAR_FILE cannot be read, or is empty', () => {
      const missing = join(dir, 'missing');
      expect(messageOf(() => parseConfigText(VALID, 'f.yaml', { REDIS_URL_FILE: missing }))).toBe(
        `f.yaml: redis.url: REDIS_URL_FILE: cannot read ${missing} (ENOENT)`,
      );
      const empty = join(dir, 'empty');
      writeFileSync(empty, '\n');
      expect(messageOf(() => parseConfigText(VALID, 'f.yaml', { REDIS_URL_FILE: empty }))).toBe(
        `f.yaml: redis.url: REDIS_URL_FILE: ${empty} is empty`,
      );
    });
  });

  it('never lets a variable change the YAML structure', () => {
    // In the query, where the URL (which drops line breaks) still parses.
    const url = 'redis://x?name=a\nprefix: evil';
    const config = parseConfigText(VALID, 'f.yaml', { REDIS_URL: url });
    expect(config.redis).toMatchObject({ url, prefix: 'pg' });
  });

  it('fills number, boolean and duration fields from variables, and names the field when the value is not one', () => {
    const text = VALID.replace('  port: 8080', '  port: ${LISTEN_PORT}')
      .replace(
        '    namespace: apps\n',
        '    namespace: apps\n    prune: ${PRUNE}\n    allow:\n      clusterScoped: ${CLUSTER_SCOPED}\n',
      )
      .replace('    branch: env/production', '    branch: ${BRANCH}')
      .replace('    healthTimeout: 2m', '    healthTimeout: ${HEALTH_TIMEOUT}');
    const env = {
      REDIS_URL: 'redis://r',
      LISTEN_PORT: '9999',
      PRUNE: 'false',
      CLUSTER_SCOPED: 'true',
      BRANCH: '123',
      HEALTH_TIMEOUT: '45',
    };
    const config = parseConfigText(text, 'f.yaml', env);
    expect(config.server.port).toBe(9999);
    expect(config.environments[0]).toMatchObject({
      prune: false,
      allow: { clusterScoped: true },
      branch: '123',
      healthTimeout: 45_000,
    });
    expect(
      messageOf(() => parseConfigText(text, 'f.yaml', { ...env, PRUNE: 'no', LISTEN_PORT: '80a' })),
    ).toBe(
      'f.yaml: server.port: must be a port number\nf.yaml: environments[0].prune: must be true or false',
    );
  });

  it('lets PORT override server.port, and refuses a PORT that is not a port number, naming PORT', () => {
    expect(parseConfigText(VALID, 'f.yaml', { REDIS_URL: 'redis://r', PORT: '9090' }).server.port).toBe(9090);
    expect(
      messageOf(() => parseConfigText(VALID, 'f.yaml', { REDIS_URL: 'redis://r', PORT: 'http' })),
    ).toContain('server.port: PORT="http" is not a port number');
    expect(messageOf(() => parseConfigText(VALID, 'f.yaml', { REDIS_URL: 'redis://r', PORT: '99999' }))).toBe(
      'f.yaml: server.port: PORT="99999" is not a port number (0 to 65535)',
    );
    // A `server` that is not a mapping is the file's mistake, named as without PORT (exit 2).
    const serverNumber = VALID.replace(/server:\n {2}port: 8080\n {2}bodyLimit: 1mb\n/, 'server: 8080\n');
    const serverEmpty = VALID.replace(/server:\n {2}port: 8080\n {2}bodyLimit: 1mb\n/, 'server:\n');
    for (const text of [serverNumber, serverEmpty]) {
      const without = messageOf(() => parseConfigText(text, 'f.yaml', { REDIS_URL: 'redis://r' }));
      expect(without).toMatch(/^f\.yaml: server: Expected object, received (number|null)$/);
      expect(messageOf(() => parseConfigText(text, 'f.yaml', { REDIS_URL: 'redis://r', PORT: '8080' }))).toBe(
        without,
      );
    }
  });

  it('takes REDIS_URL (or REDIS_URL_FILE) when the file sets no redis.url, and keeps one it sets', () => {
    const noUrl = VALID.replace('  url: ${REDIS_URL}\n', '');
    const noRedis = VALID.replace('redis:\n  url: ${REDIS_URL}\n  prefix: pg\n', '');
    for (const text of [noUrl, noRedis])
      expect(parseConfigText(text, 'f.yaml', { REDIS_URL: 'redis://from-env:6379' }).redis.url).toBe(
        'redis://from-env:6379',
      );
    expect(parseConfigText(noUrl, 'f.yaml', {}).redis.url).toBeUndefined();
    expect(parseConfigText(noUrl, 'f.yaml', { REDIS_URL: 'redis://r' }).redis.prefix).toBe('pg');

    const dir = mkdtempSync(join(tmpdir(), 'pushgate-redis-url-'));
    try {
      writeFileSync(join(dir, 'url'), 'redis://:s3cret@from-file:6379\n');
      expect(parseConfigText(noUrl, 'f.yaml', { REDIS_URL_FILE: join(dir, 'url') }).redis.url).toBe(
        'redis://:s3cret@from-file:6379',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const explicit = VALID.replace('  url: ${REDIS_URL}', '  url: redis://in-file:6379');
    expect(parseConfigText(explicit, 'f.yaml', { REDIS_URL: 'redis://from-env:6379' }).redis.url).toBe(
      'redis://in-file:6379',
    );
    // A bad REDIS_URL is named as the file's own would be, without its content.
    expect(messageOf(() => parseConfigText(noUrl, 'f.yaml', { REDIS_URL: 'http://:s3cret@r' }))).toBe(
      'f.yaml: redis.url: must start with redis:// or rediss://',
    );
  });

  it('reports an invalid field with the file, its path and the reason', () => {
    const text = VALID.replace('    branch: env/production\n', '');
    expect(messageOf(() => parseConfigText(text, 'pushgate.yaml', { REDIS_URL: 'redis://r' }))).toBe(
      'pushgate.yaml: environments[0].branch: Required',
    );
  });

  it('reports unknown fields, bad durations and undefined clusters with their paths', () => {
    const text = VALID.replace('healthTimeout: 2m', 'healthTimeout: soon\n    colour: blue').replace(
      'cluster: prod',
      'cluster: dev',
    );
    const message = messageOf(() => parseConfigText(text, 'p.yaml', { REDIS_URL: 'redis://r' }));
    expect(message).toContain('p.yaml: environments[0]: unknown field "colour"');
    expect(message).toContain(
      'p.yaml: environments[0].healthTimeout: "soon" is not a duration like 30s, 5m or 0',
    );
    expect(message).toContain('p.yaml: environments[0].cluster: cluster "dev" is not defined under clusters');
    // Neither text nor a number: named as such, not "Invalid input".
    const listed = VALID.replace('healthTimeout: 2m', 'healthTimeout: [1]').replace(
      'bodyLimit: 1mb',
      'bodyLimit: true',
    );
    expect(messageOf(() => parseConfigText(listed, 'p.yaml', { REDIS_URL: 'redis://r' }))).toBe(
      [
        'p.yaml: server.bodyLimit: must be a size like 512kb or 5mb',
        'p.yaml: environments[0].healthTimeout: must be a duration like 30s, 5m or 0',
      ].join('\n'),
    );
  });

  it('reports a path escaping the repository and a non-redis URL', () => {
    const text = VALID.replace('path: clusters/production', 'path: ../secrets');
    expect(messageOf(() => parseConfigText(text, 'p.yaml', { REDIS_URL: 'http://r' }))).toMatch(
      /redis\.url: must start with redis:\/\/ or rediss:\/\/\n.*environments\[0\]\.path: must be a path inside the repository/,
    );
  });

  it('reports invalid YAML with its line', () => {
    expect(messageOf(() => parseConfigText('server:\n  port: [1\n', 'p.yaml', {}))).toMatch(
      /^p\.yaml:\d+: invalid YAML/,
    );
  });

  it('keeps an empty literal string as written instead of dropping the field', () => {
    const text = VALID.replace('branch: env/production', 'branch: ""');
    expect(messageOf(() => parseConfigText(text, 'p.yaml', { REDIS_URL: 'redis://r' }))).toBe(
      'p.yaml: environments[0].branch: must not be empty',
    );
    const emptyUrl = VALID.replace('url: https://github.com/acme/env-config.git', 'url: ""').replace(
      'namespace: apps',
      'namespace: apps\n    allow: {namespaces: [""]}',
    );
    expect(messageOf(() => parseConfigText(emptyUrl, 'p.yaml', { REDIS_URL: 'redis://r' }))).toBe(
      'p.yaml: environments[0].repo.url: must not be empty\np.yaml: environments[0].allow.namespaces[0]: must not be empty',
    );
  });

  it('reads the file named by --config, else $PUSHGATE_CONFIG (empty counts as unset), else config/pushgate.yaml', () => {
    expect(resolveConfigPath('a.yaml', { PUSHGATE_CONFIG: 'b.yaml' })).toBe('a.yaml');
    expect(resolveConfigPath(undefined, { PUSHGATE_CONFIG: 'b.yaml' })).toBe('b.yaml');
    expect(resolveConfigPath(undefined, {})).toBe('config/pushgate.yaml');
    expect(resolveConfigPath(undefined, { PUSHGATE_CONFIG: '' })).toBe('config/pushgate.yaml');
    const dir = mkdtempSync(join(tmpdir(), 'pushgate-config-'));
    writeFileSync(join(dir, 'p.yaml'), VALID);
    expect(loadConfig(join(dir, 'p.yaml'), { REDIS_URL: 'redis://r' }).environments).toHaveLength(1);
    expect(messageOf(() => loadConfig(join(dir, 'missing.yaml'), {}))).toBe(
      `${join(dir, 'missing.yaml')}: cannot read the configuration file (ENOENT)`,
    );
    rmSync(dir, { recursive: true, force: true });
  });
});
