import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadManifests } from '../../../src/manifests/load.js';

let root: string;

beforeEach(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'pushgate-load-paths-'));
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('loadManifests manifest path', () => {
  it('reads a folder whose name starts with two dots: it is inside the repository', async () => {
    await mkdir(path.join(root, '..env'));
    await writeFile(
      path.join(root, '..env/a.yaml'),
      'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n',
    );

    const manifests = await loadManifests(root, '..env');

    expect(manifests.map((m) => m.source.file)).toEqual(['..env/a.yaml']);
  });

  it('still refuses a path that climbs out of the repository', async () => {
    await expect(loadManifests(root, 'env/../../x')).rejects.toThrow(
      'manifest path "env/../../x" is outside the repository',
    );
  });
});
