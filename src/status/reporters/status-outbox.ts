import type { RedisClient } from '../../queue/connection.js';
import { z } from 'zod';
import type { Keys } from '../../queue/keys.js';
import type { DeployStatusState } from './types.js';

/** A status pushgate wants a commit to show: what JobRun offers and the drain loop sends. */
export interface StatusOffer {
  environment: string;
  sha: string;
  provider: 'github' | 'gitlab';
  /** `owner/name` (GitHub) or the project path (GitLab). */
  repo: string;
  /** The environment's branch: GitLab files the status under this ref's pipeline. */
  ref: string;
  state: DeployStatusState;
  description: string;
  targetUrl: string;
  jobId: string;
  /**
   * A re-sync of the live commit: dropped when the commit's status is this state already, so
   * a re-sync that keeps failing posts `failure` once, and `success` only when it recovers.
   */
  quiet: boolean;
}

const STATES = ['pending', 'success', 'failure', 'superseded', 'canceled'] as const;
const count = z.coerce.number().int().nonnegative().default(0);
const optionalNumber = z.coerce.number().optional();

/** One commit's outbox hash as read back from Redis. */
const entrySchema = z.object({
  environment: z.string(),
  sha: z.string(),
  provider: z.enum(['github', 'gitlab']),
  repo: z.string(),
  ref: z.string(),
  state: z.enum(STATES),
  description: z.string().default(''),
  targetUrl: z.string(),
  jobId: z.string(),
  seq: count,
  deliveredSeq: count,
  deliveredState: z.enum(STATES).optional(),
  deliveredDescription: z.string().optional(),
  deliveredAt: optionalNumber,
  failures: count,
  /** The seq of the status whose delivery failed last: a first failure of a newer one is news. */
  failedSeq: count,
  firstFailureAt: optionalNumber,
  lastError: z.string().optional(),
  lastHttpStatus: z.string().optional(),
  gaveUpSeq: count,
});

export type OutboxEntry = z.infer<typeof entrySchema>;

export type DeliveryResult =
  | { outcome: 'delivered'; seq: number; state: DeployStatusState; description: string }
  | {
      outcome: 'retry';
      seq: number;
      nextAttemptAt: number;
      notBefore?: number;
      error: string;
      httpStatus: string;
    }
  | { outcome: 'gave-up'; seq: number; error: string; httpStatus: string };

/**
 * KEYS: hash, due. ARGV: member, now, ttlMs, quiet, then the offer's fields as name/value pairs
 * (state first, jobId second). Returns the new seq, or 0 when the offer changes nothing.
 *
 * - `superseded` never replaces a deploy's own final word (success/failure/canceled): a commit that was
 *   deployed is not "not deployed itself" because a later job of it was overtaken.
 * - a quiet offer of the state the commit holds already is dropped (re-syncs of the live commit),
 *   unless that state was given up over REOFFER_AFTER_GIVE_UP_MS ago: the re-sync is then the
 *   next chance to show it (a token or permission fixed since), at most once an hour.
 * - a job's `pending` after that job's own final status is a late start from an earlier
 *   attempt (another worker): dropped.
 * Offers are ordered by the moment they reach Redis, whichever worker makes them.
 */
/** How long after a give-up a re-sync may offer the same state again (see OFFER_SCRIPT). */
export const REOFFER_AFTER_GIVE_UP_MS = 3600_000;

const OFFER_SCRIPT = `
local current = redis.call('HMGET', KEYS[1], 'state', 'jobId', 'notBefore', 'seq', 'gaveUpSeq', 'gaveUpAt')
local state = ARGV[6]
local jobId = ARGV[8]
if current[1] then
  local final = current[1] == 'success' or current[1] == 'failure' or current[1] == 'canceled'
  local lastSeq = tonumber(current[4] or '0')
  local gaveUp = lastSeq > 0 and tonumber(current[5] or '0') >= lastSeq
    and tonumber(ARGV[2]) - tonumber(current[6] or '0') >= ${REOFFER_AFTER_GIVE_UP_MS}
  if (state == 'superseded' and final) or (ARGV[4] == '1' and current[1] == state and not gaveUp)
    or (state == 'pending' and current[1] ~= 'pending' and current[2] == jobId) then
    redis.call('PEXPIRE', KEYS[1], ARGV[3])
    return 0
  end
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
for i = 5, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
local at = tonumber(ARGV[2])
local notBefore = tonumber(current[3] or '0')
if notBefore > at then at = notBefore end
redis.call('ZADD', KEYS[2], at, ARGV[1])
return seq
`;

/**
 * KEYS: hash, due. ARGV: member, outcome, seq, now, ttlMs, then outcome fields. The due entry
 * goes only when what was sent is still the newest desired status.
 */
const COMPLETE_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 0
end
local moved = redis.call('HGET', KEYS[1], 'seq') ~= ARGV[3]
local outcome = ARGV[2]
if outcome == 'delivered' then
  redis.call('HSET', KEYS[1], 'deliveredSeq', ARGV[3], 'deliveredState', ARGV[6],
    'deliveredDescription', ARGV[7], 'deliveredAt', ARGV[4], 'failures', 0)
  redis.call('HDEL', KEYS[1], 'firstFailureAt', 'lastError', 'lastHttpStatus', 'notBefore')
  if not moved then redis.call('ZREM', KEYS[2], ARGV[1]) end
