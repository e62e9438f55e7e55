import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MirrorCache } from '../../src/git/mirror-cache.js';
import { createEnvRepo, type EnvRepo } from '../helpers/env-repo.js';

// The mirror is a full copy of a private environment repository; on a shared host (npm start,
// pushgate render) other local users must not read it through the cache folder.
describe('git mirror cache permissions (real git over file://)', () => {
  let repo: EnvRepo;
  let base: string;

  beforeEach(async () => {
    repo = await createEnvRepo({ branch: 'env/staging' });
    base = await mkdtemp(path.join(tmpdir(), 'pushgate-cache-perms-'));
  });

  afterEach(async () => {
    await repo.remove();
    await rm(base, { recursive: true, force: true });
  });

  it('creates the cache folder and each mirror readable by their owner only', async () => {
    await repo.commit({ 'apps/secret.yaml': 'kind: Secret\n' });
    const cacheDir = path.join(base, 'cache', 'git');
    const cache = new MirrorCache({ dir: cacheDir });
    const source = { url: repo.url, provider: 'github' as const };

    await cache.fetchBranch(source, repo.branch);

    for (const dir of [path.join(base, 'cache'), cacheDir, cache.mirrorDir(repo.url)]) {
      const mode = (await stat(dir)).mode & 0o777;
      expect({ dir, mode: mode.toString(8) }).toEqual({ dir, mode: '700' });
    }
  });
});
