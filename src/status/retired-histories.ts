import { Cluster } from 'ioredis';
import type { Logger } from '../lib/logger.js';
import type { RedisClient } from '../queue/connection.js';
import type { Keys } from '../queue/keys.js';

/**
 * How long the records of an environment no running worker has are kept, from the later of
 * its newest job and the first sweep that found it so: long enough to read what happened
 * before it was removed, or to add it back by a rollback of the configuration with its
 * history whole, however long ago its last deploy was.
 */
export const RETIRED_HISTORY_KEPT_MS = 7 * 24 * 3600_000;
/** How often one worker of the installation looks for such histories. */
export const RETIRED_SWEEP_EVERY_MS = 3600_000;
/** Records dropped per script call, so one call never holds Redis for long. */
const DROP_BATCH = 100;
/** Keys read per SCAN step. */
const SCAN_COUNT = 1000;
/** Keys deleted per UNLINK. */
const UNLINK_BATCH = 500;

/**
 * Drops the records ARGV[3..] of an environment (its oldest, read just before), unless its
 * newest job came at or after ARGV[2] (milliseconds): it was added back, or a receiver still
 * queues for it. Once none is left, its quiet re-syncs, configuration sightings and re-sync
 * place go too. The records are KEYS as well, so that a Redis Cluster refuses the call
 * before any write while a slot move has some of them on another node. The environment's own
 * hash stays (its last applied commit, the namespaces of its inventories): a configuration
 * that adds it back then prunes what it left. KEYS: environment index, all-jobs index, quiet
 * re-syncs, config-seen, config-live, queued re-sync, then the records. ARGV: unused, cutoff,
 * then the ids. Returns how many went, or -1 when the environment is not retired.
 */
const DROP_SCRIPT = `
local newest = redis.call('ZREVRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if newest[2] and tonumber(newest[2]) >= tonumber(ARGV[2]) then return -1 end
for n = 3, #ARGV do
  local id = ARGV[n]
  redis.call('DEL', KEYS[n + 4])
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
end
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('DEL', KEYS[3], KEYS[4], KEYS[5], KEYS[6]) end
return #ARGV - 2
`;

interface DropCommander {
  /** One array, which ioredis flattens: the keys' count first. */
  pushgateDropRetired(numberOfKeysKeysAndArgs: (string | number)[]): Promise<number>;
}

export interface RetiredSweepInput {
  redis: RedisClient;
  keys: Keys;
  /**
   * The environments of this worker's configuration and of every other running worker's;
   * undefined when that is not known (no sweep then).
   */
  runningEnvironments: () => Promise<ReadonlySet<string> | undefined>;
  /**
   * Whether a worker that has the environment ran lately (a stall past its presence entry's
   * time, a restart): such an environment is not retired yet.
   */
  ranLately: (environment: string) => Promise<boolean>;
  logger: Logger;
  now?: number;
  keptMs?: number;
}

/** What one sweep dropped: records by environment. */
export type RetiredSweepResult = Map<string, number>;

/**
 * Drops the job records of every environment that no running worker's configuration has,
 * once both its newest job and the first sweep that found it so are older than
 * RETIRED_HISTORY_KEPT_MS, with the keys that map its commits to them: the
 * per-environment bound of the history is kept as jobs finish, and a removed environment
 * has none left to finish, so without this its last 500 records (up to 16 MiB) stayed in
 * Redis for good.
 */
