import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, chmodSync, constants, mkdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { delimiter, join, resolve } from 'node:path';
import type { Env } from '../config/load.js';
import { PushgateError, errorMessage } from './errors.js';
import type { Logger } from './logger.js';
import { CENSOR } from './redact-secrets.js';
import { findFreePort } from './free-port.js';
import {
  embeddedRedisUrlFile,
  removeEmbeddedRedisUrl,
  writeEmbeddedRedisUrl,
} from './embedded-redis-url-file.js';

export const REDIS_NOT_FOUND_HINT =
  'redis-server not found on PATH: install it (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis) or set REDIS_URL';

export interface EmbeddedRedisOptions {
  /** Where the append-only file lives; created if needed. Jobs survive a restart with the same folder. */
  dataDir: string;
  logger: Logger;
  /** Where PATH is read from (tests point it at an empty folder). */
  env?: Env;
  /** How long to wait for the first PONG. */
  startTimeoutMs?: number;
  /** How long stop() waits after SIGTERM before SIGKILL. */
  stopTimeoutMs?: number;
}

export interface EmbeddedRedis {
  /** `redis://:<password>@127.0.0.1:<port>`: never log it (see withoutPassword). */
  url: string;
  /** Holds `url` while the server runs, for `status` and `sync` (mode 0600). */
  urlFile: string;
  port: number;
  pid: number;
  stop(): Promise<void>;
}

const PID_FILE = 'redis-server.pid';
const START_ATTEMPTS = 3;

/**
 * Starts a private redis-server for `pushgate start` on a free loopback port.
 *
 * Any local user can reach a loopback port, so the server asks for a password, new on every
 * start. It reaches redis-server as a config file on stdin (`redis-server -`), never in argv,
 * which every user can read from `ps` and /proc/<pid>/cmdline.
 *
 * Durability is the point: appendonly keeps queued jobs across restarts, and noeviction makes
 * a full Redis refuse writes instead of silently dropping queue keys.
 *
 * The server runs in its own process group so that Ctrl-C in a terminal reaches pushgate
 * only: pushgate then drains its worker while Redis is still there, and stops Redis last.
 * For deaths that run no JavaScript (SIGKILL, OOM), a tiny watchdog holds the read end of a
 * pipe whose write end only this process has; when the pipe closes, however we died, the
 * watchdog stops the server.
 */
export async function startEmbeddedRedis(options: EmbeddedRedisOptions): Promise<EmbeddedRedis> {
  const env = options.env ?? process.env;
  const binary = findOnPath('redis-server', env);
  if (!binary) throw new PushgateError('unavailable', REDIS_NOT_FOUND_HINT, { permanent: true });

  const dataDir = resolve(options.dataDir);
  try {
    // Other users have no business reading the append-only file (the jobs) either.
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    // A folder an older version made (0755) is closed too; mkdir's mode only sets new ones.
    chmodSync(dataDir, 0o700);
  } catch (error) {
    throw new PushgateError(
      'unavailable',
      `cannot create or close the Redis data folder ${dataDir} (mode 0700): ${errorMessage(error)}`,
      {
        permanent: true,
        cause: error,
      },
    );
  }
  refuseIfAlreadyRunning(dataDir);

  const password = randomBytes(32).toString('hex');
  let lastError: unknown;
  // Another process may take the free port between our probe and redis-server's bind.
  for (let attempt = 1; attempt <= START_ATTEMPTS; attempt += 1) {
    const port = await findFreePort();
    try {
      return await launch(binary, { port, password, dataDir }, options);
    } catch (error) {
      lastError = error;
      if (!(error instanceof PortTakenError)) break;
      options.logger.warn({ port, attempt }, 'embedded redis-server lost the race for its port; retrying');
    }
  }
  throw lastError;
}

class PortTakenError extends PushgateError {}

interface ServerSettings {
  port: number;
  password: string;
  dataDir: string;
}

