import { describe, expect, it } from 'vitest';
import { MAX_YAML_NESTING, prescanYaml } from '../../../src/manifests/yaml-prescan.js';

const countAnchorsAndAliases = (text: string, stopAbove: number): number =>
  prescanYaml(text, stopAbove).references;

describe('prescanYaml', () => {
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

  it('finds text nested deeper than the parser may go, by brackets, indentation or "- - -", whatever the indentation width', () => {
    const deep = MAX_YAML_NESTING + 1;
    const tooDeep = (text: string) => prescanYaml(text, Infinity).tooDeep;
    expect(tooDeep('['.repeat(deep))).toBe(true);
    expect(tooDeep(`a: ${'{b: '.repeat(deep)}1${'}'.repeat(deep)}\n`)).toBe(true);
    expect(tooDeep(`${'- '.repeat(deep)}x\n`)).toBe(true);
    for (const width of [1, 8])
      expect(
        tooDeep(Array.from({ length: deep }, (_, i) => `${' '.repeat(i * width)}k:`).join('\n') + ' x\n'),
      ).toBe(true);
    // As deep as allowed (the top level is the first), and deeper in strings, comments and block scalars, which are not nesting.
    expect(tooDeep('['.repeat(MAX_YAML_NESTING - 1))).toBe(false);
    expect(tooDeep(Array.from({ length: 100 }, (_, i) => `${' '.repeat(i * 8)}k:`).join('\n') + ' x\n')).toBe(
      false,
    );
    const text = `a: "${'['.repeat(deep)}"\n# ${'{'.repeat(deep)}\nb: |\n  ${'['.repeat(deep)}\n${JSON.stringify({ a: { b: [1, { c: 2 }] } }, null, 8)}\n`;
    expect(tooDeep(text)).toBe(false);
  });
});
