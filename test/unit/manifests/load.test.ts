import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PushgateError } from '../../../src/lib/errors.js';
import { loadManifestTree, loadManifests, MAX_MANIFEST_FILE_BYTES } from '../../../src/manifests/load.js';
import { PARSE_HEAP_MB } from '../../../src/manifests/yaml-parser.js';
import { MAX_YAML_ANCHORS_AND_ALIASES } from '../../../src/manifests/yaml-anchors.js';
import { MAX_YAML_NESTING } from '../../../src/manifests/yaml-documents.js';

let root: string;
let outside: string;

beforeEach(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'pushgate-load-'));
  outside = await mkdtemp(path.join(os.tmpdir(), 'pushgate-outside-'));
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
  await rm(outside, { recursive: true, force: true });
});

async function write(relative: string, content: string): Promise<void> {
  const file = path.join(root, relative);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, content);
}

function configMap(name: string, extra = ''): string {
  return `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${name}\n${extra}`;
}

async function loadError(manifestPath = 'env'): Promise<PushgateError> {
  const error = await loadManifests(root, manifestPath).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(PushgateError);
  const pushgateError = error as PushgateError;
  expect(pushgateError.code).toBe('manifest_invalid');
  expect(pushgateError.permanent).toBe(true);
  return pushgateError;
}

