import { createHash, randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { Config, EnvironmentConfig } from '../config/schema.js';
import type { RedisClient } from '../queue/connection.js';
import { environmentTargetSchema, type EnvironmentTarget } from '../queue/job-data.js';
import type { Keys } from '../queue/keys.js';
import { environmentTarget, targetDifferences } from './config-skew.js';

/** A worker renews its entry this often… */
export const PRESENCE_RENEW_MS = 10_000;
/**
 * …and its configurations' per-environment records (first sighting, until when it runs) this
 * often: they cost a write per environment, and only the hold below, counted in minutes,
 * reads the second. The entry itself, one write whatever the environments, keeps the
 * 10 s that tells who runs.
 */
export const RECORD_EVERY_MS = 60_000;
/** …and counts as gone once it has not for this long (a killed worker leaves its entry behind). */
export const PRESENCE_TTL_MS = 30_000;
/**
 * A configuration counts for this long after its last worker's last renewal, whether that
 * worker stopped or vanished (killed, evicted, crash-looping): the workers of the one it
 * replaced wait for it to come back rather than move the environment back (a node drain
 * takes a rollout's only new worker away for a while). So a rollback takes effect this long
 * after the last worker of the configuration rolled back from is gone.
 */
export const VANISHED_HOLD_MS = 5 * 60_000;
/** newest() answers from one read of Redis for this long: every job and the move pass ask. */
const READ_CACHE_MS = 1_000;
/** How often a worker forgets, per environment, the configurations gone for longer than the hold. */
const FORGET_EVERY_MS = 60_000;

const configurationSchema = z.object({ fingerprint: z.string(), target: environmentTargetSchema });
const entrySchema = z.object({
  /** Redis's clock, not the pod's: pods whose clocks disagree still agree on who is gone. */
  until: z.number(),
  environments: z.record(configurationSchema),
});
/**
 * What `config-live` keeps of a configuration: until when a worker of it is known to run (the
 * next record is due by then; a worker that stops writes the moment it does), in `until` and
 * in `at`, which versions before `until` read as the last renewal; and where it sends the
 * environment.
 */
const lastLiveSchema = z.object({
  at: z.number(),
  until: z.number().optional(),
  target: environmentTargetSchema,
});
type Configuration = z.infer<typeof configurationSchema>;

/** The newest configuration of an environment among the running (or lately vanished) workers'. */
export interface NewestConfiguration {
  target: EnvironmentTarget;
  /** It is this worker's. */
  mine: boolean;
}

/**
 * Names all of an environment's configuration that decides what a deploy does (repository,
 * branch, path, namespace, policy, the cluster's definition): two workers that differ in any
 * of it are of two configurations.
 */
export function configurationFingerprint(environment: EnvironmentConfig, config: Config): string {
  const cluster = config.clusters.find((candidate) => candidate.name === environment.cluster);
  return createHash('sha256').update(JSON.stringify({ environment, cluster })).digest('hex').slice(0, 16);
}

/**
 * Which configurations the running workers have, and which of them is the newest: the one
 * first seen last (when its first worker started), among those a worker runs or ran lately
 * (VANISHED_HOLD_MS). So while a change rolls out, the workers of the new configuration do the
 * environment's deploys and the old ones hand theirs over, whichever receiver queued them; a
 * worker of an old configuration that restarts meanwhile is still old; a rollback is the
 * newest once the configuration it rolls back from has been gone for the hold. One hash field
 * per worker in one key, and per environment one hash of first sightings and one of last
 * renewals: valid on a Redis Cluster, unlike a scan.
 */
export class WorkerPresence {
  readonly id = randomUUID();
  /** Names this worker's configuration as a whole: the same for every worker that has it. */
  readonly configuration: string;
  private readonly mine: Record<string, Configuration>;
  /** The first sighting of each of this worker's configurations, written back should Redis lose it. */
  private readonly firstSeen = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private cached: { at: number; read: Promise<LiveView> } | undefined;
  /** Redis's time of this worker's last write of its per-environment records as having run. */
  private recordedAt: number | undefined;
  /** The renewal in flight, if any: stop() lets it land first. */
  private renewing: Promise<void> | undefined;
  /** When this worker last forgot gone configurations, by environment. */
  private readonly forgotAt = new Map<string, number>();

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
    config: Config,
    /** How often the entry is renewed: PRESENCE_RENEW_MS but in tests. */
    private readonly renewMs = PRESENCE_RENEW_MS,
  ) {
    this.mine = Object.fromEntries(
      config.environments.map((environment) => [
        environment.name,
        {
          fingerprint: configurationFingerprint(environment, config),
          target: environmentTarget(environment),
        },
      ]),
    );
    const fingerprints = Object.entries(this.mine)
      .map(([environment, { fingerprint }]) => `${environment}=${fingerprint}`)
      .sort();
    this.configuration = createHash('sha256').update(fingerprints.join('\n')).digest('hex').slice(0, 16);
  }

  /** Records when each of this worker's configurations was first seen, then announces it until stop(). */
  async start(): Promise<void> {
    const now = await this.now();
    for (const [environment, { fingerprint }] of Object.entries(this.mine)) {
      const key = this.keys.configSeen(environment);
      await this.redis.hsetnx(key, fingerprint, String(now));
      this.firstSeen.set(environment, (await this.redis.hget(key, fingerprint)) ?? String(now));
    }
    // Counted among the running at once, but as having run only from its first renewal on:
    // a worker that crash-loops within seconds of starting does not keep its configuration held.
    await this.renew(false);
    this.timer = setInterval(() => {
      this.renewing = this.renew().catch(() => undefined);
    }, this.renewMs);
    this.timer.unref();
  }

  /**
   * Withdrawn as the worker starts to stop: it takes no new jobs, so none should wait for it.
   * Its configurations ran until now (not until the next record it will not make), so the
   * hold is counted from the stop, where no other worker runs them on.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    // A renewal in flight may be writing records that say this worker runs a minute more.
    await this.renewing;
    const write = this.redis.multi().hdel(this.keys.workers, this.id);
    if (this.recordedAt !== undefined) {
      const [entries, now] = await Promise.all([this.redis.hgetall(this.keys.workers), this.now()]);
      // Where another worker of the same configuration runs on, its record stands.
      const runningElsewhere = new Set<string>();
      for (const [id, raw] of Object.entries(entries)) {
        const entry = id === this.id ? undefined : parse(entrySchema, raw);
        if (!entry || entry.until < now) continue;
        for (const [environment, { fingerprint }] of Object.entries(entry.environments))
          runningElsewhere.add(`${environment}\n${fingerprint}`);
      }
      for (const [environment, { fingerprint, target }] of Object.entries(this.mine)) {
        if (runningElsewhere.has(`${environment}\n${fingerprint}`)) continue;
        write.hset(
          this.keys.configLive(environment),
          fingerprint,
          JSON.stringify({ at: now, until: now, target }),
        );
      }
    }
    await write.exec();
  }

  /**
   * The newest configuration of the environment among the running workers' (this one's
   * included) and those that vanished lately; undefined when Redis knows of none (it lost
   * its data, say).
   */
  async newest(environment: string): Promise<NewestConfiguration | undefined> {
    const { live, now } = await this.read();
    const [seen, lastLive] = await Promise.all([
      this.redis.hgetall(this.keys.configSeen(environment)),
      this.redis.hgetall(this.keys.configLive(environment)),
    ]);
    const candidates = new Map<string, EnvironmentTarget>();
    for (const entry of live) {
      const configuration = entry.environments[environment];
      if (configuration) candidates.set(configuration.fingerprint, configuration.target);
    }
    const own = this.mine[environment];
    this.forgetGone(environment, { running: new Set(candidates.keys()), seen, lastLive, now });
    for (const [fingerprint, raw] of Object.entries(lastLive)) {
      const last = parse(lastLiveSchema, raw);
      if (!last || heldUntil(last) < now || candidates.has(fingerprint)) continue;
      // One gone that sends the environment where this worker does is nothing to wait for:
      // this worker's deploy moves nothing back.
      if (own && targetDifferences(last.target, own.target).length === 0) continue;
      candidates.set(fingerprint, last.target);
    }
    let best: { fingerprint: string; target: EnvironmentTarget; at: number } | undefined;
    for (const [fingerprint, target] of candidates) {
      // Not recorded (lost with Redis, until its workers renew): as old as can be.
      const at = Number(seen[fingerprint] ?? 0);
      if (!best || at > best.at || (at === best.at && fingerprint > best.fingerprint))
        best = { fingerprint, target, at };
    }
    if (!best) return undefined;
    return { target: best.target, mine: own?.fingerprint === best.fingerprint };
  }

  /**
   * The environments of this worker's configuration and of every other running worker's,
   * read afresh: what must keep its history (see retired-histories). Undefined when a
   * running worker's entry cannot be read (another version's): what it runs is not known. An
   * entry past its time is a worker gone, whatever its version.
   */
  async runningEnvironments(): Promise<Set<string> | undefined> {
    const [{ live, now }, entries] = await Promise.all([
      this.read(true),
      this.redis.hgetall(this.keys.workers),
    ]);
    for (const raw of Object.values(entries)) {
      if (parse(entrySchema, raw)) continue;
      // Every version's entry has had `until`, Redis's time it counts as gone from.
      const until = parse(z.object({ until: z.number() }), raw)?.until;
      if (until === undefined || until >= now) return undefined;
    }
    const environments = new Set(Object.keys(this.mine));
    for (const entry of live)
      for (const environment of Object.keys(entry.environments)) environments.add(environment);
    return environments;
  }

  /**
   * Whether a worker whose configuration has the environment ran lately: within the hold
   * (VANISHED_HOLD_MS) of its last record, as newest() counts it. A worker that stalled past
   * its entry's time, or restarts, still has it.
   */
  async ranLately(environment: string): Promise<boolean> {
    const [lastLive, now] = await Promise.all([
      this.redis.hgetall(this.keys.configLive(environment)),
      this.now(),
    ]);
    return Object.values(lastLive).some((raw) => {
      const last = parse(lastLiveSchema, raw);
      // Another version's record it cannot read: as if it ran lately, to be safe.
      return !last || heldUntil(last) >= now;
    });
  }

  /**
   * Forgets the configurations that no worker has run for longer than the hold: the two
   * hashes stay small, and a worker that starts with one again (a rollback, once the
   * configuration rolled back from has run for a while) is first seen anew, so it is the
   * newest at once. At most once a minute per environment, in the background (a failure is
   * retried a minute later). A worker that stalled past the hold writes its first
   * sighting back when it renews, so a stall does not make an old configuration new.
   */
  private forgetGone(
    environment: string,
    state: {
      running: Set<string>;
      seen: Record<string, string>;
      lastLive: Record<string, string>;
      now: number;
    },
  ): void {
    const { running, seen, lastLive, now } = state;
    const last = this.forgotAt.get(environment);
    if (last !== undefined && now - last < FORGET_EVERY_MS) return;
    this.forgotAt.set(environment, now);
    const own = this.mine[environment]?.fingerprint;
    const gone = (fingerprint: string): boolean => {
      if (fingerprint === own || running.has(fingerprint)) return false;
      const raw = lastLive[fingerprint];
      // Another version's entry it cannot read is not its to drop.
      const lastRun = raw === undefined ? undefined : parse(lastLiveSchema, raw);
      if (raw !== undefined && (!lastRun || heldUntil(lastRun) >= now)) return false;
      return Number(seen[fingerprint] ?? 0) < now - VANISHED_HOLD_MS;
    };
    const forgetSeen = Object.keys(seen).filter(gone);
    const forgetLive = Object.keys(lastLive).filter(gone);
    if (forgetSeen.length + forgetLive.length === 0) return;
    const forget = this.redis.multi();
    if (forgetSeen.length > 0) forget.hdel(this.keys.configSeen(environment), ...forgetSeen);
    if (forgetLive.length > 0) forget.hdel(this.keys.configLive(environment), ...forgetLive);
    void forget.exec().catch(() => undefined);
  }

  private async renew(ran = true): Promise<void> {
    if (this.stopped) return;
    const now = await this.now();
    // stop() may have run while the clock was read: its withdrawal must stand.
    if (this.stopped) return;
    const entry = JSON.stringify({ until: now + PRESENCE_TTL_MS, environments: this.mine });
    // Half a renewal early, so that renewals a little late or early still write every sixth.
    const due = this.recordedAt === undefined || now - this.recordedAt >= RECORD_EVERY_MS - this.renewMs / 2;
    if (!due) {
      // A new field: Redis lost its data, or a reader dropped this entry as gone after a
      // stall (and may have forgotten its first sighting since). The records go back at once.
      if ((await this.redis.hset(this.keys.workers, this.id, entry)) === 0) return;
      if (this.stopped) return;
    }
    const write = this.redis.multi().hset(this.keys.workers, this.id, entry);
    // The next record is due within a minute, at a renewal tick that may come a little late.
    const until = now + RECORD_EVERY_MS + this.renewMs;
    for (const [environment, { fingerprint, target }] of Object.entries(this.mine)) {
      // `at` too: a previous version, running beside this one in a rolling upgrade, reads only
      // `at` and holds (then forgets) from it, so both versions hold as long.
      if (ran)
        write.hset(
          this.keys.configLive(environment),
          fingerprint,
          JSON.stringify({ at: until, until, target }),
        );
      // Put back should Redis have lost it, as first seen then, not now.
      write.hsetnx(
        this.keys.configSeen(environment),
        fingerprint,
        this.firstSeen.get(environment) ?? String(now),
      );
    }
    await write.exec();
    if (ran) this.recordedAt = now;
  }

  /** The running workers' entries (those past their time are dropped from Redis too), and Redis's time. */
  private read(fresh = false): Promise<LiveView> {
    const started = Date.now();
    if (!fresh && this.cached && started - this.cached.at < READ_CACHE_MS) return this.cached.read;
    const read = this.readLive();
    this.cached = { at: started, read };
    read.catch(() => {
      if (this.cached?.read === read) this.cached = undefined;
    });
    return read;
  }

  private async readLive(): Promise<LiveView> {
    const [entries, now] = await Promise.all([this.redis.hgetall(this.keys.workers), this.now()]);
    const gone: string[] = [];
    const live: z.infer<typeof entrySchema>[] = [];
    for (const [id, raw] of Object.entries(entries)) {
      // Another version's entry it cannot read is not its to drop: it expires by that version.
      const entry = parse(entrySchema, raw);
      if (entry && entry.until < now) gone.push(id);
      else if (entry) live.push(entry);
    }
    // Housekeeping for workers that were killed: whoever reads next does it again on failure.
    if (gone.length > 0) await this.redis.hdel(this.keys.workers, ...gone).catch(() => undefined);
    return { live, now };
  }

  /** Milliseconds by the clock of the Redis node that holds the keys (a script on their slot). */
  private async now(): Promise<number> {
    const [seconds, micros] = (await this.redis.eval("return redis.call('TIME')", 1, this.keys.workers)) as [
      string,
      string,
    ];
    return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
  }
}

interface LiveView {
  live: z.infer<typeof entrySchema>[];
  now: number;
}

/** Until when a configuration is waited for: the hold, from when its last worker was last known to run. */
function heldUntil(last: z.infer<typeof lastLiveSchema>): number {
  return (last.until ?? last.at) + VANISHED_HOLD_MS;
}

function parse<T>(schema: z.ZodType<T>, raw: string): T | undefined {
  try {
    const parsed = schema.safeParse(JSON.parse(raw));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}
