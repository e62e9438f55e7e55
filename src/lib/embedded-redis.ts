import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { delimiter, join, resolve } from 'node:path';
import type { Env } from '../config/load.js';
import { PushgateError, errorMessage } from './errors.js';
import type { Logger } from './logger.js';
import { findFreePort } from './free-port.js';

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
  url: string;
  port: number;
  pid: number;
  stop(): Promise<void>;
}

const PID_FILE = 'redis-server.pid';
const START_ATTEMPTS = 3;

/**
 * Starts a private redis-server for `pushgate start` on a free loopback port.
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
    mkdirSync(dataDir, { recursive: true });
  } catch (error) {
    throw new PushgateError(
      'unavailable',
      `cannot create the Redis data folder ${dataDir}: ${errorMessage(error)}`,
      {
        permanent: true,
        cause: error,
      },
    );
  }
  refuseIfAlreadyRunning(dataDir);

  let lastError: unknown;
  // Another process may take the free port between our probe and redis-server's bind.
  for (let attempt = 1; attempt <= START_ATTEMPTS; attempt += 1) {
    const port = await findFreePort();
    try {
      return await launch(binary, port, dataDir, options);
    } catch (error) {
      lastError = error;
      if (!(error instanceof PortTakenError)) break;
      options.logger.warn({ port, attempt }, 'embedded redis-server lost the race for its port; retrying');
    }
  }
  throw lastError;
}

class PortTakenError extends PushgateError {}

async function launch(
  binary: string,
  port: number,
  dataDir: string,
  options: EmbeddedRedisOptions,
): Promise<EmbeddedRedis> {
  const logger = options.logger.child({ component: 'embedded-redis', port });
  const args = [
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

  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const output = collectOutput(child, logger);
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

  const watchdog = startWatchdog(pid!);
  const onParentExit = (): void => {
    // The only thing possible in an 'exit' handler: a synchronous signal. Redis shuts down
    // cleanly on SIGTERM by itself (the AOF is fsynced); the watchdog escalates if needed.
    child.kill('SIGTERM');
  };
  process.on('exit', onParentExit);
  void exited.then(() => {
    process.off('exit', onParentExit);
    watchdog.kill('SIGKILL');
  });

  const startTimeoutMs = options.startTimeoutMs ?? 15_000;
  try {
    await Promise.race([
      waitForPong(port, startTimeoutMs),
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
  logger.info({ dataDir, pid }, 'embedded redis-server ready');

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
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

  return { url: `redis://127.0.0.1:${port}`, port, pid: pid!, stop };
}

/** Start-up lines redis-server writes at warning level on every start. */
const REDIS_ROUTINE_LINE =
  /^(oO0OoO0OoO0Oo Redis is starting|Redis version=|Configuration loaded|Server initialized)/;

/** Keeps the last lines of the server's output for error messages and forwards them to the log. */
function collectOutput(child: ChildProcess, logger: Logger): { tail(): string; stopping(): void } {
  const lines: string[] = [];
  let stopping = false;
  const onLine = (line: string): void => {
    if (line.trim() === '') return;
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
 * process dies for any reason, and the watchdog then stops the server (TERM, KILL after 10 s).
 * It is detached and unref'd so it neither receives terminal signals nor keeps us alive.
 */
function startWatchdog(redisPid: number): ChildProcess {
  const script =
    'cat >/dev/null; kill -TERM "$1" 2>/dev/null || exit 0; ' +
    'i=0; while kill -0 "$1" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; ' +
    'kill -KILL "$1" 2>/dev/null; exit 0';
  const watchdog = spawn('sh', ['-c', script, 'pushgate-redis-watchdog', String(redisPid)], {
    stdio: ['pipe', 'ignore', 'ignore'],
    detached: true,
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

/** PING until +PONG (a loading AOF answers -LOADING, which means keep waiting). */
async function waitForPong(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    last = await pingOnce(port).catch((error: unknown) => errorMessage(error));
    if (last === '+PONG') return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no PONG from 127.0.0.1:${port} within ${timeoutMs} ms (last answer: ${last})`);
}

function pingOnce(port: number): Promise<string> {
  return new Promise((resolvePing, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let answer = '';
    socket.setTimeout(1_000, () => socket.destroy(new Error('timeout')));
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.setEncoding('utf8').on('data', (chunk: string) => {
      answer += chunk;
      if (answer.includes('\r\n')) {
        socket.end();
        resolvePing(answer.split('\r\n')[0]!);
      }
    });
    socket.on('error', reject);
    socket.on('close', () => reject(new Error('closed without an answer')));
  });
}