export async function dropRetiredHistories(input: RetiredSweepInput): Promise<RetiredSweepResult> {
  const { redis, keys, logger } = input;
  const now = input.now ?? Date.now();
  const keptMs = input.keptMs ?? RETIRED_HISTORY_KEPT_MS;
  const cutoff = now - keptMs;
  const dropped: RetiredSweepResult = new Map();
  const withHistory = await environmentsWithHistory(redis, keys);
  if (withHistory.length === 0) return dropped;
  const running = await input.runningEnvironments();
  if (!running) {
    logger.warn(
      "a running worker's presence entry cannot be read (another version?): no history dropped this hour",
    );
    return dropped;
  }
  const commander = commanderOf(redis);
  for (const environment of withHistory) {
    const retiredSince = keys.retiredSince(environment);
    if (running.has(environment) || (await input.ranLately(environment))) {
      await redis.del(retiredSince);
      continue;
    }
    // Counted from the first sweep that finds it retired, as well as from its last job.
    await redis.set(retiredSince, String(now), 'NX');
    if (Number(await redis.get(retiredSince)) > cutoff) continue;
    let count = 0;
    for (;;) {
      const ids = await redis.zrange(keys.jobsByEnvironment(environment), 0, DROP_BATCH - 1);
      if (ids.length === 0) break;
      const scriptKeys = [
        keys.jobsByEnvironment(environment),
        keys.jobsAll,
        keys.quietResyncs(environment),
        keys.configSeen(environment),
        keys.configLive(environment),
        keys.queuedResync(environment),
        ...ids.map((id) => keys.job(id)),
      ];
      const removed = await commander.pushgateDropRetired([
        scriptKeys.length,
        ...scriptKeys,
        '',
        cutoff,
        ...ids,
      ]);
      if (removed <= 0) break;
      count += removed;
    }
    if (count === 0) continue;
    await removeKeyMaps(redis, keys, environment);
    dropped.set(environment, count);
    logger.info(
      { environment, records: count, keptDays: keptMs / 86_400_000 },
      'dropped the job history of an environment no running worker has, a week after its last job and its removal',
    );
  }
  return dropped;
}

/**
 * Once an environment's records are gone: the keys mapping its commits to them (they expire
 * in 30 days, and name nothing now; those of its deliveries expired after 7), the one naming
 * its pending sync, and the marks of its re-sync scheduler's removal and of its retirement.
 */
async function removeKeyMaps(redis: RedisClient, keys: Keys, environment: string): Promise<void> {
  if ((await redis.exists(keys.jobsByEnvironment(environment))) === 1) return;
  const maps = [
    ...(await scanKeys(redis, `${keys.shaJob(environment, '')}*`)),
    keys.reconcileRemoved(environment),
    keys.retiredSince(environment),
    keys.pendingSync(environment),
  ];
  // One key a call: on a Redis Cluster every key is in the slot of the hash tag, but a call
  // of many is refused (CROSSSLOT) while a slot moves.
  for (let start = 0; start < maps.length; start += UNLINK_BATCH)
    await Promise.all(maps.slice(start, start + UNLINK_BATCH).map((key) => redis.unlink(key)));
}

/**
 * Whether this worker runs this hour's sweep: one per installation, the first to ask. A
 * holder that dies mid-sweep leaves the rest to the next hour.
 */
export async function claimRetiredSweep(
  { redis, keys }: { redis: RedisClient; keys: Keys },
  everyMs = RETIRED_SWEEP_EVERY_MS,
): Promise<boolean> {
  return (await redis.set(keys.retiredSweep, '1', 'PX', everyMs, 'NX')) === 'OK';
}

/**
 * The environments with an index of job records, by a SCAN of their keys: no list of them
 * is kept (one would miss those whose last job came before it). Once an hour, by one worker.
 */
export async function environmentsWithHistory(redis: RedisClient, keys: Keys): Promise<string[]> {
  const prefix = keys.jobsByEnvironment('');
  const names = (await scanKeys(redis, `${prefix}*`)).map((key) => key.slice(prefix.length));
  return [...new Set(names)].sort();
}

/**
 * The keys matching a SCAN pattern; on a cluster, of every primary (only the one serving
 * pushgate's slot holds its keys). The prefix and environment names hold no glob character:
 * the configuration allows letters, digits, _ . - only.
 */
async function scanKeys(redis: RedisClient, pattern: string): Promise<string[]> {
  const nodes = redis instanceof Cluster ? redis.nodes('master') : [redis];
  const found: string[] = [];
  for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', SCAN_COUNT);
      cursor = next;
      found.push(...keys);
    } while (cursor !== '0');
  }
  return found;
}

function commanderOf(redis: RedisClient): DropCommander {
  const commander = redis as unknown as DropCommander & RedisClient;
  // No numberOfKeys: each call passes its own count of keys, the batch's records among them.
  if (typeof commander.pushgateDropRetired !== 'function')
    commander.defineCommand('pushgateDropRetired', { lua: DROP_SCRIPT });
  return commander;
}