async function launch(
  binary: string,
  { port, password, dataDir }: ServerSettings,
  options: EmbeddedRedisOptions,
): Promise<EmbeddedRedis> {
  const logger = options.logger.child({ component: 'embedded-redis', port });
  const args = [
    '-', // the rest of the configuration, the password, comes on stdin
    '--port', String(port),
    '--bind', '127.0.0.1',
    '--protected-mode', 'yes',
    '--dir', dataDir,
    '--appendonly', 'yes',
    '--appendfsync', 'everysec',
    '--save', '',
    '--maxmemory-policy', 'noeviction',
    '--daemonize', 'no',
    '--pidfile', join(dataDir, PID_FILE),
    '--logfile', '',
    '--loglevel', 'notice',
  ]; // prettier-ignore

  // None of pushgate's secrets (GIT_TOKEN...): the server needs only where its libraries are.
  const child = spawn(binary, args, {
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true,
    env: { PATH: process.env.PATH, LD_LIBRARY_PATH: process.env.LD_LIBRARY_PATH },
  });
  // redis-server reads stdin to its end before it starts; it may also exit before reading it.
  child.stdin?.on('error', () => undefined);
  child.stdin?.end(`requirepass ${password}\n`);
  const output = collectOutput(child, logger, password);
  const exited = new Promise<void>((resolveExit) => child.once('exit', () => resolveExit()));
  const spawnFailed = new Promise<never>((_, reject) =>
    child.once('error', (error) =>
      reject(
        new PushgateError('unavailable', `cannot run ${binary}: ${errorMessage(error)}`, { cause: error }),
      ),
    ),
  );
  spawnFailed.catch(() => undefined);
  const pid = child.pid;
  if (pid === undefined) await spawnFailed;

  const watchdog = startWatchdog(pid!, embeddedRedisUrlFile(dataDir));
  let urlWritten = false;
  const forgetUrl = (): void => {
    if (urlWritten) removeEmbeddedRedisUrl(dataDir);
    urlWritten = false;
  };
  const onParentExit = (): void => {
    // Only synchronous work is possible in an 'exit' handler. Redis shuts down cleanly on
    // SIGTERM by itself (the AOF is fsynced); the watchdog escalates if needed.
    forgetUrl();
    child.kill('SIGTERM');
  };
  process.on('exit', onParentExit);
  void exited.then(() => {
    process.off('exit', onParentExit);
    watchdog.kill('SIGKILL');
    // A server that died by itself must not be found by status and sync.
    forgetUrl();
  });

  const startTimeoutMs = options.startTimeoutMs ?? 15_000;
  try {
    await Promise.race([
      waitForPong(port, password, startTimeoutMs),
      spawnFailed,
      exited.then(() => {
        const tail = output.tail();
        const reason = `redis-server exited during start-up (code ${child.exitCode ?? child.signalCode})`;
        if (/address already in use/i.test(tail))
          throw new PortTakenError('unavailable', `${reason}: port ${port} is taken`);
        throw new PushgateError('unavailable', `${reason}:\n${tail}`);
      }),
    ]);
  } catch (error) {
    child.kill('SIGKILL');
    await exited;
    throw error instanceof PushgateError
      ? error
      : new PushgateError(
          'unavailable',
          `embedded redis-server did not start: ${errorMessage(error)}\n${output.tail()}`,
          {
            cause: error,
          },
        );
  }
  const url = `redis://:${encodeURIComponent(password)}@127.0.0.1:${port}`;
  try {
    writeEmbeddedRedisUrl(dataDir, url);
    urlWritten = true;
  } catch (error) {
    child.kill('SIGTERM');
    await exited;
    throw new PushgateError(
      'unavailable',
      `cannot write ${embeddedRedisUrlFile(dataDir)}: ${errorMessage(error)}`,
      { permanent: true, cause: error },
    );
  }
  logger.info({ dataDir, pid }, 'embedded redis-server ready');

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      // No status or sync should find a server that is going away.
      forgetUrl();
      const stopTimeoutMs = options.stopTimeoutMs ?? 10_000;
      output.stopping();
      child.kill('SIGTERM');
      const timer = setTimeout(() => {
        logger.warn({ stopTimeoutMs }, 'embedded redis-server did not stop after SIGTERM; sending SIGKILL');
        child.kill('SIGKILL');
      }, stopTimeoutMs);
      await exited;
      clearTimeout(timer);
      logger.info('embedded redis-server stopped');
    })();
    return stopping;
  };

  return { url, urlFile: embeddedRedisUrlFile(dataDir), port, pid: pid!, stop };
}

/** Start-up lines redis-server writes at warning level on every start. */
const REDIS_ROUTINE_LINE =
  /^(oO0OoO0OoO0Oo Redis is starting|Redis version=|Configuration loaded|Server initialized|Reading config from stdin)/;

/**
 * Keeps the last lines of the server's output for error messages and forwards them to the log.
 * The password is cut out: a config error makes redis-server print the offending line.
 */
function collectOutput(
  child: ChildProcess,
  logger: Logger,
  password: string,
): { tail(): string; stopping(): void } {
  const lines: string[] = [];
  let stopping = false;
  const onLine = (raw: string): void => {
    if (raw.trim() === '') return;
    const line = raw.split(password).join(CENSOR);
    lines.push(line);
    if (lines.length > 20) lines.shift();
    // Redis marks warnings with '#' after the timestamp ("pid:M 01 Jan 2026 00:00:00.000 # ...").
    // It also uses '#' for its ordinary start-up banner and, once we asked for it, its shutdown.
    const warning = /^\d+:[A-Z] .+? # (.*)$/.exec(line);
    if (warning && !stopping && !REDIS_ROUTINE_LINE.test(warning[1]!))
      logger.warn({ redis: line }, 'redis-server warning');
    else logger.debug({ redis: line }, 'redis-server');
  };
  for (const stream of [child.stdout, child.stderr]) {
    let buffered = '';
    stream?.setEncoding('utf8').on('data', (chunk: string) => {
      buffered += chunk;
      const parts = buffered.split('\n');
      buffered = parts.pop() ?? '';
      parts.forEach(onLine);
    });
  }
  return {
    tail: () => lines.join('\n'),
    stopping: () => {
      stopping = true;
    },
  };
}

