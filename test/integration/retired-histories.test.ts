import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/lib/logger.js';
import type { ProducerServices } from '../../src/runtime.js';
import type { ClaimRequest } from '../../src/status/job-store.js';
import {
  claimRetiredSweep,
  dropRetiredHistories,
  RETIRED_HISTORY_KEPT_MS,
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

describe('the job history of an environment no running worker has (real Redis)', () => {
  it('goes a week after its last job, all of it, with its quiet re-syncs and configuration sightings; its last applied commit stays', async () => {
    const connected = await services();
    const { redis: client, keys, store } = connected;
    const gone = await history(connected, 'gone', 250, RETIRED_HISTORY_KEPT_MS + DAY_MS);
    const configured = await history(connected, 'web', 3, RETIRED_HISTORY_KEPT_MS + DAY_MS);
    const elsewhere = await history(connected, 'other', 3, RETIRED_HISTORY_KEPT_MS + DAY_MS);
    const lately = await history(connected, 'lately', 3, RETIRED_HISTORY_KEPT_MS - DAY_MS);
    await client.zadd(keys.quietResyncs('gone'), 1, gone[0]!);
    await client.hset(keys.configSeen('gone'), 'abc', '1');
    await client.hset(keys.configLive('gone'), 'abc', '{}');
    await client.hset(keys.environment('gone'), 'lastAppliedSha', 'f'.repeat(40));

    const dropped = await dropRetiredHistories({
      redis: client,
      keys,
      runningEnvironments: () => Promise.resolve(new Set(['web', 'other'])),
      logger: silentLogger(),
    });

    expect(dropped).toEqual(new Map([['gone', 250]]));
    expect(await store.getMany(gone)).toEqual([]);
    expect(await store.list({ environment: 'gone', limit: 500 })).toEqual([]);
    const all = new Set(await client.zrange(keys.jobsAll, 0, -1));
    expect(gone.filter((id) => all.has(id))).toEqual([]);
    expect(
      await client.exists(keys.quietResyncs('gone'), keys.configSeen('gone'), keys.configLive('gone')),
    ).toBe(0);
    expect(await client.hget(keys.environment('gone'), 'lastAppliedSha')).toBe('f'.repeat(40));
    // Configured here or on another running worker, or with a job within the week: kept whole.
    for (const ids of [configured, elsewhere, lately]) {
      expect((await store.getMany(ids)).map((record) => record.id)).toEqual(ids);
      expect(ids.every((id) => all.has(id))).toBe(true);
    }
  });

  it('keeps every history while a running worker cannot be read (another version), and sweeps once an hour per installation', async () => {
    const connected = await services();
    const { redis: client, keys, store } = connected;
    const gone = await history(connected, 'gone', 3, RETIRED_HISTORY_KEPT_MS + DAY_MS);

    const dropped = await dropRetiredHistories({
      redis: client,
      keys,
      runningEnvironments: () => Promise.resolve(undefined),
      logger: silentLogger(),
    });

    expect(dropped.size).toBe(0);
    expect(await store.getMany(gone)).toHaveLength(3);
    expect(await claimRetiredSweep(connected)).toBe(true);
    expect(await claimRetiredSweep(connected)).toBe(false);
    expect(await client.pttl(keys.retiredSweep)).toBeGreaterThan(3_500_000);
  });

  it('keeps a history whose environment got a job after the sweep read it as retired (added back)', async () => {
    const connected = await services();
    const { redis: client, keys, store } = connected;
    const gone = await history(connected, 'back', 3, RETIRED_HISTORY_KEPT_MS + DAY_MS);

    const dropped = await dropRetiredHistories({
      redis: client,
      keys,
      // Between the worker's read of who runs what and the drop, the environment comes back.
      runningEnvironments: async () => {
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
      logger: silentLogger(),
    });

    expect(dropped.size).toBe(0);
    expect(await store.getMany([...gone, 'back-new'])).toHaveLength(4);
  });
});