elseif outcome == 'retry' then
  redis.call('HINCRBY', KEYS[1], 'failures', 1)
  redis.call('HSET', KEYS[1], 'failedSeq', ARGV[3])
  redis.call('HSETNX', KEYS[1], 'firstFailureAt', ARGV[4])
  redis.call('HSET', KEYS[1], 'lastError', ARGV[7], 'lastHttpStatus', ARGV[8])
  if ARGV[9] ~= '' then redis.call('HSET', KEYS[1], 'notBefore', ARGV[9]) end
  local at = ARGV[6]
  if moved then
    -- A newer status was offered while this one was out: due now (within a rate limit's
    -- end), not after the backoff of the one that failed.
    at = ARGV[4]
    if ARGV[9] ~= '' and tonumber(ARGV[9]) > tonumber(at) then at = ARGV[9] end
  end
  redis.call('ZADD', KEYS[2], at, ARGV[1])
else
  redis.call('HSET', KEYS[1], 'gaveUpSeq', ARGV[3], 'gaveUpAt', ARGV[4], 'failures', 0, 'lastError', ARGV[6], 'lastHttpStatus', ARGV[7])
  redis.call('HDEL', KEYS[1], 'firstFailureAt', 'notBefore')
  if not moved then redis.call('ZREM', KEYS[2], ARGV[1]) end
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
`;

const RELEASE_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

/** Kept a week after the last change: long enough for any retry, short enough to clean up. */
export const OUTBOX_TTL_MS = 7 * 24 * 3600 * 1000;

export interface CommitRef {
  environment: string;
  sha: string;
}

/**
 * The durable outbox of commit statuses: per environment and commit one hash holding the
 * status pushgate wants the commit to show (with a `seq` that grows with every change) and
 * what it last delivered, plus a ZSET of the commits due for an attempt. Nothing owed lives
 * only in a worker's memory: any worker delivers what another could not.
 */
export class StatusOutbox {
  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
    private readonly ttlMs = OUTBOX_TTL_MS,
  ) {}

  /** The new seq of the commit's desired status, or 0 when the offer was dropped (see OFFER_SCRIPT). */
  async offer(offer: StatusOffer, now = Date.now()): Promise<number> {
    const fields: Record<string, string> = {
      state: offer.state,
      jobId: offer.jobId,
      environment: offer.environment,
      sha: offer.sha,
      provider: offer.provider,
      repo: offer.repo,
      ref: offer.ref,
      description: offer.description,
      targetUrl: offer.targetUrl,
      offeredAt: String(now),
    };
    const result = await this.redis.eval(
      OFFER_SCRIPT,
      2,
      this.keys.commitStatus(offer.environment, offer.sha),
      this.keys.commitStatusDue,
      member(offer),
      now,
      this.ttlMs,
      offer.quiet ? '1' : '0',
      ...Object.entries(fields).flat(),
    );
    return Number(result);
  }

  /** Commits whose next attempt is due by `now`, oldest first, from the `offset`-th on. */
  async due(now: number, limit: number, offset = 0): Promise<CommitRef[]> {
    const members = await this.redis.zrangebyscore(
      this.keys.commitStatusDue,
      '-inf',
      now,
      'LIMIT',
      offset,
      limit,
    );
    return members.map(parseMember);
  }

  /** Not due before `at` (a provider's rate limit): only while it is due, i.e. still in the set. */
  async postpone(ref: CommitRef, at: number): Promise<void> {
    await this.redis.zadd(this.keys.commitStatusDue, 'XX', at, member(ref));
  }

  async read(ref: CommitRef): Promise<OutboxEntry | null> {
    const hash = await this.redis.hgetall(this.keys.commitStatus(ref.environment, ref.sha));
    if (Object.keys(hash).length === 0) return null;
    const parsed = entrySchema.safeParse(hash);
    return parsed.success ? parsed.data : null;
  }

  /** Drops a due entry whose hash is gone or unreadable. */
  async forget(ref: CommitRef): Promise<void> {
    await this.redis.zrem(this.keys.commitStatusDue, member(ref));
  }

  /** True when this process may send the commit's status for the next `ms` (SET NX PX with `token`). */
  async lease(ref: CommitRef, token: string, ms: number): Promise<boolean> {
    const ok = await this.redis.set(
      this.keys.commitStatusLease(ref.environment, ref.sha),
      token,
      'PX',
      ms,
      'NX',
    );
    return ok === 'OK';
  }

  async release(ref: CommitRef, token: string): Promise<void> {
    await this.redis.eval(RELEASE_SCRIPT, 1, this.keys.commitStatusLease(ref.environment, ref.sha), token);
  }

  async complete(ref: CommitRef, result: DeliveryResult, now = Date.now()): Promise<void> {
    const fields =
      result.outcome === 'delivered'
        ? [result.state, result.description]
        : result.outcome === 'retry'
          ? [result.nextAttemptAt, result.error, result.httpStatus, result.notBefore ?? '']
          : [result.error, result.httpStatus];
    await this.redis.eval(
      COMPLETE_SCRIPT,
      2,
      this.keys.commitStatus(ref.environment, ref.sha),
      this.keys.commitStatusDue,
      member(ref),
      result.outcome,
      result.seq,
      now,
      this.ttlMs,
      ...fields,
    );
  }
}

function member(ref: CommitRef): string {
  return `${ref.environment}:${ref.sha}`;
}

function parseMember(text: string): CommitRef {
  const at = text.lastIndexOf(':');
  return { environment: text.slice(0, at), sha: text.slice(at + 1) };
}
