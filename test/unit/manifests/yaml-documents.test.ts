import { describe, expect, it } from 'vitest';
import { MAX_YAML_NESTING, readYamlFile } from '../../../src/manifests/yaml-documents.js';

const refused = (text: string) => {
  const reading = readYamlFile(text, 2_000);
  return 'refused' in reading ? reading.refused : undefined;
};

describe('readYamlFile', () => {
  // Each of these nests about 1,000 levels, enough for yaml to recurse to the stack's edge
  // (which aborted the process), while counting indentation or brackets line by line saw a few.
  it.each([
    [
      'nested "- " opened on one line, then indented under the last',
      () => {
        const lines: string[] = [];
        for (let i = 0; i < 5; i++) lines.push(`${' '.repeat(i * 400)}${'- '.repeat(200).trimEnd()}`);
        return `${lines.join('\n')} x\n`;
      },
    ],
    [
      'the "- b:" style kubectl prints',
      () => ['a:', ...Array.from({ length: 600 }, (_, i) => `${'  '.repeat(i)}- b:`)].join('\n') + ' x\n',
    ],
    [
      'comment lines between nested mappings',
      () => Array.from({ length: 1_000 }, (_, i) => `${' '.repeat(i)}k:\n#`).join('\n') + '\n',
    ],
    [
      'an unclosed bracket before a document of block nesting',
      () => `[\n---\n${Array.from({ length: 1_000 }, (_, i) => `${' '.repeat(i)}k:`).join('\n')} x\n`,
    ],
    ['implicit pairs in brackets', () => `${'[a: '.repeat(200)}x${']'.repeat(200)}\n`],
    ['brackets', () => '['.repeat(100_000)],
    // The parser closes the levels one dedent ends by recursing: it must not get that deep.
    ['one dedent out of 4,000 levels', () => `${'- '.repeat(4_000)}a\n- b\n`],
  ])('refuses %s before composing it', (_name, text) => {
    expect(refused(text())).toBe('nesting');
  });

  it('refuses a document its aliases nest deeper again', () => {
    const levels = 100;
    const anchors = Array.from(
      { length: 4 },
      (_, i) => `a${i}: &a${i} ${'['.repeat(levels)}${i === 0 ? 'x' : `*a${i - 1}`}${']'.repeat(levels)}`,
    );
    const reading = readYamlFile(`${anchors.join('\n')}\n`, 2_000);
    expect(reading).toMatchObject({
      documents: [
        {
          problem: `invalid YAML: nested more than ${MAX_YAML_NESTING} levels deep once its aliases are expanded`,
        },
      ],
    });
  });

  it('reads what Kubernetes manifests hold: deep schemas, wide indentation, pretty JSON, block scalars', () => {
    const schema =
      Array.from({ length: 100 }, (_, i) => `${'    '.repeat(i)}properties:`).join('\n') + ' {}\n';
    const json = JSON.stringify(
      { spec: { template: { spec: { containers: [{ env: [{ name: 'A' }] }] } } } },
      null,
      8,
    );
    // kubectl -o json of a CRD 100 properties deep: a mapping in braces is one level, as in YAML.
    let crd: unknown = { type: 'string' };
    for (let i = 0; i < 100; i++) crd = { type: 'object', properties: { field: crd } };
    const script = `data:\n  run.sh: |\n    ${'['.repeat(5_000)}\n    ${'- '.repeat(5_000)}\n`;
    for (const text of [
      schema,
      json,
      script,
      JSON.stringify({ spec: { versions: [{ schema: crd }] } }, null, 4),
    ]) {
      const reading = readYamlFile(text, 2_000);
      expect(reading).toMatchObject({ documents: [{ values: expect.any(Number) as number }] });
    }
  });
});
