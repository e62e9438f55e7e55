import { mkdir, mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  loadManifests,
  MAX_MANIFEST_FILE_BYTES,
  MAX_MANIFEST_TOTAL_BYTES,
} from '../../../src/manifests/load.js';

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

describe('loadManifests size limits', () => {
  it('refuses an environment whose files together are too big, before parsing any, though each is under the file limit', async () => {
    await mkdir(path.join(root, 'env'));
    const each = MAX_MANIFEST_FILE_BYTES - 1024;
    const count = Math.floor(MAX_MANIFEST_TOTAL_BYTES / each) + 1;
    for (let n = 0; n < count; n++) {
      const file = path.join(root, 'env', `big-${n}.yaml`);
      await writeFile(file, '');
      await truncate(file, each);
    }

    await expect(loadManifests(root, 'env')).rejects.toMatchObject({
      code: 'manifest_invalid',
      permanent: true,
      message: `the manifests under "env" are ${count * each} bytes in ${count} files, over the ${MAX_MANIFEST_TOTAL_BYTES}-byte limit for one environment`,
    });
  });
});
