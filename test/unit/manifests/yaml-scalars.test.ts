import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { PushgateError } from '../../../src/lib/errors.js';
import { loadManifests } from '../../../src/manifests/load.js';
import { readYamlFile } from '../../../src/manifests/yaml-documents.js';
import { kubernetesYamlTags } from '../../../src/manifests/yaml-scalars.js';

function read(value: string): unknown {
  const parsed: unknown = parse(`k: ${value}\n`, { version: '1.1', customTags: kubernetesYamlTags });
  return (parsed as { k: unknown }).k;
}

// What `kubectl create --dry-run=client -o json` makes of each unquoted value (go-yaml v2
// through sigs.k8s.io/yaml): the JSON Kubernetes is sent.
const AS_KUBECTL_READS_IT: [string, unknown][] = [
  ['e2', 'e2'],
  ['E5', 'E5'],
  ['.', '.'],
  ['-.', '-.'],
  ['._', '._'],
  ['.e3', '.e3'],
  ['-e1', '-e1'],
  ['12:30', '12:30'],
  ['1:20:30', '1:20:30'],
  ['0755', 493],
  ['0o17', 15],
  ['0x1F', 31],
  ['0X1f', 31],
  ['0b101', 5],
  ['-0b11', -3],
  ['1_000', 1000],
  ['08', 8],
  ['1e5', 100000],
  ['1.', 1],
  ['.5', 0.5],
  ['-.5', -0.5],
  ['+1', 1],
  ['1.2.3', '1.2.3'],
  ['10Gi', '10Gi'],
  ['0x', '0x'],
  ['0b', '0b'],
  ['.5_0', 0.5],
  ['._5', '._5'],
  ['.5e999', '.5e999'],
  ['1e999', '1e999'],
  ['2001-12-14', '2001-12-14'],
  ['yes', true],
  ['off', false],
  ['~', null],
  ['nginx:1.27', 'nginx:1.27'],
];

describe('unquoted YAML values are read as kubectl reads them', () => {
  it.each(AS_KUBECTL_READS_IT)('%s', (value, expected) => {
    expect(read(value)).toStrictEqual(expected);
  });

  it('refuses an integer a JavaScript number would round, rather than send another value', () => {
    expect(read('9007199254740991')).toBe(2 ** 53 - 1);
    expect(read('-9007199254740991')).toBe(-(2 ** 53 - 1));
    // 2^60 and -2^63 a number holds exactly, but prints as another integer (1152921504606847000).
    for (const rounded of [
      '1152921504606846976',
      '-9223372036854775808',
      '9007199254740993',
      '18446744073709551615',
      '-9223372036854775807',
      '0x7FFFFFFFFFFFFFFF',
    ])
      expect(() => read(rounded)).toThrow(`${rounded} is an integer too large to send exactly`);
    expect(() => read('!!int 9007199254740993')).toThrow(
      '9007199254740993 is an integer too large to send exactly',
    );
    // A float is a float64 to Go as well: sent as it rounds there.
    expect(read('1e20')).toBe(1e20);
  });

  it('reads explicit !!int, !!float and !!binary as Go does, refusing what is not one', () => {
    expect(read('!!float 1.5')).toBe(1.5);
    expect(read('!!float 1')).toBe(1);
    expect(read('!!int 0x1F')).toBe(31);
    expect(read('!!str 0755')).toBe('0755');
    expect(() => read('!!int 1.5')).toThrow('"1.5" is not an integer (!!int)');
    for (const notAnInt of ['1.0', '1e3', '018', '18446744073709551616'])
      expect(() => read(`!!int ${notAnInt}`)).toThrow(`"${notAnInt}" is not an integer (!!int)`);
    expect(read('!!binary aGVsbG8=')).toBe('hello');
    expect(() => read('!!float abc')).toThrow('"abc" is not a number (!!float)');
    expect(() => read('!!float .nan')).toThrow('.nan is not a number JSON can carry');
  });

  it('reads !!omap, !!pairs and !!set as the list or mapping Go reads, never a Map or Set JSON sends as {}', () => {
    // A Secret's `stringData: !!omap [...]` went out as `{}`, removing its keys. Read as the
    // loader reads files (yaml's parse() would also print a warning for each such tag).
    const readAsLoaded = (value: string): unknown => {
      const reading = readYamlFile(`k: ${value}\n`, 10, 1_000);
      if (!('documents' in reading)) throw new Error(`refused: ${reading.refused}`);
      return (reading.documents[0] as { value: { k: unknown } }).value.k;
    };
    expect(readAsLoaded('!!omap [ {password: hunter2} ]')).toEqual([{ password: 'hunter2' }]);
    expect(readAsLoaded('!!pairs [ {a: 1}, {a: 2} ]')).toEqual([{ a: 1 }, { a: 2 }]);
    expect(readAsLoaded('!!set {feature-a, b}')).toEqual({ 'feature-a': null, b: null });
    expect(JSON.stringify(readAsLoaded('!!set {x}'))).toBe('{"x":null}');
  });

  it('reads numeric-looking keys as kubectl does', () => {
    const parsed: unknown = parse('"0755": quoted\n0755: octal\ne2: letters\n', {
      version: '1.1',
      customTags: kubernetesYamlTags,
    });
    expect(parsed).toEqual({ '0755': 'quoted', 493: 'octal', e2: 'letters' });
  });
});

