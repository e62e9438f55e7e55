import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { Config } from '../config/schema.js';
import type { RedisClient } from '../queue/connection.js';
import { environmentTargetSchema, type EnvironmentTarget } from '../queue/job-data.js';
import type { Keys } from '../queue/keys.js';
import { environmentTarget } from './config-skew.js';
import { targetDigest } from './target-change.js';

/** A worker renews its entry this often… */
export const PRESENCE_RENEW_MS = 10_000;
/** …and counts as gone once it has not for this long (a killed worker leaves its entry behind). */
export const PRESENCE_TTL_MS = 30_000;

const entrySchema = z.object({
  /** Redis's clock, not the pod's: pods whose clocks disagree still agree on who is gone. */
  until: z.number(),
  targets: z.record(environmentTargetSchema),
});

/** The newest configuration of an environment that a running worker has. */
export interface NewestConfiguration {
  target: EnvironmentTarget;
  /** It is this worker's. */
  mine: boolean;
}

/**
 * Which configurations the running workers have, and which of them is the newest: the one
 * first seen last (when its first worker started), among those a running worker has. So
 * while a change rolls out, the workers of the new configuration do the environment's deploys
 * and the old ones hand theirs over, whichever receiver queued them; a worker of an old
 * configuration that restarts meanwhile is still old; a rollback is new again once no worker
 * of the configuration it rolls back from is left. One hash field per worker in one key, and
 * one hash per environment for the first sightings: valid on a Redis Cluster, unlike a scan.
 */
export class WorkerPresence {
  readonly id = randomUUID();
  private readonly targets: Record<string, EnvironmentTarget>;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
    config: Config,
  ) {
    this.targets = Object.fromEntries(
      config.environments.map((environment) => [environment.name, environmentTarget(environment)]),
    );
  }

  /** Records when each of this worker's configurations was first seen, then announces it until stop(). */
  async start(): Promise<void> {
    const now = await this.now();
    for (const [environment, target] of Object.entries(this.targets))
      await this.redis.hsetnx(this.keys.configSeen(environment), targetDigest(target), String(now));
    await this.renew();
    this.timer = setInterval(() => void this.renew().catch(() => undefined), PRESENCE_RENEW_MS);
    this.timer.unref();
  }

  /** Withdrawn as the worker starts to stop: it takes no new jobs, so none should wait for it. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.redis.hdel(this.keys.workers, this.id);
  }

  /**
   * The newest configuration of the environment among the running workers' (this one's
   * included); undefined when no running worker has the environment, as far as Redis tells
   * (it lost its data, say).
   */
  async newest(environment: string): Promise<NewestConfiguration | undefined> {
    const [live, seen] = await Promise.all([
      this.live(),
      this.redis.hgetall(this.keys.configSeen(environment)),
    ]);
    let best: { target: EnvironmentTarget; digest: string; at: number } | undefined;
    for (const entry of live) {
      const target = entry.targets[environment];
      if (!target) continue;
      const digest = targetDigest(target);
      // Not recorded (lost with Redis): as old as can be, so a recorded one wins.
      const at = Number(seen[digest] ?? 0);
      if (!best || at > best.at || (at === best.at && digest > best.digest)) best = { target, digest, at };
    }
    if (!best) return undefined;
    const own = this.targets[environment];
    return { target: best.target, mine: own !== undefined && targetDigest(own) === best.digest };
  }

  /** The entries of the running workers; those past their time are dropped from Redis too. */
  private async live(): Promise<z.infer<typeof entrySchema>[]> {
    const [entries, now] = await Promise.all([this.redis.hgetall(this.keys.workers), this.now()]);
    const gone: string[] = [];
    const live: z.infer<typeof entrySchema>[] = [];
    for (const [id, raw] of Object.entries(entries)) {
      const entry = parseEntry(raw);
      if (!entry || entry.until < now) gone.push(id);
      else live.push(entry);
    }
    // Housekeeping for workers that were killed: whoever reads next does it again on failure.
    if (gone.length > 0) await this.redis.hdel(this.keys.workers, ...gone).catch(() => undefined);
    return live;
  }

  private async renew(): Promise<void> {
    if (this.stopped) return;
    const entry = JSON.stringify({ until: (await this.now()) + PRESENCE_TTL_MS, targets: this.targets });
    await this.redis.hset(this.keys.workers, this.id, entry);
  }

  /** Milliseconds by Redis's clock (TIME answers on the node serving the keys' slot, or any). */
  private async now(): Promise<number> {
    const [seconds, micros] = await this.redis.time();
    return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
  }
}

function parseEntry(raw: string): z.infer<typeof entrySchema> | undefined {
  try {
    const parsed = entrySchema.safeParse(JSON.parse(raw));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}
