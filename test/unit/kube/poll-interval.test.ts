import { describe, expect, it } from 'vitest';
import { pollIntervalAfter } from '../../../src/kube/wait.js';

describe('pollIntervalAfter', () => {
  it('is half a second for the first 5 s, then a tenth of the time waited, up to 5 s', () => {
    expect([0, 4_000, 5_000, 20_000, 49_000, 50_000, 300_000].map(pollIntervalAfter)).toEqual([
      500, 500, 500, 2_000, 4_900, 5_000, 5_000,
    ]);
  });
});