describe('loadManifests', () => {
  it('reads every document of yaml, yml and json files, sorted by path in byte order', async () => {
    await write('env/b.yaml', `${configMap('b1')}---\n${configMap('b2')}`);
    await write('env/a/z.yml', configMap('az'));
    await write(
      'env/B.json',
      JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'upper' } }),
    );
    await write('env/notes.txt', 'not a manifest');

    const manifests = await loadManifests(root, 'env');

    expect(manifests.map((m) => [m.source.file, m.source.document, m.object.metadata.name])).toEqual([
      ['env/B.json', 1, 'upper'],
      ['env/a/z.yml', 1, 'az'],
      ['env/b.yaml', 1, 'b1'],
      ['env/b.yaml', 2, 'b2'],
    ]);
  });

  it('skips empty and null documents but keeps counting them', async () => {
    await write('env/a.yaml', `---\n# only a comment\n---\nnull\n---\n${configMap('third')}`);

    const manifests = await loadManifests(root, 'env');

    expect(manifests).toHaveLength(1);
    expect(manifests[0]?.source).toEqual({ file: 'env/a.yaml', document: 3 });
  });

  it('expands kind: List items with their item index', async () => {
    await write(
      'env/list.yaml',
      'apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: one}\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: two}\n',
    );

    const manifests = await loadManifests(root, 'env');

    expect(manifests.map((m) => m.source)).toEqual([
      { file: 'env/list.yaml', document: 1, item: 1 },
      { file: 'env/list.yaml', document: 1, item: 2 },
    ]);
  });

  it('expands a typed list such as kubectl get -o yaml writes (SecretList, ConfigMapList), as kubectl does', async () => {
    await write(
      'env/exported.json',
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'ConfigMapList',
        // As the API writes them: items without apiVersion and kind, which the list gives.
        items: [
          { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'exported' } },
          { apiVersion: null, kind: null, metadata: { name: 'bare' } },
        ],
      }),
    );

    const manifests = await loadManifests(root, 'env');

    expect(
      manifests.map((m) => [m.object.apiVersion, m.object.kind, m.object.metadata.name, m.source]),
    ).toEqual([
      ['v1', 'ConfigMap', 'exported', { file: 'env/exported.json', document: 1, item: 1 }],
      ['v1', 'ConfigMap', 'bare', { file: 'env/exported.json', document: 1, item: 2 }],
    ]);
  });

  it('ignores files and folders whose names start with a dot', async () => {
    await write('env/.hidden.yaml', configMap('hidden'));
    await write('env/.git/config.yaml', configMap('git'));
    await write('env/visible.yaml', configMap('visible'));

    const manifests = await loadManifests(root, 'env');

    expect(manifests.map((m) => m.object.metadata.name)).toEqual(['visible']);
  });

  it('skips a folder holding a kustomization and reports it', async () => {
    await write('env/app/kustomization.yaml', 'resources: [deploy.yaml]\n');
    await write('env/app/deploy.yaml', configMap('inside-kustomization'));
    await write('env/plain.yaml', configMap('plain'));
    await write('env/bare/kustomization.yaml', 'resources: []\n');
    await write('env/bare/README.md', 'nothing to apply\n');

    const tree = await loadManifestTree(root, 'env');

    expect(tree.manifests.map((m) => m.object.metadata.name)).toEqual(['plain']);
    // Whether it holds more than its kustomization: what a deploy may not prune (skipped-folders.ts).
    expect(tree.skipped).toEqual([
      {
        path: 'env/app',
        reason: expect.stringContaining('kustomization.yaml') as string,
        holdsManifests: true,
      },
      {
        path: 'env/bare',
        reason: expect.stringContaining('kustomization.yaml') as string,
        holdsManifests: false,
      },
    ]);
  });

  it('refuses an empty set for an environment, naming the folders it skipped', async () => {
    await write('env/kustomization.yaml', 'resources: [deploy.yaml]\n');
    await write('env/deploy.yaml', configMap('inside-kustomization'));

    const refused = loadManifests(root, 'env', { environment: { name: 'web', allowEmpty: false } });
    await expect(refused).rejects.toThrow(
      /^no objects under env \(skipped: env, which contains kustomization.yaml; .*\): refusing to deploy an empty set/,
    );
    await expect(
      loadManifests(root, 'env', { environment: { name: 'web', allowEmpty: true } }),
    ).resolves.toEqual([]);
  });

  it('refuses a Secret whose values are not strings, naming fields but never values', async () => {
    await write(
      'env/secrets.yaml',
      [
        'apiVersion: v1\nkind: Secret\nmetadata: {name: s1}\nstringData:\n  x: ["secretvalue1"]\n  num: 987654321987\n',
        'apiVersion: v1\nkind: Secret\nmetadata: {name: s2}\ndata: "c3VwZXJzZWNyZXRiYXNlNjQ="\n',
      ].join('---\n'),
    );

    const error = await loadError();

    expect(error.message).toContain(
      'env/secrets.yaml document 1: stringData.x: must be a string, not a list',
    );
    expect(error.message).toContain(
      'env/secrets.yaml document 1: stringData.num: must be a string, not a number',
    );
    expect(error.message).toContain('env/secrets.yaml document 2: data: must be a mapping of key to string');
    expect(error.message).not.toMatch(/secretvalue1|987654321987|c3VwZXJzZWNyZXRiYXNlNjQ=/);
  });

  it('refuses Secret data and ConfigMap binaryData that are not base64, naming fields but never values', async () => {
    await write(
      'env/bytes.yaml',
      [
        'apiVersion: v1\nkind: Secret\nmetadata: {name: s1}\ndata:\n  pw: hunter2\n  ok: aHVudGVyMg==\n  folded: |\n    aHVudGVy\n    Mg==\n',
        'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c1}\nbinaryData:\n  blob: "aHVudGVyMg"\n  urlsafe: "-_-_"\n',
      ].join('---\n'),
    );

    const error = await loadError();

    expect(error.message).toContain(
      'env/bytes.yaml document 1: data.pw: is not base64 (standard alphabet, padded with "="); plain text goes in stringData',
    );
    expect(error.message).toContain('env/bytes.yaml document 2: binaryData.blob: is not base64');
    expect(error.message).toContain('env/bytes.yaml document 2: binaryData.urlsafe: is not base64');
    // Padded standard base64, across lines or not, is what the API server decodes.
    expect(error.message).not.toMatch(/data\.ok|data\.folded/);
    expect(error.message).not.toMatch(/hunter2|aHVudGVyMg/);
  });

  it('refuses a document encrypted with SOPS, saying so, rather than applying its ciphertext', async () => {
    const enc = (data: string) =>
      `ENC[AES256_GCM,data:${data},iv:dGVzdGl2dGVzdGl2dGVzdGl2,tag:dGVzdHRhZ3Rlc3R0YWc=,type:str]`;
    const sops = [
      'sops:',
      '  age:',
      '    - recipient: age1qwwzsz6z2mmu6hpmjt2he7nepmnhutmhehvkva7l5zy5xzf08d5s5n4d6n',
      '      enc: |',
      '        -----BEGIN AGE ENCRYPTED FILE-----',
      '        YWdlLWVuY3J5cHRpb24ub3JnL3YxCg==',
      '        -----END AGE ENCRYPTED FILE-----',
      '  lastmodified: "2026-11-30T10:00:00Z"',
      `  mac: ${enc('bWFjbWFj')}`,
      '  encrypted_regex: ^(data|stringData)$',
      '  version: 3.9.4',
    ].join('\n');
    await write(
      'env/db.yaml',
      // As Flux's docs have it (encrypted_regex: data and stringData), then everything encrypted.
      [
        `apiVersion: v1\nkind: Secret\nmetadata: {name: db}\ndata:\n  password: ${enc('c2VjcmV0Y2lwaGVy')}\n${sops}\n`,
        `apiVersion: ${enc('djE=')}\nkind: ${enc('Q29uZmlnTWFw')}\nmetadata:\n  name: ${enc('Y2Zn')}\n${sops}\n`,
        `apiVersion: v1\nkind: List\nitems:\n  - {apiVersion: v1, kind: Secret, metadata: {name: x}, data: {k: "${enc('eA==')}"}}\n${sops}\n`,
      ].join('---\n'),
    );
    await write('env/app.yaml', configMap('app'));

    const error = await loadError();

    const lines = error.message.split('\n').slice(1);
    expect(lines.map((line) => line.split(': encrypted with SOPS')[0]?.trim())).toEqual(
      [1, 2, 3].map((n) => `env/db.yaml document ${n}`),
    );
    expect(lines[0]).toContain('pushgate does not decrypt SOPS and would apply the ciphertext');
    expect(error.message).not.toMatch(/base64|c2VjcmV0Y2lwaGVy|ENC\[/);

    // A custom resource that carries it on purpose, for a controller that decrypts in the
    // cluster (sops-secrets-operator), goes on to the dry-run, where its schema decides.
    await rm(path.join(root, 'env/db.yaml'));
    await write(
      'env/sops-secret.yaml',
      `apiVersion: isindir.github.com/v1alpha3\nkind: SopsSecret\nmetadata: {name: db}\nspec:\n  secretTemplates:\n    - name: db\n      stringData: {password: "${enc('c2VjcmV0')}"}\n${sops}\n`,
    );
    expect((await loadManifests(root, 'env')).map(({ object }) => object.kind).sort()).toEqual([
      'ConfigMap',
      'SopsSecret',
    ]);
  });

  it('refuses an apiVersion that is not VERSION or GROUP/VERSION: "/v1" is v1 to the API server, not to a check by name', async () => {
    await write(
      'env/odd.yaml',
      ['/v1', 'apps/', 'a/b/v1']
        .map((apiVersion) => `apiVersion: ${apiVersion}\nkind: Namespace\nmetadata: {name: x}\n`)
        .join('---\n'),
    );

    const error = await loadError();

    expect(error.message.split('\n').slice(1)).toEqual([
      '  env/odd.yaml document 1: apiVersion: "/v1" is not VERSION (the core group: v1) or GROUP/VERSION (apps/v1)',
      '  env/odd.yaml document 2: apiVersion: "apps/" is not VERSION (the core group: v1) or GROUP/VERSION (apps/v1)',
      '  env/odd.yaml document 3: apiVersion: "a/b/v1" is not VERSION (the core group: v1) or GROUP/VERSION (apps/v1)',
    ]);
  });

  it('reads a file YAML costs far more than its bytes in a thread of bounded memory: refused, the process unharmed', async () => {
    // 4 MiB of "[,,,…" took 1.5 GB before the heap ran out, 4 MiB of "[{},{},…" 2 GB: read on the
    // main thread, either killed the worker process and every deploy it ran.
    await write('env/flood.yaml', `[${','.repeat(MAX_MANIFEST_FILE_BYTES - 2)}`);
    await write('env/web.yaml', configMap('web'));

    const error = await loadError();

    // Memory runs out first (about 12 s); on a machine loaded enough, the 20 s a file may take.
    expect([
      `env/flood.yaml: not read: reading it takes more than the ${PARSE_HEAP_MB} MiB of memory one file may (a shape that costs the YAML parser far more than its bytes, or too much in one file): split or simplify it`,
      `env/flood.yaml: not read: reading it took more CPU time than it may (20 s a file, 60 s the environment's files together): a shape that costs the YAML parser far more than its bytes, or too much in one environment`,
    ]).toContain(error.message);
    // The next load gets a new thread.
    await rm(path.join(root, 'env/flood.yaml'));
    expect(await loadManifests(root, 'env')).toHaveLength(1);
  });

  it('reads the larger files of deploys running at once one after another, none charged for the wait', async () => {
    // 40 ConfigMaps a file, over the size read inline: the process's one parse thread reads them.
    const big = Array.from({ length: 40 }, (_, i) =>
      configMap(`cm-${i}`, `data:\n  k: "${'v'.repeat(200)}"\n`),
    ).join('---\n');
    expect(big.length).toBeGreaterThan(8 * 1024);
    const roots = await Promise.all(
      ['one', 'two', 'three'].map(async (name) => {
        const dir = path.join(root, name);
        await mkdir(path.join(dir, 'env'), { recursive: true });
        await writeFile(path.join(dir, 'env/big.yaml'), big);
        return dir;
      }),
    );

    const loaded = await Promise.all(
      roots.map((dir) => loadManifestTree(dir, 'env', { values: 1_000_000, parseMs: 60_000 })),
    );

    expect(loaded.map((tree) => tree.manifests.length)).toEqual([40, 40, 40]);
  });

  it('stops reading an environment whose files take the parser longer than they may, at that file', async () => {
    // yaml takes time quadratic in the bytes of this shape: seconds for 64 KiB.
    await write('env/a-slow.yaml', `a: 1\n${'}'.repeat(256 * 1024)}`);
    await write('env/b-web.yaml', configMap('web'));

    const started = Date.now();
    const error = await loadManifestTree(root, 'env', { values: 1_000_000, parseMs: 300 }).then(
      () => undefined,
      (e: unknown) => e as PushgateError,
    );

    // Stopped at the environment's 0.3 s, not the file's 20 s (the margin is a busy machine's).
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(error?.message.split('\n').slice(1)).toEqual([
      "  env/a-slow.yaml: not read: reading it took more CPU time than it may (20 s a file, 0.3 s the environment's files together): a shape that costs the YAML parser far more than its bytes, or too much in one environment",
      "  env/b-web.yaml: not read: the environment's manifests took all they may before it",
    ]);
  });

  it('refuses the file that takes an environment past the YAML values it may hold, and every file after it', async () => {
    for (const name of ['a', 'b', 'c', 'd']) await write(`env/${name}.yaml`, configMap(name));

    // Each ConfigMap here is 5 values (the object, apiVersion, kind, metadata, name): 12 lets two through.
    const error = await loadManifestTree(root, 'env', { values: 12, parseMs: 60_000 }).then(
      () => undefined,
      (e: unknown) => e as PushgateError,
    );

    expect(error?.message.split('\n').slice(1)).toEqual([
      "  env/c.yaml: not read: the environment's manifests hold more than 12 YAML values (mappings, lists and scalars, aliases expanded) up to this file, more than one environment may: split it into several environments",
      "  env/d.yaml: not read: the environment's manifests took all they may before it",
    ]);
  });

  it('refuses a file nested deeper than any Kubernetes object before the parser recurses into it, however large', async () => {
    // Two files of 4,000 "[" made yaml run at the stack's edge until V8 aborted the process.
    const deep = 100_000;
    await write(
      'env/deep.yaml',
      `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: deep}\ndata: ${'['.repeat(deep)}${']'.repeat(deep)}\n`,
    );
    await write('env/small.yaml', `a: ${'{b: '.repeat(2_000)}1${'}'.repeat(2_000)}\n`);

    const error = await loadError();

    expect(error.message.split('\n').slice(1)).toEqual(
      ['deep', 'small'].map(
        (name) =>
          `  env/${name}.yaml: not read: it nests more than ${MAX_YAML_NESTING} levels deep (a pair in brackets, "[a: b]", counts 2), far more than any Kubernetes object`,
      ),
    );
  });

  it('does not repeat an unquoted value starting with "*", read as an alias', async () => {
    await write(
      'env/secret.yaml',
      'apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData:\n  password: *Tr0ub4dor&3horse\n',
    );

    const error = await loadError();

    expect(error.message).toMatch(
      /env\/secret\.yaml document 1: invalid YAML: a value starting with "\*" is read as an alias/,
    );
    expect(error.message).not.toContain('Tr0ub4dor');
  });

  it('parses YAML as kubectl does: 0644 is octal', async () => {
    await write('env/a.yaml', configMap('octal', 'mode: 0644\ncreated: 2024-01-01\n'));

    const [manifest] = await loadManifests(root, 'env');

    expect(manifest?.object.mode).toBe(420);
    expect(manifest?.object.created).toBe('2024-01-01');
  });

  it('follows a symlink that stays inside the repository', async () => {
    await write('shared/common.yaml', configMap('shared'));
    await mkdir(path.join(root, 'env'));
    await symlink(path.join(root, 'shared/common.yaml'), path.join(root, 'env/common.yaml'));

    const manifests = await loadManifests(root, 'env');

    expect(manifests.map((m) => m.source.file)).toEqual(['env/common.yaml']);
  });

  it('refuses a symlink that leaves the repository', async () => {
    await writeFile(path.join(outside, 'secret.yaml'), configMap('outside'));
    await mkdir(path.join(root, 'env'));
    await symlink(path.join(outside, 'secret.yaml'), path.join(root, 'env/escape.yaml'));
    await symlink(outside, path.join(root, 'env/escape-dir'));

    const error = await loadError();

    expect(error.message).toContain('env/escape.yaml: symlink leaves the repository');
    expect(error.message).toContain('env/escape-dir: symlink leaves the repository');
  });

  it('refuses a manifest path that is itself a symlink out of the repository', async () => {
    await symlink(outside, path.join(root, 'env'));

    const error = await loadError();

    expect(error.message).toBe('manifest path "env" is a symlink that leaves the repository');
  });

  it('fails clearly when the manifest path does not exist', async () => {
    const error = await loadError('clusters/missing');

    expect(error.message).toBe('manifest path "clusters/missing" does not exist in the repository');
  });

  it('refuses a YAML alias bomb', async () => {
    const lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]'];
    for (let i = 1; i < 9; i++) {
      const prev = String.fromCharCode(96 + i);
      const next = String.fromCharCode(97 + i);
      lines.push(
        `${next}: &${next} [*${prev},*${prev},*${prev},*${prev},*${prev},*${prev},*${prev},*${prev},*${prev}]`,
      );
    }
    await write(
      'env/bomb.yaml',
      `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bomb\n${lines.join('\n')}\n`,
    );

    const error = await loadError();

    expect(error.message).toMatch(
      /^env\/bomb\.yaml: not read: the environment's manifests hold more than 3000000 YAML values \(mappings, lists and scalars, aliases expanded\) up to this file/,
    );
  });

  it('reads a small file whose aliases expand it past what the main thread may make in the parse thread, within the values budget', async () => {
    // 12 anchors, each a list of two aliases of the one before: 204,800 values from 1 KB.
    const doubling = Array.from(
      { length: 13 },
      (_, i) =>
        `  a${i}: &a${i} ${i === 0 ? `[${Array.from({ length: 50 }, () => 'x').join(',')}]` : `[*a${i - 1}, *a${i - 1}]`}`,
    );
    await write(
      'env/widget.yaml',
      `apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\nspec:\n${doubling.join('\n')}\n`,
    );

    const tree = await loadManifestTree(root, 'env');
    expect(tree.manifests.map((m) => m.object.metadata.name)).toEqual(['w']);

    const error = await loadManifestTree(root, 'env', { values: 150_000, parseMs: 60_000 }).then(
      () => undefined,
      (e: unknown) => e as PushgateError,
    );
    expect(error?.message).toContain(
      "env/widget.yaml: not read: the environment's manifests hold more than 150000 YAML values",
    );
  });

  it('refuses manifests with more YAML anchors and aliases than an environment may hold, before composing them', async () => {
    // Composing 64,000 anchors takes yaml about 40 s; the limit is checked by lexing, in milliseconds.
    const anchors = Array.from({ length: 64_000 }, (_, i) => `  k${i}: &a${i} "v"`).join('\n');
    await write('env/a.yaml', configMap('few', 'data:\n  x: &x "1"\n  y: *x\n'));
    await write('env/b.yaml', configMap('many', `data:\n${anchors}\n`));

    const error = await loadError();

    expect(error.message).toBe(
      `env/b.yaml: not read: the environment's manifests hold more than ${MAX_YAML_ANCHORS_AND_ALIASES} YAML anchors and aliases (&name, *name) up to this file`,
    );
  });

  it('does not count & and * inside strings and scripts as anchors', async () => {
    const script = 'cd /app && rm -f *.log && echo "*done*" & wait\n'.repeat(MAX_YAML_ANCHORS_AND_ALIASES);
    const indented = script.replace(/^/gm, '    ');
    await write('env/job.yaml', configMap('script', `data:\n  run.sh: |\n${indented}  glob: "*&*"\n`));

    const manifests = await loadManifests(root, 'env');

    expect(manifests.map((m) => m.object.metadata.name)).toEqual(['script']);
  });

  it('refuses text that is not UTF-8 or holds control characters, naming file and line, as kubectl does', async () => {
    const latin1 = Buffer.concat([
      Buffer.from(configMap('latin1', 'data:\n  greeting: caf')),
      Buffer.from([0xe9, 0x0a]),
    ]);
    await mkdir(path.join(root, 'env'), { recursive: true });
    await writeFile(path.join(root, 'env/a-latin1.yaml'), latin1);
    await write('env/b-escape.yaml', configMap('escape', 'data:\n  colour: "\u001b[31m"\n'));
    await writeFile(
      path.join(root, 'env/c-utf16.yaml'),
      Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(configMap('u'), 'utf16le')]),
    );
    await write(
      'env/d-lfs.yaml',
      'version https://git-lfs.github.com/spec/v1\noid sha256:4d7a\nsize 12345\n',
    );
    await write('env/e-del.yml', configMap('del', 'data:\n  key: "a\u007fb"\n'));
    // kubectl's YAML would read NEL as a line break, this parser as a character: refused.
    await write('env/g-nel.yaml', configMap('nel', 'data:\n  key: "a\u0085b"\n'));
    // JSON strings take DEL raw, as kubectl's JSON decoder does.
    await write(
      'env/f.json',
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'f' },
        data: { k: 'a\u007fb' },
      }),
    );

    const error = await loadError();

    // Read lossily, the first would have been applied as "caf\uFFFD".
    expect(error.message.split('\n').slice(1)).toEqual([
      '  env/a-latin1.yaml: line 6: not valid UTF-8 (Kubernetes manifests are UTF-8 text; a Latin-1 "é" is one such byte)',
      '  env/b-escape.yaml: line 6: control character U+001B is not allowed (YAML takes it only escaped, "\\u001b" in a double-quoted string)',
      '  env/c-utf16.yaml: is UTF-16 text (it starts with a UTF-16 byte order mark): save it as UTF-8',
      '  env/d-lfs.yaml: a Git LFS pointer, not a manifest: pushgate reads files as committed and fetches no LFS objects (keep manifests out of LFS in .gitattributes)',
      '  env/e-del.yml: line 6: control character U+007F is not allowed (YAML takes it only escaped, "\\u007f" in a double-quoted string)',
      '  env/g-nel.yaml: line 6: control character U+0085 is not allowed (YAML takes it only escaped, "\\u0085" in a double-quoted string)',
    ]);
  });

  it('reads a byte order mark at the start of the file and of any later document', async () => {
    await write(
      'env/joined.yaml',
      `\uFEFF${configMap('first')}---\n\uFEFF${configMap('second')}\uFEFF# joined\n\uFEFF--- # third\n\n\uFEFF${configMap('third', 'data:\n  k: "\uFEFFkept"\n')}`,
    );
    await write('env/tab.yaml', configMap('tab', 'data:\n  a:\t"b"\n'));

    const manifests = await loadManifests(root, 'env');

    expect(manifests.map((m) => m.object.metadata.name)).toEqual(['first', 'second', 'third', 'tab']);
    // Inside a document, the mark is data.
    expect(manifests[2]?.object.data).toEqual({ k: '\uFEFFkept' });
  });

  it('refuses a manifest or folder whose name is not UTF-8, which no path could open', async () => {
    await write('env/ok.yaml', configMap('ok'));
    const bytes = (name: string) => Buffer.concat([Buffer.from(`${root}/env/`), Buffer.from(name, 'latin1')]);
    await writeFile(bytes('caf\xe9.yaml'), configMap('named'));
    await mkdir(bytes('d\xfe'));
    await writeFile(bytes('notes\xff.txt'), 'not a manifest, not read');

    const error = await loadError();

    expect(error.message.split('\n').slice(1).sort()).toEqual([
      '  env/caf\uFFFD.yaml: the name is not valid UTF-8 (rename it)',
      '  env/d\uFFFD: the name is not valid UTF-8 (rename it)',
    ]);
  });

  it('refuses a file over the size limit', async () => {
    await write('env/big.yaml', `${configMap('big')}data:\n  x: "${'a'.repeat(MAX_MANIFEST_FILE_BYTES)}"\n`);

    const error = await loadError();

    expect(error.message).toMatch(/^env\/big\.yaml: file is \d+ bytes, over the 4194304-byte limit$/);
  });

  it('lists every object without apiVersion, kind or metadata.name, with file and document', async () => {
    await write(
      'env/web.yaml',
      `${configMap('ok')}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {}\n---\nkind: Service\nmetadata: {name: x}\n---\n- just\n- a list\n---\napiVersion: v1\nmetadata: {name: why}\n`,
    );
    await write('env/broken.yaml', 'apiVersion: v1\nkind: [unclosed\n');

    const error = await loadError();

    expect(error.message.split('\n')).toEqual([
      '5 manifest errors:',
      expect.stringMatching(/^ {2}env\/broken\.yaml document 1: invalid YAML: /) as string,
      '  env/web.yaml document 2: metadata.name is required',
      '  env/web.yaml document 3: apiVersion is required',
      '  env/web.yaml document 4: document is not a Kubernetes object (expected a mapping)',
      '  env/web.yaml document 5: kind is required',
    ]);
  });

  it('names the field of a header of the wrong type once, and what it should be', async () => {
    await write(
      'env/web.yaml',
      `apiVersion: v1\nkind: ConfigMap\nmetadata: web\n---\napiVersion: 1\nkind: ConfigMap\nmetadata:\n  name: x\n  labels: {app: 3}\n`,
    );

    const error = await loadError();

    expect(error.message.split('\n')).toEqual([
      '3 manifest errors:',
      '  env/web.yaml document 1: metadata: must be a mapping',
      '  env/web.yaml document 2: apiVersion: Expected string, received number',
      '  env/web.yaml document 2: metadata.labels.app: Expected string, received number',
    ]);
  });

  it('caps the listed problems and says how many more there are', async () => {
    await write(
      'env/many.yaml',
      Array.from({ length: 25 }, () => 'kind: ConfigMap\nmetadata: {name: x}\n').join('---\n'),
    );

    const error = await loadError();

    const lines = error.message.split('\n');
    expect(lines[0]).toBe('25 manifest errors:');
    expect(lines).toHaveLength(22);
    expect(lines.at(-1)).toBe('  … and 5 more');
  });
});
