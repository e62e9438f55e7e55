import { randomBytes } from 'node:crypto';
import type { RedisClient } from '../queue/connection.js';
import { PushgateError } from '../lib/errors.js';
import type { Keys } from '../queue/keys.js';
import type { LockFence } from '../status/job-store.js';

/** Deletes the lock only if it still carries our token: a lock that expired and was taken by another worker is theirs. */
const RELEASE_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

/** Extends the lock only if it still carries our token. */
const RENEW_SCRIPT = `
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if holder then return 0 end
return -1
`;
/** Why a lock is no longer ours: a key gone is not another worker's (an expiry, a Redis restart). */
const TAKEN = 'another worker holds it';
const GONE = 'it is gone (it expired, or Redis lost it)';

export interface HeldLock {
  environment: string;
  fence: LockFence;
  /**
   * Throws unless the lock is still ours in Redis and was renewed within its TTL: the
   * fencing check made before every write to the cluster.
   */
  assertHeld: () => Promise<void>;
  /**
   * Throws unless the lock is, as far as this process knows without asking Redis, still ours
   * with a tenth of its TTL to spare: checked before each object's write inside a group, so a
   * worker frozen mid-group (SIGSTOP, a VM pause) sends nothing more once it runs again.
   */
  assertHeldNow: () => void;
  /**
   * Known to be lost: a renewal found another worker's token in it, or it went unrenewed past
   * its TTL (after which another worker may take it, and the job with it). A blip of Redis
   * shorter than the TTL does not count.
   */
  isLost: () => Promise<boolean>;
  release: () => Promise<void>;
}

/**
 * One deploy per environment across every worker: SET NX PX with a random token, renewed
 * while the deploy runs, released by compare-and-delete. A worker that dies stops renewing,
 * so the lock expires after `ttlMs` and a retry elsewhere can take it.
 */
export class EnvironmentLock {
  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
    private readonly ttlMs: number,
  ) {}

  /** Some deploy of the environment holds the lock now. */
  async isBusy(environment: string): Promise<boolean> {
    return (await this.redis.exists(this.keys.environmentLock(environment))) === 1;
  }

  /** The lock, or null when another deploy of the environment holds it. */
  async acquire(environment: string): Promise<HeldLock | null> {
    const key = this.keys.environmentLock(environment);
    const token = randomBytes(16).toString('hex');
    const ok = await this.redis.set(key, token, 'PX', this.ttlMs, 'NX');
    if (ok !== 'OK') return null;

    let renewedAt = Date.now();
    let lost: string | false = false;
    let released = false;
    const renew = async (): Promise<void> => {
      try {
        const result = await this.redis.eval(RENEW_SCRIPT, 1, key, token, this.ttlMs);
        if (result === 1) renewedAt = Date.now();
        else lost = result === 0 ? TAKEN : GONE;
      } catch {
        // Redis unreachable: the lock may still be ours, assertHeld decides by renewedAt.
      }
    };
    // Renewing three times per TTL leaves two chances to succeed before it expires.
    const timer = setInterval(() => void renew(), Math.max(100, Math.floor(this.ttlMs / 3)));
    timer.unref();

    const fail = (why: string): never => {
      throw new PushgateError('transient', `lost the deploy lock of environment "${environment}": ${why}`);
    };
    const assertHeldLocally = (spareMs: number): void => {
      if (released) fail('already released');
      if (lost) fail(lost);
      const age = Date.now() - renewedAt;
      if (age >= this.ttlMs - spareMs) fail(`not renewed for ${age} ms`);
    };
    return {
      environment,
      fence: { key, token },
      // Renewed every third of the TTL, so a tenth to spare fails only a renewal already late.
      assertHeldNow: () => assertHeldLocally(Math.floor(this.ttlMs / 10)),
      assertHeld: async () => {
        assertHeldLocally(0);
        const current = await this.redis.get(key);
        if (current !== token) {
          lost = current === null ? GONE : TAKEN;
          fail(lost);
        }
      },
      // From the renewals alone (another token is seen within a third of the TTL): a command
      // sent while Redis is away would wait for its return, and hold up the health wait.
      isLost: () => Promise.resolve(released || lost !== false || Date.now() - renewedAt >= this.ttlMs),
      release: async () => {
        if (released) return;
        released = true;
        clearInterval(timer);
        await this.redis.eval(RELEASE_SCRIPT, 1, key, token).catch(() => undefined);
      },
    };
  }
}
