import { describe, expect, it } from 'vitest';
import { measureYaml } from '../../../src/manifests/yaml-cost.js';

const countAnchorsAndAliases = (text: string, stopAbove: number): number =>
  measureYaml(text, { references: stopAbove, values: Infinity }).references;

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

  it('weighs what the parser will hold: a scalar, key or item 1, a bracketed collection or a document 3', () => {
    const unlimited = { references: Infinity, values: Infinity };
    // apiVersion, v1, kind, ConfigMap, metadata, name, web: 7 scalars; 4 keys.
    expect(measureYaml('apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\n', unlimited).values).toBe(
      11,
    );
    expect(measureYaml('[{}, {}]', unlimited).values).toBe(9);
    expect(measureYaml('- a\n- b\n', unlimited).values).toBe(4);
    expect(measureYaml('--- {}\n--- {}\n', unlimited).values).toBe(12);
    // Inside a block scalar nothing counts but the scalar.
    expect(measureYaml('a: |\n  [{}, {}]\n  - x: y\n', unlimited).values).toBe(3);
  });

  it('stops one value past the limit, so a file of millions is refused in milliseconds', () => {
    const flood = `[${'{},'.repeat(1_000_000)}{}]`;
    const started = performance.now();
    expect(measureYaml(flood, { references: Infinity, values: 300 }).values).toBeLessThanOrEqual(303);
    expect(performance.now() - started).toBeLessThan(1_000);
  });
});
