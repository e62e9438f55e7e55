import type { RedisClient } from '../queue/connection.js';
import type { Keys } from '../queue/keys.js';

/** An environment whose deploys are held (as `flux suspend` holds a Kustomization). */
export interface Suspension {
  /** When it was suspended (a later suspend keeps it). */
  at: string;
  reason: string | null;
}

/** The longest reason kept: it is shown in tables, logs and job messages. */
export const SUSPEND_REASON_MAX = 200;

/** What is wrong with a reason, or undefined when it can be kept. */
export function suspendReasonProblem(reason: string): string | undefined {
  if (reason.length > SUSPEND_REASON_MAX) return `reason is longer than ${SUSPEND_REASON_MAX} characters`;
  // eslint-disable-next-line no-control-regex -- control characters are what is refused
  if (/[\u0000-\u001f\u007f]/.test(reason)) return 'reason holds control characters (one line of text only)';
  return undefined;
}

/** A suspension from its two fields of the environment hash. */
export function suspensionFrom(
  at: string | null | undefined,
  reason: string | null | undefined,
): Suspension | null {
  return at ? { at, reason: reason || null } : null;
}

/** "suspended since T (reason)": the same words in job messages, errors and the CLI. */
export function describeSuspension(suspension: Suspension): string {
  return `suspended since ${suspension.at}${suspension.reason ? ` (${suspension.reason})` : ''}`;
}

/** Suspensions, kept in each environment's hash beside what it last applied. */
export class SuspensionStore {
  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
  ) {}

  async get(environment: string): Promise<Suspension | null> {
    const [at, reason] = await this.redis.hmget(
      this.keys.environment(environment),
      'suspendedAt',
      'suspendedReason',
    );
    return suspensionFrom(at, reason);
  }

  /** Suspends, or changes the reason of a suspension (keeping when it began). */
  async suspend(environment: string, reason: string | null, now = new Date()): Promise<Suspension> {
    const key = this.keys.environment(environment);
    await this.redis
      .multi()
      .hsetnx(key, 'suspendedAt', now.toISOString())
      .hset(key, 'suspendedReason', reason ?? '')
      .exec();
    const suspension = await this.get(environment);
    if (!suspension) throw new Error(`suspension of ${environment} was not kept`);
    return suspension;
  }

  /** Lifts the suspension; returns the one lifted (null when there was none). */
  async resume(environment: string): Promise<Suspension | null> {
    const key = this.keys.environment(environment);
    const [read] = (await this.redis
      .multi()
      .hmget(key, 'suspendedAt', 'suspendedReason')
      .hdel(key, 'suspendedAt', 'suspendedReason')
      .exec()) ?? [[null, [null, null]]];
    const [at, reason] = (read?.[1] as (string | null)[] | undefined) ?? [null, null];
    return suspensionFrom(at, reason);
  }
}
