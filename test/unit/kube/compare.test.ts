import { describe, expect, it } from 'vitest';
import { jsonEqual, sameObject } from '../../../src/kube/compare.js';
import { mapWithConcurrency } from '../../../src/kube/map-with-concurrency.js';

describe('sameObject', () => {
  it('ignores server-managed metadata and status', () => {
    const live = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: {
        name: 'a',
        uid: '1',
        resourceVersion: '10',
        managedFields: [{ manager: 'x' }],
        creationTimestamp: 't',
        generation: 1,
      },
      data: { k: 'v' },
      status: { phase: 'old' },
    };
    const dryRun = {
      kind: 'ConfigMap',
      apiVersion: 'v1',
      metadata: { name: 'a', resourceVersion: '11' },
      data: { k: 'v' },
    };
    expect(sameObject(live, dryRun)).toBe(true);
  });

  it('sees a changed label or value', () => {
    const a = { metadata: { name: 'a', labels: { x: '1' } }, data: { k: 'v' } };
    expect(sameObject(a, { metadata: { name: 'a', labels: { x: '2' } }, data: { k: 'v' } })).toBe(false);
    expect(sameObject(a, { metadata: { name: 'a', labels: { x: '1' } }, data: { k: 'w' } })).toBe(false);
  });

  it('compares arrays in order and objects regardless of key order', () => {
    expect(jsonEqual({ a: [1, 2], b: { c: 1, d: 2 } }, { b: { d: 2, c: 1 }, a: [1, 2] })).toBe(true);
    expect(jsonEqual([1, 2], [2, 1])).toBe(false);
    expect(jsonEqual({ a: undefined }, { b: undefined })).toBe(false);
  });
});

describe('mapWithConcurrency', () => {
  it('keeps input order and never runs more than the limit at once', async () => {
    let running = 0;
    let peak = 0;
    const results = await mapWithConcurrency([5, 1, 4, 2, 3, 0], 2, async (n) => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((resolve) => setImmediate(resolve));
      running--;
      return n * 10;
    });
    expect(results).toEqual([50, 10, 40, 20, 30, 0]);
    expect(peak).toBe(2);
  });

  it('rejects with the first failure after the started calls settle', async () => {
    const started: number[] = [];
    await expect(
      mapWithConcurrency([1, 2, 3, 4], 2, (n) => {
        started.push(n);
        return n === 1 ? Promise.reject(new Error('one')) : Promise.resolve(n);
      }),
    ).rejects.toThrow('one');
    expect(started).not.toContain(4);
  });
});
