import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * Compares two secrets in constant time. Hashing both first gives equal-length inputs, so
 * neither the content nor the length of the expected value leaks through timing.
 */
export function secretEquals(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/** True when `given` equals any of `expected`; every candidate is compared, never short-circuited. */
export function matchesAnySecret(given: string, expected: readonly string[]): boolean {
  let found = false;
  for (const candidate of expected) found = secretEquals(given, candidate) || found;
  return found;
}
