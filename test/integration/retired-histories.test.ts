import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/lib/logger.js';
import type { ProducerServices } from '../../src/runtime.js';
import type { ClaimRequest } from '../../src/status/job-store.js';
import {
  claimRetiredSweep,
  dropRetiredHistories,
  RETIRED_HISTORY_KEPT_MS,
  type RetiredSweepResult,
} from '../../src/status/retired-histories.js';
import { producerFixture } from '../helpers/producer.js';

const { services } = producerFixture('retired');

const DAY_MS = 86_400_000;

/** Writes `count` job records of the environment, the newest received `agoMs` ago; returns their ids. */
async function history(
  { store }: ProducerServices,
  environment: string,
  count: number,
  agoMs: number,
): Promise<string[]> {
  const newest = Date.now() - agoMs;
  const requests: ClaimRequest[] = Array.from({ length: count }, (_, n) => ({
    id: `${environment}-${n}`,
    environment,
    trigger: { kind: 'manual', sha: n.toString(16).padStart(40, '0') },
    receivedAt: new Date(newest - (count - 1 - n) * 60_000).toISOString(),
  }));
  for (let start = 0; start < requests.length; start += 100)
    await store.claimMany(requests.slice(start, start + 100));
  return requests.map((request) => request.id);
}

interface SweepOptions {
  now?: number;
  ranLately?: (environment: string) => Promise<boolean>;
  running?: () => Promise<ReadonlySet<string> | undefined>;
}

function sweep({ redis, keys }: ProducerServices, options: SweepOptions = {}): Promise<RetiredSweepResult> {
  return dropRetiredHistories({
    redis,
    keys,
    runningEnvironments: options.running ?? (() => Promise.resolve(new Set(['web', 'other']))),
    ranLately: options.ranLately ?? (() => Promise.resolve(false)),
    logger: silentLogger(),
    ...(options.now === undefined ? {} : { now: options.now }),
  });
}

/** A sweep a week and a day ago (which finds the environments retired), then one now. */
async function sweepAWeekApart(
  connected: ProducerServices,
  options: SweepOptions = {},
): Promise<RetiredSweepResult> {
  await sweep(connected, { ...options, now: Date.now() - RETIRED_HISTORY_KEPT_MS - DAY_MS });
  return sweep(connected, options);
}

