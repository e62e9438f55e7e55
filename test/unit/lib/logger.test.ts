import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/lib/errors.js';
import { logLevelFromEnv } from '../../../src/lib/logger.js';

const LOGGER = fileURLToPath(new URL('../../../dist/src/lib/logger.js', import.meta.url));

/** Runs `body` in a fresh node with `log` = createLogger() writing to the real stdout. */
function runWithLogger(body: string): { lines: Record<string, unknown>[]; status: number | null } {
  const script = `import { createLogger } from ${JSON.stringify(LOGGER)};\nconst log = createLogger({ level: 'info' });\n${body}`;
  const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  const lines = result.stdout
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  return { lines, status: result.status };
}

describe('stdout logger', () => {
  it('writes one JSON object per line with level, time, service and message', () => {
    const { lines, status } = runWithLogger(
      `log.info({ jobId: 'j-1', environment: 'staging' }, 'job started');`,
    );
    expect(status).toBe(0);
    expect(lines).toEqual([
      expect.objectContaining({
        level: 'info',
        service: 'pushgate',
        jobId: 'j-1',
        environment: 'staging',
        msg: 'job started',
      }),
    ]);
    expect(Date.parse(String(lines[0]!.time))).not.toBeNaN();
  });

  it('loses no line logged just before a crash or process.exit', () => {
    const crash = runWithLogger(
      `for (let i = 0; i < 50; i++) log.info({ i }, 'before the crash');\nthrow new Error('boom');`,
    );
    expect(crash.status).toBe(1);
    expect(crash.lines.map((line) => line.i)).toEqual(Array.from({ length: 50 }, (_, i) => i));

    const exit = runWithLogger(`log.warn('last words');\nprocess.exit(3);`);
    expect(exit.status).toBe(3);
    expect(exit.lines.map((line) => line.msg)).toEqual(['last words']);
  });

  it('redacts secrets and signatures that reach a log object', () => {
    const { lines } = runWithLogger(
      `log.info({ token: 'tok-123', headers: { 'x-hub-signature-256': 'sha256=abc' }, repo: { secret: 's3' } }, 'x');`,
    );
    const text = JSON.stringify(lines);
    expect(text).not.toMatch(/tok-123|sha256=abc|s3"/);
    expect(lines[0]).toMatchObject({ token: '[redacted]', repo: { secret: '[redacted]' } });
  });

  it('redacts secrets deep in a log object and in child bindings, leaving the caller its object', () => {
    const { lines } = runWithLogger(
      [
        `const request = { headers: { Authorization: 'Bearer t0p', 'x-gitlab-token': 'gl-tok' } };`,
        `const child = log.child({ jobId: 'j-1', password: 'pw-1' });`,
        `child.info({ request, clusters: [{ name: 'c', auth: { token: 'kube-tok' } }] }, 'x');`,
        `log.info({ headerAfter: request.headers.Authorization }, 'y');`,
      ].join('\n'),
    );
    expect(JSON.stringify(lines[0])).not.toMatch(/t0p|gl-tok|kube-tok|pw-1/);
    expect(lines[0]).toMatchObject({
      jobId: 'j-1',
      password: '[redacted]',
      request: { headers: { Authorization: '[redacted]', 'x-gitlab-token': '[redacted]' } },
      clusters: [{ name: 'c', auth: { token: '[redacted]' } }],
    });
    expect(lines[1]).toMatchObject({ headerAfter: 'Bearer t0p' });
  });
});

describe('LOG_LEVEL', () => {
  it("is info when unset or empty, and any of pino's level names in any case", () => {
    expect(logLevelFromEnv(undefined)).toBe('info');
    expect(logLevelFromEnv('')).toBe('info');
    expect(logLevelFromEnv('debug')).toBe('debug');
    expect(logLevelFromEnv('WARN')).toBe('warn');
    expect(logLevelFromEnv('silent')).toBe('silent');
  });

  it('refuses another name as invalid configuration naming LOG_LEVEL and the names it takes', () => {
    const refuse = () => logLevelFromEnv('verbose');
    expect(refuse).toThrow(ConfigError);
    expect(refuse).toThrow(
      'LOG_LEVEL="verbose" is not a log level: use one of fatal, error, warn, info, debug, trace, silent',
    );
  });
});