/**
 * `sh` waits for EOF on a pipe that only this process writes to. The pipe closes when this
 * process dies for any reason, and the watchdog then removes the url file and stops the server
 * (TERM, KILL after 10 s). The file goes first: while the server lives no other start can use
 * the folder, so the file is still ours. The watchdog is detached and unref'd so it neither
 * receives terminal signals nor keeps us alive.
 */
function startWatchdog(redisPid: number, urlFile: string): ChildProcess {
  const script =
    'cat >/dev/null; rm -f "$2"; kill -TERM "$1" 2>/dev/null || exit 0; ' +
    'i=0; while kill -0 "$1" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; ' +
    'kill -KILL "$1" 2>/dev/null; exit 0';
  const watchdog = spawn('sh', ['-c', script, 'pushgate-redis-watchdog', String(redisPid), urlFile], {
    stdio: ['pipe', 'ignore', 'ignore'],
    detached: true,
    env: { PATH: process.env.PATH },
  });
  watchdog.on('error', () => undefined);
  watchdog.stdin?.on('error', () => undefined);
  watchdog.unref();
  // The pipe must not keep the event loop alive either.
  (watchdog.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  return watchdog;
}

/** Two servers appending to the same AOF would corrupt it: refuse while the pid file's process lives. */
function refuseIfAlreadyRunning(dataDir: string): void {
  const pidFile = join(dataDir, PID_FILE);
  let pid: number;
  try {
    pid = Number(readFileSync(pidFile, 'utf8').trim());
  } catch {
    return;
  }
  if (!Number.isInteger(pid) || pid <= 0 || !isRedisProcess(pid)) return;
  throw new PushgateError(
    'unavailable',
    `another redis-server (pid ${pid}) already uses ${dataDir}: stop the other pushgate start, or use another folder`,
    { permanent: true },
  );
}

function isRedisProcess(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    // ESRCH: gone; EPERM: it belongs to another user, so it is not a server we started.
    return false;
  }
  try {
    // Pids are reused (containers restart from small pids): check it is really a redis-server.
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('redis-server');
  } catch {
    return true; // no /proc (macOS): the live pid is the best evidence there is
  }
}

export function findOnPath(command: string, env: Env): string | undefined {
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, command);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this folder
    }
  }
  return undefined;
}

/**
 * AUTH and PING until +PONG. A loading AOF answers -LOADING: keep waiting. A refused password
 * (-WRONGPASS, -NOAUTH, or an AUTH error from a server without one) means another server holds
 * the port, and ours will exit on "address already in use": keep waiting for that too.
 */
async function waitForPong(port: number, password: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    last = await authAndPingOnce(port, password).catch((error: unknown) => errorMessage(error));
    if (last === '+PONG') return;
    await new Promise((r) => setTimeout(r, 50));
  }
  const refused = isAuthRefusal(last) ? ': the server there refused our password' : '';
  throw new Error(`no PONG from 127.0.0.1:${port} within ${timeoutMs} ms${refused} (last answer: ${last})`);
}

function isAuthRefusal(answer: string): boolean {
  return /^-(NOAUTH|WRONGPASS)\b|^-ERR AUTH\b/.test(answer);
}

/** PING's answer, or AUTH's when that is not +OK; the password never appears in it. */
function authAndPingOnce(port: number, password: string): Promise<string> {
  return new Promise((resolvePing, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let answer = '';
    socket.setTimeout(1_000, () => socket.destroy(new Error('timeout')));
    socket.on('connect', () => socket.write(respCommand('AUTH', password) + respCommand('PING')));
    socket.setEncoding('utf8').on('data', (chunk: string) => {
      answer += chunk;
      const lines = answer.split('\r\n');
      if (lines.length < 3) return; // not yet two complete answers
      socket.end();
      const [auth, ping] = lines as [string, string];
      // Something that is not Redis may echo what it was sent.
      resolvePing((auth === '+OK' ? ping : auth).split(password).join(CENSOR));
    });
    socket.on('error', reject);
    socket.on('close', () => reject(new Error('closed without an answer')));
  });
}

/** A command in RESP, so any byte of an argument (a password) goes through as it is. */
function respCommand(...parts: string[]): string {
  const bulk = parts.map((part) => `$${Buffer.byteLength(part)}\r\n${part}\r\n`).join('');
  return `*${parts.length}\r\n${bulk}`;
}
