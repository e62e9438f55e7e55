import { describe, expect, it } from 'vitest';
import { newlySkippedFolders } from '../../../src/deploy/skipped-folders.js';
import type { SkippedPath } from '../../../src/manifests/load.js';

const REPO = { url: 'file:///env.git', provider: 'github' as const };
const LAST = 'a'.repeat(40);

/** A mirror whose commit LAST holds exactly `entries` (path → type). */
function mirrorHolding(entries: Record<string, string>) {
  const asked: string[][] = [];
  return {
    asked,
    typesAt: (_repo: unknown, sha: string, paths: readonly string[]) => {
      asked.push([...paths]);
      return Promise.resolve(paths.map((entry) => (sha === LAST ? entries[entry] : undefined)));
    },
  };
}

function skipped(path: string, holdsManifests = true): SkippedPath {
  return { path, reason: 'contains kustomization.yaml; …', holdsManifests };
}

describe('newlySkippedFolders', () => {
  it('names a folder the last applied commit read, whose files are still there', async () => {
    const mirror = mirrorHolding({ 'manifests/app': 'tree', 'manifests/app/a.yaml': 'blob' });

    expect(await newlySkippedFolders(mirror, REPO, LAST, 'manifests', [skipped('manifests/app')])).toEqual([
      skipped('manifests/app'),
    ]);
  });

  it('leaves out a folder skipped then too, by its own kustomization or one above it up to the path', async () => {
    const own = mirrorHolding({ 'manifests/app': 'tree', 'manifests/app/Kustomization': 'blob' });
    expect(await newlySkippedFolders(own, REPO, LAST, './manifests/', [skipped('manifests/app')])).toEqual(
      [],
    );
    const above = mirrorHolding({
      'manifests/app/sub': 'tree',
      'manifests/app/kustomization.yml': 'blob',
    });
    expect(await newlySkippedFolders(above, REPO, LAST, 'manifests', [skipped('manifests/app/sub')])).toEqual(
      [],
    );
    // Above the environment's path does not count: that folder was never read as a whole.
    const outside = mirrorHolding({ 'manifests/app': 'tree', 'kustomization.yaml': 'blob' });
    expect(await newlySkippedFolders(outside, REPO, LAST, 'manifests', [skipped('manifests/app')])).toEqual([
      skipped('manifests/app'),
    ]);
  });

  it('leaves out a folder new since, one holding nothing but its kustomization, and a commit the mirror lacks', async () => {
    const mirror = mirrorHolding({ 'manifests/old': 'tree' });
    expect(await newlySkippedFolders(mirror, REPO, LAST, 'manifests', [skipped('manifests/new')])).toEqual(
      [],
    );
    expect(
      await newlySkippedFolders(mirror, REPO, LAST, 'manifests', [skipped('manifests/old', false)]),
    ).toEqual([]);
    expect(mirror.asked).toHaveLength(1);
    expect(
      await newlySkippedFolders(mirror, REPO, 'b'.repeat(40), 'manifests', [skipped('manifests/old')]),
    ).toEqual([]);
  });

  it('reads the repository root as the path', async () => {
    const mirror = mirrorHolding({ app: 'tree' });
    expect(await newlySkippedFolders(mirror, REPO, LAST, '.', [skipped('app')])).toEqual([skipped('app')]);
    expect(mirror.asked[0]).toEqual(
      expect.arrayContaining(['app', 'kustomization.yaml', 'app/kustomization.yaml']),
    );
  });
});
