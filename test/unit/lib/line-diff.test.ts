import { describe, expect, it } from 'vitest';
import { diffLines, unifiedHunks, type DiffLine } from '../../../src/lib/line-diff.js';

function side(lines: DiffLine[], dropped: '-' | '+'): string[] {
  return lines.filter((entry) => entry.kind !== dropped).map((entry) => entry.text);
}

/** The fewest removed plus added lines that turn `a` into `b`: through their longest common subsequence. */
function fewestEdits(a: string[], b: string[]): number {
  const lcs = Array.from({ length: a.length + 1 }, () => new Array<number>(b.length + 1).fill(0));
  for (let i = a.length - 1; i >= 0; i--)
    for (let j = b.length - 1; j >= 0; j--)
      lcs[i]![j] = a[i] === b[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
  return a.length + b.length - 2 * lcs[0]![0]!;
}

describe('diffLines', () => {
  it('gives a shortest edit script that rebuilds both sides, on many random pairs', () => {
    let seed = 7;
    const random = (below: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % below;
    };
    for (let round = 0; round < 300; round++) {
      const a = Array.from({ length: random(12) }, () => 'abcd'[random(4)]!);
      const b = Array.from({ length: random(12) }, () => 'abcd'[random(4)]!);
      const lines = diffLines(a, b);
      expect(side(lines, '+')).toEqual(a);
      expect(side(lines, '-')).toEqual(b);
      expect(lines.filter((entry) => entry.kind !== ' ')).toHaveLength(fewestEdits(a, b));
    }
  });

  it('past its edit limit splits the change at lines found once on each side, and stays as short', () => {
    const before = Array.from({ length: 20_000 }, (_, n) => `key${n}: value ${n}`);
    const after = before.map((text, n) => (n % 11 === 5 ? `${text} changed` : text));
    const changedLines = before.filter((_, n) => n % 11 === 5).length;

    const lines = diffLines(before, after);

    expect(side(lines, '+')).toEqual(before);
    expect(side(lines, '-')).toEqual(after);
    expect(lines.filter((entry) => entry.kind !== ' ')).toHaveLength(2 * changedLines);
  });

  it('past its edit limit, with no line found once on each side, shows the differing middle removed, then added', () => {
    const lines = diffLines(['same', 'a', 'b', 'end'], ['same', 'c', 'd', 'end'], 1);
    expect(lines).toEqual([
      { kind: ' ', text: 'same' },
      { kind: '-', text: 'a' },
      { kind: '-', text: 'b' },
      { kind: '+', text: 'c' },
      { kind: '+', text: 'd' },
      { kind: ' ', text: 'end' },
    ]);
  });
});

describe('unifiedHunks', () => {
  it('numbers each hunk as diff -u does, with three lines of context, and joins hunks that touch', () => {
    const before = Array.from({ length: 20 }, (_, n) => `line ${n + 1}`);
    const after = [...before];
    after[1] = 'line 2 changed';
    after.splice(15, 1);
    expect(unifiedHunks(diffLines(before, after))).toEqual([
      '@@ -1,5 +1,5 @@',
      ' line 1',
      '-line 2',
      '+line 2 changed',
      ' line 3',
      ' line 4',
      ' line 5',
      '@@ -13,7 +13,6 @@',
      ' line 13',
      ' line 14',
      ' line 15',
      '-line 16',
      ' line 17',
      ' line 18',
      ' line 19',
    ]);
    const near = [...before];
    near[5] = 'line 6 changed';
    near[11] = 'line 12 changed';
    expect(unifiedHunks(diffLines(before, near))[0]).toBe('@@ -3,13 +3,13 @@');
  });

  it('starts an empty side at the line before, leaves out a count of one, and is empty when nothing changed', () => {
    expect(unifiedHunks(diffLines([], ['a', 'b']))).toEqual(['@@ -0,0 +1,2 @@', '+a', '+b']);
    expect(unifiedHunks(diffLines(['a'], ['a']))).toEqual([]);
    expect(unifiedHunks(diffLines(['a'], ['b']))).toEqual(['@@ -1 +1 @@', '-a', '+b']);
  });
});
