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
  // Controls (C0, DEL, C1), format characters (bidirectional overrides, zero-width ones, a
  // soft hyphen) and line separators: a reason is printed in terminals and tables, where they
  // would act, or hide or disguise the text.
  if (/[\p{Cc}\p{Cf}\u2028\u2029]/u.test(reason))
    return 'reason holds control characters (one line of plain text only)';
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

  /**
   * Suspends; suspending again keeps when it began, and the reason unless a new one is given
   * (a second `suspend` without one must not drop the incident's reference).
   */
  async suspend(environment: string, reason: string | null, now = new Date()): Promise<Suspension> {
    const key = this.keys.environment(environment);
    const write = this.redis.multi().hsetnx(key, 'suspendedAt', now.toISOString());
    await (reason === null ? write : write.hset(key, 'suspendedReason', reason)).exec();
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
