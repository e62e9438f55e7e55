import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MirrorCache } from '../../src/git/mirror-cache.js';
import { createEnvRepo, type EnvRepo } from '../helpers/env-repo.js';
import { git } from '../helpers/git.js';

/** Low enough that a few fetches pass it: each fetch writes one pack (fetch-budget's unpack limit). */
const PACK_LIMIT = 3;

describe('git gc of the mirror cache (real git over file://)', () => {
  let repo: EnvRepo;
  let cacheDir: string;
  let cache: MirrorCache;
  let gitDir: string;
  const source = () => ({ url: repo.url, provider: 'github' as const });
  const packs = async () =>
    (await readdir(path.join(gitDir, 'objects', 'pack'))).filter((name) => name.endsWith('.pack')).length;
  /** One line per gc that decided to run (git calls the hook before it does any work). */
  const gcRuns = async () =>
    (await readFile(path.join(gitDir, 'gc-runs'), 'utf8').catch(() => '')).split('\n').filter(Boolean).length;

  beforeEach(async () => {
    repo = await createEnvRepo();
    cacheDir = await mkdtemp(path.join(tmpdir(), 'pushgate-cache-gc-'));
    cache = new MirrorCache({ dir: cacheDir });
    await repo.commit({ 'manifests/a.yaml': 'kind: ConfigMap\n' });
    await cache.fetchBranch(source(), repo.branch);
    gitDir = cache.mirrorDir(repo.url);
    await git(gitDir, ['config', 'gc.autoPackLimit', String(PACK_LIMIT)]);
    await writeFile(
      path.join(gitDir, 'hooks', 'pre-auto-gc'),
      `#!/bin/sh\necho gc >> '${path.join(gitDir, 'gc-runs')}'\n`,
      {
        mode: 0o755,
      },
    );
  });

  afterEach(async () => {
    await repo.remove();
    await rm(cacheDir, { recursive: true, force: true });
  });

  it('a fetch never starts a gc, however many packs the mirror has', async () => {
    for (let i = 0; i < PACK_LIMIT + 2; i++) {
      await repo.commit({ 'manifests/a.yaml': `kind: ConfigMap\ndata: {i: "${i}"}\n` });
      await cache.fetchBranch(source(), repo.branch);
    }

    expect(await gcRuns()).toBe(0);
    expect(await packs()).toBeGreaterThan(PACK_LIMIT);
  });

  it('collectGarbage repacks the mirrors fetched since, and has finished when it resolves', async () => {
    for (let i = 0; i < PACK_LIMIT + 2; i++) {
      await repo.commit({ 'manifests/a.yaml': `kind: ConfigMap\ndata: {i: "${i}"}\n` });
      await cache.fetchBranch(source(), repo.branch);
    }

    expect(await cache.collectGarbage()).toEqual([]);

    expect(await gcRuns()).toBe(1);
    expect(await packs()).toBe(1);
    // Nothing fetched since: nothing to look at.
    expect(await cache.collectGarbage()).toEqual([]);
    expect(await gcRuns()).toBe(1);
  });
});
