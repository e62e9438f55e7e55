import { describe, expect, it } from 'vitest';
import { countAnchorsAndAliases } from '../../../src/manifests/yaml-anchors.js';

describe('countAnchorsAndAliases', () => {
  it('counts anchors and aliases in block and flow collections', () => {
    expect(countAnchorsAndAliases('a: &a [1]\nb: *a\nc: [*a, &b 2]\n', 100)).toBe(4);
  });

  it('does not count & or * inside plain, quoted or block scalars, or comments', () => {
    const text = 'a: x*y&z\nb: "*q"\nc: \'&r\'\nd: |\n  *s &t\ne: 1 # *u\n--- |\n*top-level block text\n';
    expect(countAnchorsAndAliases(text, 100)).toBe(0);
  });

  it('stops counting one past the limit', () => {
    const text = Array.from({ length: 1000 }, (_, i) => `k${i}: &a${i} 1`).join('\n');
    expect(countAnchorsAndAliases(text, 10)).toBe(11);
  });
});
