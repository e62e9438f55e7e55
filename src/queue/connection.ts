import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import { ConfigError } from '../lib/errors.js';

export type RedisRole = 'producer' | 'worker';

/** A connection to a standalone Redis or to a Redis Cluster: the same commands either way. */
export type RedisClient = Redis | Cluster;

/** Where pushgate's Redis is (`redis.url`, `redis.cluster`). */
export interface RedisEndpoint {
  url: string;
  /** A Redis Cluster: the URL names one of its nodes, the others are discovered from it. */
  cluster: boolean;
}

/** `host:port` of a Redis URL, for messages: never the URL, which may hold a password. */
export function redisAddress(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.hostname || 'localhost'}:${parsed.port || '6379'}`;
  } catch {
    return 'the configured address';
  }
}

/** How to reach each node of a cluster, from the URL of one of them. */
function clusterNodeOptions(url: string): { host: string; port: number; redisOptions: RedisOptions } {
  const parsed = new URL(url);
  const tls = parsed.protocol === 'rediss:';
  const auth =
    parsed.username || parsed.password
      ? { username: decodeURIComponent(parsed.username), password: decodeURIComponent(parsed.password) }
      : {};
  return {
    // URL keeps an IPv6 address in brackets.
    host: parsed.hostname.replace(/^\[|\]$/g, '') || 'localhost',
    port: Number(parsed.port || 6379),
    // Every node found through CLUSTER SLOTS is reached with these, not with the URL.
    redisOptions: { ...auth, ...(tls ? { tls: {} } : {}) },
  };
}

/** What is known of a connection beyond what ioredis keeps: its address and its mode check. */
interface ConnectionFacts {
  address: string;
  tls: boolean;
  /** Only to connect again (it may hold a password): never printed. */
  url: string;
  cluster: boolean;
  /** Set once the server was found in the other mode than `redis.cluster` says. */
  modeProblem?: string;
  /** The mode check of the latest 'ready' (standalone connections). */
  modeCheck?: Promise<void>;
}

const facts = new WeakMap<RedisClient, ConnectionFacts>();

function factsOf(redis: RedisClient): ConnectionFacts {
  return facts.get(redis) ?? { address: 'Redis', tls: false, url: '', cluster: false };
}

/**
 * Why this connection cannot work however long it waits: the server is not what `redis.url`
 * and `redis.cluster` say (a cluster node, or not one; a Sentinel; a read-only replica).
 * Undefined while nothing says so.
 */
export function redisModeProblem(
  redis: RedisClient,
  audience: 'operator' | 'public' = 'operator',
): string | undefined {
  const known = facts.get(redis);
  const problem = known?.modeProblem;
  // `/readyz` answers anyone: it does not say where Redis is.
  return audience === 'public' ? problem?.replace(`Redis at ${known?.address}`, 'Redis') : problem;
}

/**
 * A producer command that Redis does not answer in this long fails: a webhook gets its 503
 * within a second (SPEC §3) even when Redis hangs rather than refuses, with room left for the
 * rest of the request.
 */
export const PRODUCER_COMMAND_TIMEOUT_MS = 800;

const retryStrategy = (attempt: number): number => Math.min(attempt * 200, 2_000);

/**
 * Producers fail fast (no offline queue, one retry) so a dead Redis becomes a 503 within a
 * second; workers block on Redis and must never give up a request (BullMQ requires it).
 */
export function createRedis(endpoint: RedisEndpoint, role: RedisRole): RedisClient {
  const redis = endpoint.cluster ? createCluster(endpoint.url, role) : createStandalone(endpoint.url, role);
  const known: ConnectionFacts = {
    address: redisAddress(endpoint.url),
    tls: endpoint.url.startsWith('rediss:'),
    url: endpoint.url,
    cluster: endpoint.cluster,
  };
  facts.set(redis, known);
  // Connection errors surface on the commands that need the connection; an unhandled
  // 'error' event would otherwise crash the process while Redis restarts.
  redis.on('error', (error: Error) => {
    if (!endpoint.cluster) return;
    // A cluster client meeting a standalone Redis retries for good: the reason is in the last node's error.
    const cause = (error as Error & { lastNodeError?: Error }).lastNodeError ?? error;
    if (/cluster support disabled/i.test(cause.message))
      known.modeProblem = `redis.cluster is true but Redis at ${known.address} is not a Redis Cluster (cluster support disabled): set redis.cluster: false`;
  });
  redis.on('ready', () => {
    if (endpoint.cluster) {
      delete known.modeProblem;
      return;
    }
    // A standalone client works on a cluster node only for the slots that node owns, and
    // for pushgate's until a failover or resharding moves them: refuse it from the start.
    // INFO's default sections hold both the server's mode and its replication role.
    known.modeCheck = (redis as Redis).info().then(
      (info) => {
        const mode = /^redis_mode:(\w+)/m.exec(info)?.[1];
        const role = /^role:(\w+)/m.exec(info)?.[1];
        if (mode === 'cluster')
          known.modeProblem = `redis.cluster is false but Redis at ${known.address} is a Redis Cluster node: set redis.cluster: true`;
        else if (mode === 'sentinel')
          known.modeProblem = `Redis at ${known.address} is a Redis Sentinel, not a Redis server: redis.url must reach the master itself (see docs/production.md, Sentinel)`;
        // A replica refuses every write: a URL naming one, or a failover whose address has not moved yet.
        else if (role === 'slave')
          known.modeProblem = `Redis at ${known.address} is a read-only replica: redis.url must reach the primary (see docs/production.md)`;
        else delete known.modeProblem;
      },
      // A server that refuses INFO (renamed on some managed services) is taken as it answers.
      () => undefined,
    );
  });
  return redis;
}

/**
 * A primary demoted by a failover keeps its connections and refuses their writes (READONLY);
 * reconnecting resolves the address again, which a managed Redis's primary endpoint points
 * at the new primary by then. 2: reconnect and send the command again.
 */
const reconnectOnError = (error: Error): 2 | false => (error.message.startsWith('READONLY') ? 2 : false);

function createStandalone(url: string, role: RedisRole): Redis {
  const common: RedisOptions = { connectTimeout: 1_000, lazyConnect: false, retryStrategy, reconnectOnError };
  const options: RedisOptions =
    role === 'producer'
      ? {
          ...common,
          enableOfflineQueue: false,
          maxRetriesPerRequest: 1,
          commandTimeout: PRODUCER_COMMAND_TIMEOUT_MS,
          // No auto-pipelining: BullMQ defines its scripts on this connection after start-up,
          // and an auto-pipeline built before then lacks them (ioredis crashes the process).
        }
      : { ...common, maxRetriesPerRequest: null, enableReadyCheck: true };
  return new Redis(url, options);
}

function createCluster(url: string, role: RedisRole): Cluster {
  const node = clusterNodeOptions(url);
  const tls = node.redisOptions.tls !== undefined;
  const options: ClusterOptions = {
    enableOfflineQueue: role !== 'producer',
    enableReadyCheck: true,
    clusterRetryStrategy: retryStrategy,
    // TLS certificates name the nodes' hostnames: keep them, rather than the addresses they resolve to.
    ...(tls ? { dnsLookup: (address, callback) => callback(null, address) } : {}),
    redisOptions: {
      ...node.redisOptions,
      connectTimeout: 1_000,
      ...(role === 'producer'
        ? { maxRetriesPerRequest: 1, commandTimeout: PRODUCER_COMMAND_TIMEOUT_MS }
        : { maxRetriesPerRequest: null }),
    },
  };
  const first = { host: node.host, port: node.port };
  const cluster = new Cluster([first], options);
  // After losing every connection, ioredis starts again from its startup nodes only: were that
  // the URL's node alone, and gone for good (its replica promoted), the cluster would be
  // unreachable though it serves every slot. So every node met since is a startup node too.
  cluster.on('refresh', () => {
    const met = cluster
      .nodes('all')
      .map((member) => ({ host: member.options.host, port: member.options.port }))
      .filter((member) => member.host !== first.host || member.port !== first.port);
    // A property ioredis reads at each full reconnect; it has no setter for it.
    (cluster as unknown as { startupNodes: { host?: string; port?: number }[] }).startupNodes = [
      first,
      ...met,
    ];
  });
  return cluster;
}

/** Redis's answers to a connection without the right password: waiting longer cannot help. */
const AUTH_REFUSED = /\b(WRONGPASS|NOAUTH)\b/;

/** Redis refused the URL's credentials (see waitForRedis). */
export class RedisAuthRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RedisAuthRefusedError';
  }
}

/** The server is not what the configuration says (see redisModeProblem): a configuration error. */
export class RedisModeError extends ConfigError {
  constructor(message: string) {
    super(message);
    this.name = 'RedisModeError';
  }
}

/** The error a node gave, under a cluster client's "Failed to refresh slots cache". */
function nodeError(error: Error): Error {
  return (error as Error & { lastNodeError?: Error | null }).lastNodeError ?? error;
}

/**
 * Resolves once `redis` is ready. Rejects at once when Redis refuses the credentials or is
 * not in the mode `redis.cluster` says, and after `timeoutMs` otherwise, with the last
 * connection error. Messages name host and port, never the URL (it holds the password).
 */
export async function waitForRedis(redis: RedisClient, timeoutMs: number): Promise<void> {
  const known = factsOf(redis);
  const where = known.address;
  await new Promise<void>((resolve, reject) => {
    let lastError: Error | undefined;
    const timer = setTimeout(() => void timedOut(), timeoutMs);
    const timedOut = async (): Promise<void> => {
      cleanup();
      // A cluster client's errors name the command that failed ("Connection is closed."), not
      // why: a refused connection, an untrusted certificate. One plain connection says it.
      const cause = known.cluster ? ((await socketProblem(known.url)) ?? lastError) : lastError;
      const detail = cause ? `: ${cause.message}` : '';
      // A TLS client meets a plain port as silence: its handshake is never answered.
      const hint =
        known.tls &&
        cause &&
        /ETIMEDOUT|ECONNRESET|socket disconnected|wrong version number|timeout/i.test(cause.message)
          ? '; the URL is rediss:// (TLS): does the server at that port speak TLS?'
          : '';
      reject(new Error(`Redis did not answer within ${timeoutMs} ms (${where}${detail}${hint})`));
    };
    const onReady = (): void => {
      // Listeners run in order: the mode check of this 'ready' has started.
      void (known.modeCheck ?? Promise.resolve()).then(() => {
        cleanup();
        if (known.modeProblem) reject(new RedisModeError(known.modeProblem));
        else resolve();
      });
    };
    const onError = (error: Error): void => {
      const cause = nodeError(error);
      lastError = cause;
      if (known.modeProblem) {
        cleanup();
        reject(new RedisModeError(known.modeProblem));
        return;
      }
      const refused = AUTH_REFUSED.exec(cause.message);
      if (!refused) return;
      cleanup();
      reject(
        new RedisAuthRefusedError(
          refused[1] === 'NOAUTH'
            ? `Redis at ${where} wants a password (NOAUTH): give it in the URL, redis://:PASSWORD@host:port`
            : `Redis at ${where} refused the user name or password of the URL (${cause.message.trim()})`,
        ),
      );
    };
    const cleanup = (): void => {
      clearTimeout(timer);
      redis.off('ready', onReady);
      redis.off('error', onError);
    };
    redis.on('ready', onReady);
    redis.on('error', onError);
    if (redis.status === 'ready') onReady();
  });
}

