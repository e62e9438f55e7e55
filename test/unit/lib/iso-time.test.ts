import { describe, expect, it } from 'vitest';
import { isoTime } from '../../../src/lib/iso-time.js';

describe('isoTime', () => {
  it('writes what Date#toISOString writes, within a minute, across minutes and at the edges', () => {
    const start = Date.UTC(2026, 11, 31, 23, 58, 59, 990);
    const times = [
      ...Array.from({ length: 200_000 }, (_, index) => start + index * 7),
      0,
      -1,
      1,
      59_999,
      60_000,
      -60_000,
      -60_001,
      8.64e15,
      -8.64e15,
      253_402_300_799_999,
      253_402_300_800_000,
      -62_167_219_200_000,
      -62_167_219_200_001,
      // Fractions are dropped as Date drops them.
      5.5,
      6.7,
      -0.5,
      start + 0.25,
    ];
    for (const ms of times) expect(isoTime(ms)).toBe(new Date(ms).toISOString());
  });

  it('throws as Date#toISOString does for a time no Date holds', () => {
    isoTime(8.64e15);
    for (const ms of [8.64e15 + 1, Number.NaN, Infinity, -8.64e15 - 1])
      expect(() => isoTime(ms)).toThrow(RangeError);
  });
});
