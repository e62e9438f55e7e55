import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, cliConfigText, runBuiltCli, type CliRun } from '../helpers/cli.js';
import { freePort, startRedis, uniquePrefix, type TestRedis } from '../helpers/redis.js';

/** A hung command's end; those waiting out Redis's 5 s take some of it on a busy machine. */
const RUN_TIMEOUT_MS = 40_000;

let redis: TestRedis;
let dir: string;
let configFile: string;
let noRedisConfigFile: string;
let prefix: string;

function runCli(args: string[], extraEnv: Record<string, string> = {}): Promise<CliRun> {
  const { PUSHGATE_CONFIG: _config, REDIS_URL: _redis, PORT: _port, ...rest } = process.env;
  // cwd: a folder where no pushgate start keeps its Redis (.pushgate/redis/url).
  return runBuiltCli(args, {
    env: { ...rest, LOG_LEVEL: 'silent', ...extraEnv },
    cwd: dir,
    timeoutMs: RUN_TIMEOUT_MS,
  });
}

async function keysUnderPrefix(under = prefix): Promise<string[]> {
  const client = new Redis(redis.url, { lazyConnect: true });
  await client.connect();
  try {
    return await client.keys(`*${under}*`);
  } finally {
    client.disconnect();
  }
}

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first (npm test does)`);
  redis = await startRedis();
  prefix = uniquePrefix('cli-usage');
  dir = mkdtempSync(join(tmpdir(), 'pushgate-cli-usage-'));
  configFile = join(dir, 'pushgate.yaml');
  writeFileSync(configFile, cliConfigText({ url: redis.url, prefix }));
  noRedisConfigFile = join(dir, 'no-redis.yaml');
  writeFileSync(noRedisConfigFile, cliConfigText({ url: '${REDIS_URL:-}' }));
});

afterAll(async () => {
  await redis.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('pushgate <command> --help', () => {
  it.each([
    ['serve', 'Usage: pushgate serve [--config F]'],
    ['worker', 'Usage: pushgate worker [--config F]'],
    ['start', 'Usage: pushgate start [--config F]'],
    ['check', 'Usage: pushgate check [--config F]'],
    ['render', 'Usage: pushgate render ENV [--ref SHA] [--show-secrets] [--config F]'],
    ['diff', 'Usage: pushgate diff ENV [--ref SHA] [--show-secrets] [--json] [--exit-code] [--config F]'],
    ['sync', 'Usage: pushgate sync ENV [--wait [--timeout DURATION]] [--json] [--config F]'],
    ['status', 'Usage: pushgate status [JOB_ID] [--environment NAME]... [--limit N] [--json] [--config F]'],
    ['version', 'Usage: pushgate version'],
  ])('%s --help prints the usage of that command and exits 0', async (command, usage) => {
    const run = await runCli([command, '--help']);
    expect(run.code).toBe(0);
    expect(run.stdout.startsWith(usage)).toBe(true);
    expect(run.stdout).not.toContain('Commands:');
    expect(run.stdout).toContain('--config F');
  });

  it('pushgate help sync is pushgate sync --help', async () => {
    const viaHelp = await runCli(['help', 'sync']);
    const viaFlag = await runCli(['sync', '--help']);
    expect(viaHelp.code).toBe(0);
    expect(viaHelp.stdout).toBe(viaFlag.stdout);
  });

  it('pushgate --help still lists every command', async () => {
    const run = await runCli(['--help']);
    expect(run.code).toBe(0);
    for (const command of ['serve', 'worker', 'start', 'check', 'render', 'sync', 'status', 'version'])
      expect(run.stdout).toMatch(new RegExp(`^  ${command}\\b`, 'm'));
    expect(run.stdout).toMatch(/^ {2}--version\b/m);
  });

  it('help for an unknown command is bad usage (exit 2)', async () => {
    const run = await runCli(['help', 'deploy']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('unknown command "deploy"');
  });
});

describe('pushgate --version', () => {
  it.each([['--version'], ['version']])(
    'pushgate %s prints the version of the package and exits 0',
    async (arg) => {
      const { version } = JSON.parse(
        readFileSync(fileURLToPath(new URL('../../package.json', import.meta.url)), 'utf8'),
      ) as { version: string };
      const run = await runCli([arg]);
      expect(run.code).toBe(0);
      expect(run.stdout).toBe(`${version}\n`);
    },
  );

  it('is refused by another command (exit 2) rather than ignored', async () => {
    const run = await runCli(['sync', 'staging', '--version', '--config', configFile]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('pushgate sync: --version is not an option of sync');
    expect(await keysUnderPrefix()).toEqual([]);
  });
});

describe('LOG_LEVEL in pushgate check', () => {
  it('refuses a level every other command would refuse (exit 2), so a CI check catches it', async () => {
    const run = await runCli(['check', '--config', noRedisConfigFile], { LOG_LEVEL: 'verbose' });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('LOG_LEVEL="verbose" is not a log level');
  });
});

describe('worker settings from the environment', () => {
  it.each([
    ['PUSHGATE_GIT_FETCH_MAX_BYTES', '1GiB', 'must be a positive integer of bytes'],
    ['PUSHGATE_SHUTDOWN_TIMEOUT_MS', 'soon', 'must be a positive integer of milliseconds'],
    ['PUSHGATE_WORKER_CONCURRENCY', 'many', 'must be a positive integer'],
    ['LOG_LEVEL', 'verbose', 'is not a log level: use one of fatal, error, warn, info, debug, trace, silent'],
  ])(
    'pushgate worker with %s=%s is invalid configuration (exit 2) naming it',
    async (name, value, reason) => {
      const run = await runCli(['worker', '--config', configFile], { [name]: value });
      expect(run.code).toBe(2);
      expect(run.stderr).toContain(`pushgate worker: ${name}="${value}" ${reason}`);
    },
  );

  it('pushgate check refuses a WORKER_METRICS_PORT the worker would refuse (exit 2), naming it', async () => {
    const run = await runCli(['check', '--config', noRedisConfigFile], { WORKER_METRICS_PORT: 'abc' });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('WORKER_METRICS_PORT="abc" is not a port number');
  });

  it.each(['worker', 'start', 'render'])(
    'pushgate %s with PUSHGATE_GIT_FSCK_IGNORE naming ids git does not know is invalid configuration (exit 2) naming each',
    async (command) => {
      const args = command === 'render' ? ['render', 'staging'] : [command];
      const run = await runCli([...args, '--config', configFile], {
        PUSHGATE_GIT_FSCK_IGNORE: 'hasDot,hasDott,nulInHeader,zeroPaddedFileMode,duplicateEntry',
      });
      expect(run.stderr).toContain(
        `pushgate ${command}: PUSHGATE_GIT_FSCK_IGNORE names "hasDott", "duplicateEntry", which this git does not know as a fsck message id`,
      );
      expect(run.stderr).toContain('; and "nulInHeader", which git never lets through');
      expect(run.code).toBe(2);
    },
  );
});

describe('options and arguments a command does not take', () => {
  it('sync ENV --ref SHA is refused (exit 2) and queues nothing, rather than deploying the branch head', async () => {
    const run = await runCli([
      'sync',
      'staging',
      '--ref',
      '4b825dc642cb6eb9a060e54bf8d69288fbee4904',
      '--config',
      configFile,
    ]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('pushgate sync: --ref is not an option of sync');
    expect(run.stderr).toContain('Usage: pushgate sync ENV');
    expect(run.stdout).toBe('');
    expect(await keysUnderPrefix()).toEqual([]);
  });

  it.each([
    [
      ['sync', 'staging', '--timeout', '1m'],
      '--timeout limits how long --wait follows the job: give --wait too',
    ],
    [
      ['resume', 'staging', '--wait', '--timeout', 'soon'],
      '--timeout "soon": must be a duration such as 30s, 5m or 1h30m (0: no limit)',
    ],
    [['status', '--timeout', '1m'], '--timeout is not an option of status'],
  ])('pushgate %j is refused (exit 2) and queues nothing', async (args, problem) => {
    const run = await runCli([...args, '--config', configFile]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(problem);
    expect(await keysUnderPrefix()).toEqual([]);
  });

  it('a negative value after an option is read as its value, and refused as with --option=VALUE', async () => {
    const spaced = await runCli(['status', '--limit', '-1', '--config', configFile]);
    const joined = await runCli(['status', '--limit=-1', '--config', configFile]);
    expect(spaced.code).toBe(2);
    expect(spaced.stderr).toBe(joined.stderr);
    expect(spaced.stderr).toContain('pushgate status: --limit "-1": must be a whole number');
  });

  it.each([
    [['status', '--limit', '1', '--limit', '2'], 'status', '--limit'],
    [['sync', 'staging', '--wait', '--timeout', '1m', '--timeout=2m'], 'sync', '--timeout'],
  ])(
    'pushgate %j: an option given twice is refused (exit 2), not the last one taken',
    async (args, command, option) => {
      const run = await runCli([...args, '--config', configFile]);
      expect(run.code).toBe(2);
      expect(run.stderr).toContain(`pushgate ${command}: ${option} is given more than once: give it once\n`);
      expect(await keysUnderPrefix()).toEqual([]);
    },
  );

  it('a second positional argument is refused (exit 2)', async () => {
    const run = await runCli(['sync', 'staging', 'production', '--config', configFile]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('pushgate sync: unexpected argument "production"');
    expect(await keysUnderPrefix()).toEqual([]);
  });

  it.each([
    [['check', 'staging'], 'unexpected argument "staging"'],
    [['check', '--json'], '--json is not an option of check'],
    [['status', '--wait'], '--wait is not an option of status'],
    [['render', 'staging', '--wait'], '--wait is not an option of render'],
    [['render', 'staging', '--exit-code'], '--exit-code is not an option of render'],
    [['serve', 'staging'], 'unexpected argument "staging"'],
  ])('pushgate %j exits 2 naming what it does not take', async (args, problem) => {
    const run = await runCli([...args, '--config', configFile]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(problem);
  });

  it.each([
    [['check', '--bogus'], 'check', '--bogus'],
    [['sync', 'staging', '-x'], 'sync', '-x'],
  ])(
    "pushgate %j names the unknown option and prints that command's usage (exit 2)",
    async (args, command, option) => {
      const run = await runCli([...args, '--config', configFile]);
      expect(run.code).toBe(2);
      expect(run.stderr.startsWith(`pushgate ${command}: unknown option ${option}\n`)).toBe(true);
      expect(run.stderr).toContain(`Usage: pushgate ${command} `);
      expect(run.stderr).not.toContain('Commands:');
    },
  );

  it('an unknown option without a command is named, with the global usage (exit 2)', async () => {
    const run = await runCli(['--bogus']);
    expect(run.code).toBe(2);
    expect(run.stderr.startsWith('pushgate: unknown option --bogus\n')).toBe(true);
    expect(run.stderr).toContain('Commands:');
  });

  it('options a command takes still work: sync --json queues the job and prints it', async () => {
    const run = await runCli(['sync', 'staging', '--json', '--config', configFile]);
    expect(run.code).toBe(0);
    const answer = JSON.parse(run.stdout) as { jobs: { environment: string }[] };
    expect(answer.jobs.map((job) => job.environment)).toEqual(['staging']);
  });
});

describe('status and sync without redis.url', () => {
  it.each(['status', 'sync'])(
    '%s says to point REDIS_URL at the running receiver, or to run from the folder of pushgate start',
    async (command) => {
      const args = command === 'sync' ? ['sync', 'staging'] : ['status'];
      const run = await runCli([...args, '--config', noRedisConfigFile]);
      expect(run.code).toBe(2);
      expect(run.stderr).toContain(`pushgate ${command}: redis.url is not set`);
      expect(run.stderr).toContain(join(dir, '.pushgate', 'redis', 'url'));
      // Running pushgate start is no answer to "where is the Redis to read from".
      expect(run.stderr).not.toContain('or use pushgate start');
    },
  );
});

/** The JSON error a failed command printed with --json: the last line of stderr, nothing else in it. */
function jsonError(run: CliRun): { code: string; message: string } {
  const last = run.stderr.trimEnd().split('\n').at(-1) ?? '';
  const parsed = JSON.parse(last) as { error: { code: string; message: string } };
  expect(Object.keys(parsed)).toEqual(['error']);
  expect(Object.keys(parsed.error).sort()).toEqual(['code', 'message']);
  return parsed.error;
}

describe('failures with --json', () => {
  let ownConfigFile: string;
  let ownPrefix: string;

  beforeAll(() => {
    // Keys of their own: a suspension here must not reach the tests above.
    ownPrefix = uniquePrefix('cli-json');
    ownConfigFile = join(dir, 'json-errors.yaml');
    writeFileSync(ownConfigFile, cliConfigText({ url: redis.url, prefix: ownPrefix }));
  });

  it.each([
    [['sync', 'staging', '--json', '--bogus'], 'unknown option --bogus'],
    [['--json', '--bogus'], 'unknown option --bogus'],
    [['frob', '--json'], 'unknown command "frob"'],
    [['check', '--json'], '--json is not an option of check'],
    [['status', '--json', '--limit', '1', '--limit', '2'], '--limit is given more than once: give it once'],
    [['status', '--json', '--limit', 'many'], '--limit "many": must be a whole number'],
    [['sync', 'staging', 'production', '--json'], 'unexpected argument "production"'],
    [['sync', 'staging', '--json', '--timeout', '1m'], '--timeout limits how long --wait follows the job'],
    [['resume', '--json'], 'usage: pushgate resume ENV'],
  ])('pushgate %j: bad usage is one JSON line on stderr, code usage, exit 2', async (args, problem) => {
    const run = await runCli([...args, '--config', ownConfigFile]);

    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    // The error alone: no usage text around it.
    expect(run.stderr.split('\n')).toHaveLength(2);
    const error = jsonError(run);
    expect(error.code).toBe('usage');
    expect(error.message).toContain(problem);
    expect(await keysUnderPrefix(ownPrefix)).toEqual([]);
  });

  it.each([
    [['sync', 'nowhere']],
    [['resume', 'nowhere', '--wait']],
    [['suspend', 'nowhere']],
    [['diff', 'nowhere']],
    [['status', '--environment', 'staging,nowhere']],
  ])('pushgate %j --json: an unknown environment is environment_not_found, exit 2', async (args) => {
    const run = await runCli([...args, '--json', '--config', ownConfigFile]);

    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    const error = jsonError(run);
    expect(error.code).toBe('environment_not_found');
    expect(error.message).toMatch(/^unknown environment "nowhere" \(configured: staging\)$/);
  });

  it('status JOB_ID --json of an unknown job is job_not_found, exit 1', async () => {
    const run = await runCli(['status', 'no-such-job', '--json', '--config', ownConfigFile]);

    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(jsonError(run)).toEqual({ code: 'job_not_found', message: 'job "no-such-job" not found' });
  });

  it('sync --json of a suspended environment is suspended, exit 1, and queues nothing', async () => {
    const suspended = await runCli(['suspend', 'staging', '--reason', 'freeze', '--config', ownConfigFile]);
    expect(suspended.code).toBe(0);

    const run = await runCli(['sync', 'staging', '--json', '--config', ownConfigFile]);
    const status = await runCli(['status', '--json', '--config', ownConfigFile]);
    await runCli(['resume', 'staging', '--config', ownConfigFile]);

    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    const error = jsonError(run);
    expect(error.code).toBe('suspended');
    expect(error.message).toMatch(
      /^staging is suspended since \S+ \(freeze\): its deploys are held; pushgate resume staging/,
    );
    const shown = JSON.parse(status.stdout) as { environments: { jobs: unknown[] }[] };
    expect(shown.environments[0]!.jobs).toEqual([]);
  });

  it('a configuration without redis.url is config_invalid, exit 2', async () => {
    const run = await runCli(['status', '--json', '--config', noRedisConfigFile]);

    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    const error = jsonError(run);
    expect(error.code).toBe('config_invalid');
    expect(error.message).toContain('redis.url is not set');
  });

  it('Redis not answering is unavailable, exit 1, without the password of its URL', async () => {
    const port = await freePort();
    const password = 'pw-of-the-url';
    const closed = join(dir, 'closed.yaml');
    writeFileSync(closed, cliConfigText({ url: `redis://:${password}@127.0.0.1:${port}` }));
    const runs = await Promise.all([
      runCli(['status', '--json', '--config', closed]),
      runCli(['sync', 'staging', '--json', '--config', closed]),
      runCli(['suspend', 'staging', '--json', '--config', closed]),
    ]);

    for (const run of runs) {
      expect(run.code).toBe(1);
      expect(run.stdout).toBe('');
      const error = jsonError(run);
      expect(error.code).toBe('unavailable');
      expect(error.message).toContain(`Redis did not answer within 5000 ms (127.0.0.1:${port}`);
      expect(run.stderr).not.toContain(password);
    }
  });
});
