import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { removeStaleTrees, STALE_TREE_MS } from '../../../src/git/mirror-cache.js';

let dir: string | undefined;

afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function folder(name: string, ageMs: number): Promise<void> {
  const full = path.join(dir!, name);
  await mkdir(path.join(full, 'tree'), { recursive: true });
  await writeFile(path.join(full, 'tree', 'web.yaml'), 'kind: ConfigMap\n');
  const when = new Date(Date.now() - ageMs);
  await utimes(full, when, when);
}

describe('removeStaleTrees', () => {
  it('removes the checkouts a killed worker left, and nothing a live deploy or anyone else holds', async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'pushgate-stale-'));
    await folder('pushgate-tree-killed', STALE_TREE_MS + 60_000);
    await folder('pushgate-tree-deploying', 60_000);
    await folder('other-tool-old', STALE_TREE_MS + 60_000);

    expect(await removeStaleTrees(dir)).toBe(1);
    expect((await readdir(dir)).sort()).toEqual(['other-tool-old', 'pushgate-tree-deploying']);
  });

  it('is quiet about a folder that does not exist', async () => {
    expect(await removeStaleTrees(path.join(tmpdir(), 'pushgate-no-such-folder'))).toBe(0);
  });
});
