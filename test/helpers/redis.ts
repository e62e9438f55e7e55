import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { findFreePort as freePort } from '../../src/lib/free-port.js';
import { PRODUCER_COMMAND_TIMEOUT_MS } from '../../src/queue/connection.js';

export { freePort };

/**
 * How soon a webhook gets its 503 while Redis refuses or hangs: the producer's command timeout
 * plus the request, with room for a loaded CI machine. One held until Redis is back fails it.
 */
export const WEBHOOK_503_WITHIN_MS = PRODUCER_COMMAND_TIMEOUT_MS + 1_200;

export interface TestRedis {
  url: string;
  port: number;
  /** Stops the server gracefully (the test's end). */
  stop(): Promise<void>;
  /** SIGKILLs the server, to test what happens when Redis goes away. */
  kill(): Promise<void>;
  /** Starts it again on the same port after kill(). */
  restart(): Promise<void>;
  /** SIGSTOPs the server (it keeps its connections and answers nothing) until the returned function is called. */
  hang(): () => void;
}

/** A real redis-server on a free loopback port, its data in a temporary folder. */
export async function startRedis(options: { password?: string } = {}): Promise<TestRedis> {
  let port = 0;
  const dir = mkdtempSync(join(tmpdir(), 'pushgate-redis-'));
  let child: ChildProcess | undefined;

  const launch = async (): Promise<void> => {
    child = spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        dir,
        '--maxmemory-policy',
        'noeviction',
        ...(options.password === undefined ? [] : ['--requirepass', options.password]),
      ],
      { stdio: 'ignore' },
    );
    await waitUntilAnswers(port, options.password, 10_000, child);
  };

  const exited = (): Promise<void> =>
    new Promise((resolve) => {
      if (!child || child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
    });

  // A free port can be taken by another process before redis-server binds it: another one then.
  for (let attempt = 1; ; attempt += 1) {
    port = await freePort();
    try {
      await launch();
      break;
    } catch (error) {
      child?.kill('SIGKILL');
      await exited();
      if (attempt === 3) throw error;
    }
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    async stop() {
      child?.kill('SIGTERM');
      await exited();
      rmSync(dir, { recursive: true, force: true });
    },
    async kill() {
      child?.kill('SIGKILL');
      await exited();
    },
    restart: launch,
    hang() {
      const stopped = child;
      stopped?.kill('SIGSTOP');
      return () => void stopped?.kill('SIGCONT');
    },
  };
}

/**
 * Until a redis-server (or Sentinel) on this loopback port answers a PING; with `server`, until
 * that process answers: it fails at once when the process exits (its port was taken meanwhile)
 * or another process answers on the port.
 */
export async function waitUntilAnswers(
  port: number,
  password: string | undefined,
  timeoutMs: number,
  server?: ChildProcess,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (server && (server.exitCode !== null || server.signalCode !== null))
      throw new Error(`redis-server for port ${port} exited before it answered (port taken?)`);
    const client = new Redis({
      port,
      host: '127.0.0.1',
      password,
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.ping();
      const info = server ? await client.info('server') : '';
      client.disconnect();
      if (server && !new RegExp(`^process_id:${server.pid}\\r?$`, 'm').test(info))
        throw new Error(`port ${port} is answered by another process than redis-server ${server.pid}`);
      return;
    } catch (error) {
      client.disconnect();
      if (Date.now() > deadline)
        throw new Error(`redis-server on port ${port} did not start: ${String(error)}`, { cause: error });
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

let prefixCounter = 0;
/** Each test gets its own key prefix, so tests sharing a server never share state. */
export function uniquePrefix(label = 't'): string {
  prefixCounter += 1;
  return `${label}-${process.pid}-${prefixCounter}-${Date.now().toString(36)}`;
}