describe('loading manifests with such values', () => {
  let root: string;

  beforeEach(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'pushgate-yaml-scalars-'));
    await mkdir(path.join(root, 'env'));
  });

  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('keeps a node selector, an argument and a working dir as the strings they are', async () => {
    await writeFile(
      path.join(root, 'env', 'app.yaml'),
      [
        'apiVersion: v1',
        'kind: ConfigMap',
        'metadata: {name: settings}',
        'data: {family: e2, dir: ., backupAt: 12:30}',
        '---',
        'apiVersion: v1',
        'kind: Pod',
        'metadata: {name: build}',
        'spec:',
        '  nodeSelector: {cloud.google.com/machine-family: e2}',
        '  containers: [{name: c, image: nginx:1, workingDir: ., args: [build, .]}]',
        '',
      ].join('\n'),
    );

    const [settings, pod] = await loadManifests(root, 'env');

    expect(settings?.object).toMatchObject({ data: { family: 'e2', dir: '.', backupAt: '12:30' } });
    expect(pod?.object).toMatchObject({
      spec: {
        nodeSelector: { 'cloud.google.com/machine-family': 'e2' },
        containers: [{ workingDir: '.', args: ['build', '.'] }],
      },
    });
  });

  it('refuses an integer that would arrive rounded, naming the file and document', async () => {
    await writeFile(
      path.join(root, 'env', 'ids.json'),
      '{"apiVersion": "example.com/v1", "kind": "Ledger", "metadata": {"name": "l"}, "spec": {"firstId": 9007199254740993}}\n',
    );

    const error = await loadManifests(root, 'env').then(
      () => undefined,
      (e: unknown) => e,
    );

    expect(error).toBeInstanceOf(PushgateError);
    expect((error as Error).message).toContain('env/ids.json');
    expect((error as Error).message).toContain('9007199254740993 is an integer too large to send exactly');
  });

  it('refuses .nan and .inf, which JSON cannot carry, naming the file and document', async () => {
    await writeFile(
      path.join(root, 'env', 'limits.yaml'),
      'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: bad}\ndata: {ratio: .inf}\n',
    );

    const error = await loadManifests(root, 'env').then(
      () => undefined,
      (e: unknown) => e,
    );

    expect(error).toBeInstanceOf(PushgateError);
    expect((error as Error).message).toContain('env/limits.yaml');
    expect((error as Error).message).toMatch(/document 2.*\.inf is not a number JSON can carry/s);
  });
});
