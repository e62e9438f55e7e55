import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { Config } from '../config/schema.js';
import type { RedisClient } from '../queue/connection.js';
import type { EnvironmentTarget } from '../queue/job-data.js';
import type { Keys } from '../queue/keys.js';
import { environmentTarget } from './config-skew.js';
import { targetDigest } from './target-change.js';

/** A worker renews its entry this often… */
export const PRESENCE_RENEW_MS = 10_000;
/** …and counts as gone once it has not for this long (a killed worker leaves its entry behind). */
export const PRESENCE_TTL_MS = 30_000;

const entrySchema = z.object({
  until: z.number(),
  /** Environment name → targetDigest of where this worker's configuration sends it. */
  targets: z.record(z.string()),
});

/**
 * Which configurations the running workers have, one hash field per worker in one key (valid
 * on a Redis Cluster, unlike a scan): lets a worker tell a configuration that is still rolling
 * out (a worker has it) from one that is gone (none has; see config-skew).
 */
export class WorkerPresence {
  readonly id = randomUUID();
  private readonly targets: Record<string, string>;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
    config: Config,
  ) {
    this.targets = Object.fromEntries(
      config.environments.map((environment) => [
        environment.name,
        targetDigest(environmentTarget(environment)),
      ]),
    );
  }

  /** Announces this worker, then keeps its entry fresh until stop(). */
  async start(): Promise<void> {
    await this.renew();
    this.timer = setInterval(() => void this.renew().catch(() => undefined), PRESENCE_RENEW_MS);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.redis.hdel(this.keys.workers, this.id);
  }

  /** Whether another running worker sends the environment where `target` says. */
  async othersHave(environment: string, target: EnvironmentTarget): Promise<boolean> {
    const wanted = targetDigest(target);
    const now = Date.now();
    const entries = await this.redis.hgetall(this.keys.workers);
    const gone: string[] = [];
    let found = false;
    for (const [id, raw] of Object.entries(entries)) {
      const entry = parseEntry(raw);
      if (!entry || entry.until < now) {
        gone.push(id);
        continue;
      }
      if (id !== this.id && entry.targets[environment] === wanted) found = true;
    }
    // Housekeeping for workers that were killed: whoever reads next does it again on failure.
    if (gone.length > 0) await this.redis.hdel(this.keys.workers, ...gone).catch(() => undefined);
    return found;
  }

  private async renew(): Promise<void> {
    const entry = JSON.stringify({ until: Date.now() + PRESENCE_TTL_MS, targets: this.targets });
    await this.redis.hset(this.keys.workers, this.id, entry);
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
