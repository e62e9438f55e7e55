import { Cluster } from 'ioredis';
import type { Logger } from '../lib/logger.js';
import type { RedisClient } from '../queue/connection.js';
import type { Keys } from '../queue/keys.js';

/**
 * How long the records of an environment no running worker has are kept after its newest
 * job: long enough to read what happened before it was removed, or to add it back by a
 * rollback of the configuration with its history whole.
 */
export const RETIRED_HISTORY_KEPT_MS = 7 * 24 * 3600_000;
/** How often one worker of the installation looks for such histories. */
export const RETIRED_SWEEP_EVERY_MS = 3600_000;
/** Records dropped per script call, so one call never holds Redis for long. */
const DROP_BATCH = 100;
/** Keys read per SCAN step. */
const SCAN_COUNT = 1000;

/**
 * Drops the oldest ARGV[3] records of an environment, unless its newest job came at or after
 * ARGV[2] (milliseconds): it was added back, or a receiver still queues for it. Once none is
 * left, its quiet re-syncs and configuration sightings go too. The environment's own hash
 * stays (its last applied commit, the namespaces of its inventories): a configuration that
 * adds it back then prunes what it left. KEYS: environment index, all-jobs index, quiet
 * re-syncs, config-seen, config-live. ARGV: record key prefix, cutoff, batch. Returns how
 * many went, or -1 when the environment is not retired.
 */
const DROP_SCRIPT = `
local newest = redis.call('ZREVRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if newest[2] and tonumber(newest[2]) >= tonumber(ARGV[2]) then return -1 end
local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[3]) - 1)
for _, id in ipairs(ids) do
  redis.call('DEL', ARGV[1] .. id)
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
end
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('DEL', KEYS[3], KEYS[4], KEYS[5]) end
return #ids
`;

interface DropCommander {
  pushgateDropRetired(
    envJobsKey: string,
    allKey: string,
    quietKey: string,
    configSeenKey: string,
    configLiveKey: string,
    jobPrefix: string,
    cutoff: number,
    batch: number,
  ): Promise<number>;
}

export interface RetiredSweepInput {
  redis: RedisClient;
  keys: Keys;
  /**
   * The environments of this worker's configuration and of every other running worker's;
   * undefined when that is not known (no sweep then).
   */
  runningEnvironments: () => Promise<ReadonlySet<string> | undefined>;
  logger: Logger;
  now?: number;
  keptMs?: number;
}

/** What one sweep dropped: records by environment. */
export type RetiredSweepResult = Map<string, number>;

/**
 * Drops the job records of every environment that no running worker's configuration has
 * and whose newest job is older than RETIRED_HISTORY_KEPT_MS: the per-environment bound of
 * the history is kept as jobs finish, and a removed environment has none left to finish,
 * so without this its last 500 records (up to 16 MiB) stayed in Redis for good.
 */
export async function dropRetiredHistories(input: RetiredSweepInput): Promise<RetiredSweepResult> {
  const { redis, keys, logger } = input;
  const cutoff = (input.now ?? Date.now()) - (input.keptMs ?? RETIRED_HISTORY_KEPT_MS);
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
    if (running.has(environment)) continue;
    let count = 0;
    for (;;) {
      const removed = await commander.pushgateDropRetired(
        keys.jobsByEnvironment(environment),
        keys.jobsAll,
        keys.quietResyncs(environment),
        keys.configSeen(environment),
        keys.configLive(environment),
        keys.job(''),
        cutoff,
        DROP_BATCH,
      );
      if (removed <= 0) break;
      count += removed;
    }
    if (count === 0) continue;
    dropped.set(environment, count);
    logger.info(
      { environment, records: count, keptDays: (input.keptMs ?? RETIRED_HISTORY_KEPT_MS) / 86_400_000 },
      'dropped the job history of an environment no running worker has, past its last job',
    );
  }
  return dropped;
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
 * On a cluster every primary is scanned: only the one serving pushgate's slot answers keys.
 */
export async function environmentsWithHistory(redis: RedisClient, keys: Keys): Promise<string[]> {
  const prefix = keys.jobsByEnvironment('');
  const nodes = redis instanceof Cluster ? redis.nodes('master') : [redis];
  const names = new Set<string>();
  for (const node of nodes) {
    let cursor = '0';
    do {
      // The prefix holds no glob character: the configuration allows letters, digits, _ . -.
      const [next, found] = await node.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', SCAN_COUNT);
      cursor = next;
      for (const key of found) names.add(key.slice(prefix.length));
    } while (cursor !== '0');
  }
  return [...names].sort();
}

function commanderOf(redis: RedisClient): DropCommander {
  const commander = redis as unknown as DropCommander & RedisClient;
  if (typeof commander.pushgateDropRetired !== 'function')
    commander.defineCommand('pushgateDropRetired', { lua: DROP_SCRIPT, numberOfKeys: 5 });
  return commander;
}
