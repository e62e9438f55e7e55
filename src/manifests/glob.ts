/**
 * Shell-style match of a whole name: `*` is any run of characters (also none), `?` is
 * exactly one; everything else is literal. Namespace names have no `/`, so there is no
 * path semantics to honour.
 */
export function matchGlob(pattern: string, value: string): boolean {
  // Iterative matcher with one backtrack point: linear in practice, no regex injection.
  let p = 0;
  let v = 0;
  let starP = -1;
  let starV = 0;
  while (v < value.length) {
    const token = pattern[p];
    if (token === '*') {
      starP = p++;
      starV = v;
    } else if (token !== undefined && (token === '?' || token === value[v])) {
      p++;
      v++;
    } else if (starP >= 0) {
      p = starP + 1;
      v = ++starV;
    } else {
      return false;
    }
  }
  while (pattern[p] === '*') p++;
  return p === pattern.length;
}

export function matchAnyGlob(patterns: readonly string[], value: string): boolean {
  return patterns.some((pattern) => matchGlob(pattern, value));
}
