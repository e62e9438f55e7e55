import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { MirrorCache } from '../../src/git/mirror-cache.js';
import { createEnvRepo, type EnvRepo } from './env-repo.js';

/** An environment repository (branch env/staging) and an empty mirror cache for it. */
export interface MirrorWorld {
  repo: EnvRepo;
  cacheDir: string;
  cache: MirrorCache;
  remove(): Promise<void>;
}

export async function createMirrorWorld(): Promise<MirrorWorld> {
  const repo = await createEnvRepo({ branch: 'env/staging' });
  const cacheDir = await mkdtemp(path.join(tmpdir(), 'pushgate-cache-'));
  return {
    repo,
    cacheDir,
    cache: new MirrorCache({ dir: cacheDir }),
    async remove() {
      await repo.remove();
      await rm(cacheDir, { recursive: true, force: true });
    },
  };
}
