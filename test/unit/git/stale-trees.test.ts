import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { removeStaleTrees, STALE_TREE_MS } from '../../../src/git/checkout-folders.js';
import { ownProcessIdentity } from '../../../src/lib/live-processes.js';

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

  it('removes at once a checkout whose owner has ended, even when a new process got its pid', async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'pushgate-stale-'));
    const own = (await ownProcessIdentity())!;
    const earlier = String(Number(own.startTicks) - 1);
    await folder(`pushgate-tree-${own.pid}-${own.startTicks}-Ab12Cd`, STALE_TREE_MS + 60_000);
    // A restarted container's worker has the killed one's pid, never its start time.
    await folder(`pushgate-tree-${own.pid}-${earlier}-Ef34Gh`, 1_000);

    expect(await removeStaleTrees(dir)).toBe(1);
    expect(await readdir(dir)).toEqual([`pushgate-tree-${own.pid}-${own.startTicks}-Ab12Cd`]);
  });

  it('is quiet about a folder that does not exist', async () => {
    expect(await removeStaleTrees(path.join(tmpdir(), 'pushgate-no-such-folder'))).toBe(0);
  });
});