/** Why one plain connection to the URL's node fails, if it does (within a second). */
async function socketProblem(url: string): Promise<Error | undefined> {
  const probe = new Redis(url, {
    lazyConnect: true,
    connectTimeout: 1_000,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
  });
  // The socket's error comes as an event; connect() itself rejects with "Connection is closed.".
  let seen: Error | undefined;
  probe.on('error', (error: Error) => (seen = error));
  try {
    await probe.connect();
    return undefined;
  } catch (error) {
    return seen ?? (error instanceof Error ? error : new Error(String(error)));
  } finally {
    probe.disconnect();
  }
}

/**
 * Waits as long as it takes for Redis, saying so every `intervalMs` with the last connection
 * error (host and port, never the URL): a process that waits in silence looks hung, and on
 * Kubernetes its empty log hides why it restarts. Rejects at once if Redis refuses the
 * credentials or is in the other mode than `redis.cluster` says.
 */
export async function waitForRedisSaying(
  redis: RedisClient,
  warn: (error: Error) => void,
  intervalMs = 5_000,
): Promise<void> {
  for (;;) {
    try {
      await waitForRedis(redis, intervalMs);
      return;
    } catch (error) {
      if (
        error instanceof RedisAuthRefusedError ||
        error instanceof RedisModeError ||
        !(error instanceof Error)
      )
        throw error;
      warn(error);
    }
  }
}
