/** One line of a diff: kept (' '), removed ('-') or added ('+'). */
export interface DiffLine {
  kind: ' ' | '-' | '+';
  text: string;
}

/**
 * Past this many edits (removed plus added lines) the shortest edit script is not searched
 * for: Myers' trace grows with its square. Such a change is split at the lines found once on
 * each side (as patience diff does), and each part diffed on its own; a part without such a
 * line is shown as every line of the one side removed and every line of the other added.
 */
const MAX_EDITS = 2_000;

/**
 * The lines of `before` and `after` as a shortest edit script (Myers' O(ND) algorithm), on
 * what lies between their common first and last lines.
 */
export function diffLines(
  before: readonly string[],
  after: readonly string[],
  maxEdits = MAX_EDITS,
): DiffLine[] {
  let start = 0;
  while (start < before.length && start < after.length && before[start] === after[start]) start++;
  let endBefore = before.length;
  let endAfter = after.length;
  while (endBefore > start && endAfter > start && before[endBefore - 1] === after[endAfter - 1]) {
    endBefore--;
    endAfter--;
  }
  const a = before.slice(start, endBefore);
  const b = after.slice(start, endAfter);
  const middle = shortestEdits(a, b, maxEdits) ?? anchoredEdits(a, b, maxEdits);
  return [
    ...before.slice(0, start).map((text) => line(' ', text)),
    ...middle,
    ...before.slice(endBefore).map((text) => line(' ', text)),
  ];
}

/**
 * The lines found exactly once in each side, as pairs of positions, the longest run of them
 * in the same order on both (patience sorting); each stretch between two is diffed alone.
 */
function anchoredEdits(a: readonly string[], b: readonly string[], maxEdits: number): DiffLine[] {
  const anchors = uniqueCommonLines(a, b);
  if (anchors.length === 0) return [...a.map((text) => line('-', text)), ...b.map((text) => line('+', text))];
  const lines: DiffLine[] = [];
  let fromA = 0;
  let fromB = 0;
  for (const [atA, atB] of anchors) {
    lines.push(...diffLines(a.slice(fromA, atA), b.slice(fromB, atB), maxEdits), line(' ', a[atA]!));
    fromA = atA + 1;
    fromB = atB + 1;
  }
  lines.push(...diffLines(a.slice(fromA), b.slice(fromB), maxEdits));
  return lines;
}

function uniqueCommonLines(a: readonly string[], b: readonly string[]): [number, number][] {
  const count = (lines: readonly string[]): Map<string, number> => {
    const counts = new Map<string, number>();
    for (const text of lines) counts.set(text, (counts.get(text) ?? 0) + 1);
    return counts;
  };
  const inA = count(a);
  const inB = count(b);
  const whereInB = new Map<string, number>();
  b.forEach((text, index) => whereInB.set(text, index));
  const pairs: [number, number][] = [];
  a.forEach((text, index) => {
    if (inA.get(text) === 1 && inB.get(text) === 1) pairs.push([index, whereInB.get(text)!]);
  });
  // The longest increasing run of positions in b (pairs are in order of a): patience sorting.
  const tails: number[] = [];
  const previous = new Array<number>(pairs.length).fill(-1);
  pairs.forEach(([, atB], index) => {
    let low = 0;
    let high = tails.length;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (pairs[tails[middle]!]![1] < atB) low = middle + 1;
      else high = middle;
    }
    if (low > 0) previous[index] = tails[low - 1]!;
    tails[low] = index;
  });
  const run: [number, number][] = [];
  for (let index = tails.at(-1) ?? -1; index >= 0; index = previous[index]!) run.push(pairs[index]!);
  return run.reverse();
}

function line(kind: DiffLine['kind'], text: string): DiffLine {
  return { kind, text };
}

function shortestEdits(a: readonly string[], b: readonly string[], maxEdits: number): DiffLine[] | undefined {
  const limit = Math.min(a.length + b.length, maxEdits);
  const offset = limit + 1;
  // v[k + offset]: the furthest x reached on diagonal k (y = x - k).
  let v = new Int32Array(2 * limit + 3);
  const trace: Int32Array[] = [];
  for (let d = 0; d <= limit; d++) {
    trace.push(v);
    v = v.slice();
    for (let k = -d; k <= d; k += 2) {
      const down = k === -d || (k !== d && v[k - 1 + offset]! < v[k + 1 + offset]!);
      let x = down ? v[k + 1 + offset]! : v[k - 1 + offset]! + 1;
      let y = x - k;
      while (x < a.length && y < b.length && a[x] === b[y]) {
        x++;
        y++;
      }
      v[k + offset] = x;
      if (x >= a.length && y >= b.length) return backtrack(a, b, trace, offset);
    }
  }
  return undefined;
}

/** Walks the trace back from the end: trace[d] is the furthest reach before step d. */
function backtrack(
  a: readonly string[],
  b: readonly string[],
  trace: readonly Int32Array[],
  offset: number,
): DiffLine[] {
  const lines: DiffLine[] = [];
  let x = a.length;
  let y = b.length;
  for (let d = trace.length - 1; d >= 0; d--) {
    const v = trace[d]!;
    const k = x - y;
    const down = k === -d || (k !== d && v[k - 1 + offset]! < v[k + 1 + offset]!);
    const previousK = down ? k + 1 : k - 1;
    const previousX = v[previousK + offset]!;
    const previousY = previousX - previousK;
    while (x > previousX && y > previousY) {
      lines.push(line(' ', a[x - 1]!));
      x--;
      y--;
    }
    if (d > 0) {
      if (x === previousX) lines.push(line('+', b[y - 1]!));
      else lines.push(line('-', a[x - 1]!));
    }
    x = previousX;
    y = previousY;
  }
  return lines.reverse();
}

/**
 * The changed lines of a diff with `context` kept lines around each, as the hunks of a
 * unified diff (`@@ -start,count +start,count @@`, then the lines); empty when nothing changed.
 */
export function unifiedHunks(lines: readonly DiffLine[], context = 3): string[] {
  const changed = lines.flatMap((entry, index) => (entry.kind === ' ' ? [] : [index]));
  if (changed.length === 0) return [];
  const ranges: [number, number][] = [];
  for (const index of changed) {
    const from = Math.max(0, index - context);
    const to = Math.min(lines.length, index + context + 1);
    const last = ranges.at(-1);
    if (last && from <= last[1]) last[1] = Math.max(last[1], to);
    else ranges.push([from, to]);
  }
  const out: string[] = [];
  // Lines of each side before each position, to number the hunks.
  let lineA = 0;
  let lineB = 0;
  let position = 0;
  for (const [from, to] of ranges) {
    for (; position < from; position++) {
      if (lines[position]!.kind !== '+') lineA++;
      if (lines[position]!.kind !== '-') lineB++;
    }
    const hunk = lines.slice(from, to);
    const countA = hunk.filter((entry) => entry.kind !== '+').length;
    const countB = hunk.filter((entry) => entry.kind !== '-').length;
    out.push(`@@ -${hunkRange(lineA, countA)} +${hunkRange(lineB, countB)} @@`);
    for (const entry of hunk) out.push(`${entry.kind}${entry.text}`);
  }
  return out;
}

/**
 * `start,count` of one side of a hunk, as diff -u writes it: the start is the hunk's first
 * line (1-based), or the line before when the side has none; a count of one is left out.
 */
function hunkRange(linesBefore: number, count: number): string {
  const start = count === 0 ? linesBefore : linesBefore + 1;
  return count === 1 ? String(start) : `${start},${count}`;
}