describe('the job history of an environment no running worker has (real Redis)', () => {
  it('goes a week after its last job and its removal, all of it, with the keys naming it; its last applied commit stays', async () => {
    const connected = await services();
    const { redis: client, keys, store } = connected;
    const gone = await history(connected, 'gone', 250, RETIRED_HISTORY_KEPT_MS + DAY_MS);
    const configured = await history(connected, 'web', 3, RETIRED_HISTORY_KEPT_MS + DAY_MS);
    const elsewhere = await history(connected, 'other', 3, RETIRED_HISTORY_KEPT_MS + DAY_MS);
    const lately = await history(connected, 'lately', 3, RETIRED_HISTORY_KEPT_MS - DAY_MS);
    await client.zadd(keys.quietResyncs('gone'), 1, gone[0]!);
    await client.hset(keys.configSeen('gone'), 'abc', '1');
    await client.hset(keys.configLive('gone'), 'abc', '{}');
    await client.set(keys.reconcileRemoved('gone'), 'x');
    await client.set(keys.pendingSync('gone'), gone.at(-1)!);
    await client.hset(keys.environment('gone'), 'lastAppliedSha', 'f'.repeat(40));
    const shaOf = (n: number): string => n.toString(16).padStart(40, '0');
    expect(await client.get(keys.shaJob('gone', shaOf(7)))).toBe('gone-7');

    const dropped = await sweepAWeekApart(connected);

    expect(dropped).toEqual(new Map([['gone', 250]]));
    expect(await store.getMany(gone)).toEqual([]);
    expect(await store.list({ environment: 'gone', limit: 500 })).toEqual([]);
    const all = new Set(await client.zrange(keys.jobsAll, 0, -1));
    expect(gone.filter((id) => all.has(id))).toEqual([]);
    expect(
      await client.exists(
        keys.quietResyncs('gone'),
        keys.configSeen('gone'),
        keys.configLive('gone'),
        keys.reconcileRemoved('gone'),
        keys.retiredSince('gone'),
        keys.shaJob('gone', shaOf(7)),
        keys.pendingSync('gone'),
      ),
    ).toBe(0);
    expect(await client.hget(keys.environment('gone'), 'lastAppliedSha')).toBe('f'.repeat(40));
    // Configured here or on another running worker, or with a job within the week: kept whole.
    for (const ids of [configured, elsewhere, lately]) {
      expect((await store.getMany(ids)).map((record) => record.id)).toEqual(ids);
      expect(ids.every((id) => all.has(id))).toBe(true);
    }
    expect(await client.get(keys.shaJob('web', shaOf(1)))).toBe('web-1');
  });

  it('counts the week from the first sweep that finds it retired too: a quiet environment removed today keeps its history', async () => {
    const connected = await services();
    const { redis: client, keys, store } = connected;
    const quiet = await history(connected, 'quiet', 3, 30 * DAY_MS);
    const now = Date.now();

    expect((await sweep(connected, { now })).size).toBe(0);
    expect((await sweep(connected, { now: now + RETIRED_HISTORY_KEPT_MS - DAY_MS })).size).toBe(0);
    expect(await store.getMany(quiet)).toHaveLength(3);
    // Added back meanwhile: the count starts again when it is next removed.
    await sweep(connected, { now, running: () => Promise.resolve(new Set(['quiet'])) });
    expect(await client.exists(keys.retiredSince('quiet'))).toBe(0);
    expect((await sweep(connected, { now: now + RETIRED_HISTORY_KEPT_MS + DAY_MS })).size).toBe(0);

    expect(await sweep(connected, { now: now + 2 * RETIRED_HISTORY_KEPT_MS + 2 * DAY_MS })).toEqual(
      new Map([['quiet', 3]]),
    );
  });

  it('keeps every history while a running worker cannot be read, and one whose worker ran lately; sweeps once an hour per installation', async () => {
    const connected = await services();
    const { redis: client, keys, store } = connected;
    const gone = await history(connected, 'gone', 3, RETIRED_HISTORY_KEPT_MS + DAY_MS);
    const stalled = await history(connected, 'stalled', 3, RETIRED_HISTORY_KEPT_MS + DAY_MS);

    expect((await sweepAWeekApart(connected, { running: () => Promise.resolve(undefined) })).size).toBe(0);
    expect(await store.getMany(gone)).toHaveLength(3);

    const dropped = await sweepAWeekApart(connected, {
      ranLately: (environment) => Promise.resolve(environment === 'stalled'),
    });
    expect(dropped).toEqual(new Map([['gone', 3]]));
    expect(await store.getMany(stalled)).toHaveLength(3);

    expect(await claimRetiredSweep(connected)).toBe(true);
    expect(await claimRetiredSweep(connected)).toBe(false);
    expect(await client.pttl(keys.retiredSweep)).toBeGreaterThan(3_500_000);
  });

  it('keeps a history whose environment got a job after the sweep read it as retired (added back)', async () => {
    const connected = await services();
    const { store } = connected;
    const back = await history(connected, 'back', 3, RETIRED_HISTORY_KEPT_MS + DAY_MS);
    await sweep(connected, { now: Date.now() - RETIRED_HISTORY_KEPT_MS - DAY_MS });

    const dropped = await sweep(connected, {
      // Between the worker's read of who runs what and the drop, the environment comes back.
      running: async () => {
        await store.claimMany([
          {
            id: 'back-new',
            environment: 'back',
            trigger: { kind: 'manual' },
            receivedAt: new Date().toISOString(),
          },
        ]);
        return new Set<string>();
      },
    });

    expect(dropped.size).toBe(0);
    expect(await store.getMany([...back, 'back-new'])).toHaveLength(4);
  });
});
