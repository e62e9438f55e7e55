import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  MAX_YAML_EXPANDED_CHARS,
  MAX_YAML_NESTING,
  MAX_YAML_VALUES_PER_ENVIRONMENT,
  readYamlFile,
} from '../../../src/manifests/yaml-documents.js';

const YAML_DOCUMENTS = fileURLToPath(
  new URL('../../../dist/src/manifests/yaml-documents.js', import.meta.url),
);
const ALIASES_TOO_DEEP = `invalid YAML: nested more than ${MAX_YAML_NESTING} levels deep once its aliases are expanded`;

const refused = (text: string) => {
  const reading = readYamlFile(text, 2_000, MAX_YAML_VALUES_PER_ENVIRONMENT);
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
    const reading = readYamlFile(`${anchors.join('\n')}\n`, 2_000, MAX_YAML_VALUES_PER_ENVIRONMENT);
    expect(reading).toMatchObject({ documents: [{ problem: ALIASES_TOO_DEEP }] });
  });

  it('refuses a chain of merge keys before expanding it, within a stack of 400 KB', () => {
    // Six anchors, each 120 levels deep, each merging the one before at its bottom (`<<: *a`):
    // yaml's toJS recursed through all of them, about 600 KB of stack, before the value was measured.
    const nest = (inner: string) => `${'{k: '.repeat(120)}${inner}${'}'.repeat(120)}`;
    const links = Array.from(
      { length: 6 },
      (_, i) => `a${i}: &a${i} ${nest(i === 0 ? '{x: 1}' : `{<<: *a${i - 1}}`)}`,
    );
    const script = `import { readYamlFile } from ${JSON.stringify(YAML_DOCUMENTS)};
      process.stdout.write(JSON.stringify(readYamlFile(${JSON.stringify(`${links.join('\n')}\n`)}, 2000, 3000000)));`;
    const run = spawnSync(process.execPath, ['--stack-size=400', '--input-type=module', '-e', script], {
      encoding: 'utf8',
    });
    expect(run.stderr).toBe('');
    expect(JSON.parse(run.stdout)).toMatchObject({ documents: [{ problem: ALIASES_TOO_DEEP }] });
  });

  it('refuses a file whose aliases expand past the values it may hold, before making them', () => {
    // Each anchor is a list of two aliases of the one before: 2^40 values once expanded.
    const doubling = Array.from(
      { length: 40 },
      (_, i) => `a${i}: &a${i} ${i === 0 ? '[x]' : `[*a${i - 1}, *a${i - 1}]`}`,
    );
    expect(readYamlFile(`${doubling.join('\n')}\n`, 2_000, MAX_YAML_VALUES_PER_ENVIRONMENT)).toEqual({
      references: 118,
      refused: 'values',
    });
    const few = 'a: &a [x, y]\nb: [*a, *a]\n';
    expect(readYamlFile(few, 2_000, 11)).toMatchObject({ documents: [{ values: 11 }] });
    expect(readYamlFile(few, 2_000, 10)).toMatchObject({ refused: 'values' });
  });

  it('refuses a small file whose aliases repeat one long string into more text than an object may hold', () => {
    // 4,000 characters reached through five levels of ten aliases: 400 MB of request bodies
    // from 4 KB, within the values an environment may hold.
    const long = 'x'.repeat(4_000);
    const levels = [`s0: &s0 "${long}"`];
    for (let i = 1; i <= 5; i++)
      levels.push(
        `s${i}: &s${i} [${Array(10)
          .fill(`*s${i - 1}`)
          .join(', ')}]`,
      );
    const bomb = `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\ndata:\n${levels.map((line) => `  ${line}`).join('\n')}\n`;
    expect(bomb.length).toBeLessThan(5_000);
    expect(readYamlFile(bomb, 2_000, MAX_YAML_VALUES_PER_ENVIRONMENT)).toMatchObject({
      documents: [
        {
          problem: `invalid YAML: more than ${MAX_YAML_EXPANDED_CHARS / 1024 / 1024} MiB of text once its aliases are expanded, more than the API server takes for one object`,
        },
      ],
    });
    // A long string used a few times is read.
    const few = `a: &a "${long}"\nb: [*a, *a, *a]\n`;
    expect(readYamlFile(few, 2_000, MAX_YAML_VALUES_PER_ENVIRONMENT)).toMatchObject({
      documents: [{ value: { b: [long, long, long] } }],
    });
  });

  it("reads an anchor merged into 300 objects (yaml's own limit refused 50 uses), and one merged in a chain", () => {
    const defaults = 'defaults: &defaults {labels: {team: a}, replicas: 2}\n';
    const users = Array.from({ length: 300 }, (_, i) => `app${i}: {<<: *defaults, name: app${i}}`);
    const chain = 'base: &base {a: 1}\nmid: &mid {<<: *base, b: 2}\ntop: {<<: *mid, c: 3}\n';
    for (const text of [`${defaults}${users.join('\n')}\n`, chain]) {
      expect(readYamlFile(text, 2_000, MAX_YAML_VALUES_PER_ENVIRONMENT)).toMatchObject({
        documents: [{ values: expect.any(Number) as number }],
      });
    }
    expect(readYamlFile(chain, 2_000, MAX_YAML_VALUES_PER_ENVIRONMENT)).toMatchObject({
      documents: [{ value: { top: { a: 1, b: 2, c: 3 } } }],
    });
  });

  it('refuses a key written before a merge key that also sets it, which kubectl reads the other way', () => {
    const clash =
      'invalid YAML: key "privileged" is written before a merge key (<<) that also sets it, which kubectl reads as the merged value and the YAML spec as the one written: put the merge key first';
    for (const text of [
      'securityContext: {privileged: true, <<: {privileged: false}}\n',
      'd: &d {privileged: false}\ne: {privileged: true, <<: *d}\n',
      'd: &d {privileged: false}\ne: {privileged: true, <<: [*d]}\n',
      'b: &b {privileged: false}\nd: &d {<<: *b}\ne:\n  privileged: true\n  <<: *d\n',
    ])
      expect(readYamlFile(text, 2_000, MAX_YAML_VALUES_PER_ENVIRONMENT), text).toMatchObject({
        documents: [{ problem: clash }],
      });
    // The merge key first (both read the key as written), other keys, and a quoted "<<" (a plain key).
    for (const [text, value] of [
      ['d: &d {privileged: false}\ne: {<<: *d, privileged: true}\n', { privileged: true }],
      ['d: &d {runAsUser: 1}\ne: {privileged: true, <<: *d}\n', { privileged: true, runAsUser: 1 }],
      [
        'e: {privileged: true, "<<": {privileged: false}}\n',
        { privileged: true, '<<': { privileged: false } },
      ],
    ] as const)
      expect(readYamlFile(text, 2_000, MAX_YAML_VALUES_PER_ENVIRONMENT), text).toMatchObject({
        documents: [{ value: { e: value } }],
      });
  });

  it('refuses an alias of a node that holds it', () => {
    for (const text of ['a: &a [*a]\n', 'a: &a {b: {c: *a}}\n']) {
      expect(readYamlFile(text, 2_000, MAX_YAML_VALUES_PER_ENVIRONMENT)).toMatchObject({
        documents: [{ problem: ALIASES_TOO_DEEP }],
      });
    }
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
      const reading = readYamlFile(text, 2_000, MAX_YAML_VALUES_PER_ENVIRONMENT);
      expect(reading).toMatchObject({ documents: [{ values: expect.any(Number) as number }] });
    }
  });
});
