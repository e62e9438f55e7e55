import { mkdtemp, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MirrorCache } from '../../src/git/mirror-cache.js';
import { PushgateError } from '../../src/lib/errors.js';
import { loadManifests } from '../../src/manifests/load.js';
import { createEnvRepo, type EnvRepo } from '../helpers/env-repo.js';

describe('git mirror cache edge cases (real git)', () => {
  let repo: EnvRepo;
  let cacheDir: string;

  beforeEach(async () => {
    repo = await createEnvRepo({ branch: 'env/staging' });
    cacheDir = await mkdtemp(path.join(tmpdir(), 'pushgate-cache-'));
  });

  afterEach(async () => {
    await repo.remove();
    await rm(cacheDir, { recursive: true, force: true });
  });

  it('checks out a commit that removed every file as an empty folder', async () => {
    await repo.commit({ 'web.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\n' });
    await repo.commit({ 'web.yaml': null }, 'remove everything');
    const cache = new MirrorCache({ dir: cacheDir });
    const source = { url: repo.url, provider: 'github' as const };

    const head = await cache.fetchBranch(source, repo.branch);
    const tree = await cache.checkout(source, head);

    try {
      expect(await readdir(tree.dir)).toEqual([]);
      expect(await loadManifests(tree.dir, '.')).toEqual([]);
    } finally {
      await tree.remove();
    }
  });

  describe('behind an HTTP proxy', () => {
    let proxy: Server;
    let proxied: string[];
    let proxyUrl: string;

    beforeEach(async () => {
      proxied = [];
      // A forward proxy sees absolute URLs; it refuses, so the fetch fails after reaching it.
      proxy = createServer((req, res) => {
        proxied.push(req.url ?? '');
        res.writeHead(404).end();
      });
      await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
      const address = proxy.address();
      if (!address || typeof address === 'string') throw new Error('no address');
      proxyUrl = `http://127.0.0.1:${address.port}`;
    });

    afterEach(async () => {
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
    });

    it('fetches through the proxy the environment names', async () => {
      const cache = new MirrorCache({ dir: cacheDir, env: { ...process.env, http_proxy: proxyUrl } });

      const error = await cache
        .fetchBranch({ url: 'http://git.example.invalid/acme/env.git', provider: 'github' }, 'main')
        .catch((e: unknown) => e);

      expect(error).toBeInstanceOf(PushgateError);
      expect(proxied[0]).toMatch(/^http:\/\/git\.example\.invalid\/acme\/env\.git\/info\/refs/);
    });
  });

  describe('a lock file in the mirror', () => {
    const source = () => ({ url: repo.url, provider: 'github' as const });
    const web = (n: number) => ({
      'web.yaml': `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web${n}}\n`,
    });

    async function lockBranchRef(cache: MirrorCache, ageMs: number): Promise<string> {
      const lock = path.join(cache.mirrorDir(repo.url), 'refs', 'heads', 'env', 'staging.lock');
      await writeFile(lock, '');
      const when = new Date(Date.now() - ageMs);
      await utimes(lock, when, when);
      return lock;
    }

    it('left by a git that was killed is removed, and the fetch goes on', async () => {
      const cache = new MirrorCache({ dir: cacheDir });
      await repo.commit(web(1));
      await cache.fetchBranch(source(), repo.branch);
      const lock = await lockBranchRef(cache, 10 * 60_000);
      const next = await repo.commit(web(2));

      expect(await cache.fetchBranch(source(), repo.branch)).toBe(next);
      await expect(stat(lock)).rejects.toThrow(/ENOENT/);
    });

    it('held by a git still running is waited for, not removed', async () => {
      const cache = new MirrorCache({ dir: cacheDir });
      await repo.commit(web(1));
      await cache.fetchBranch(source(), repo.branch);
      const lock = await lockBranchRef(cache, 0);
      const next = await repo.commit(web(2));

      // The other git finishes (its lock goes) while this fetch waits.
      const fetched = cache.fetchBranch(source(), repo.branch);
      await new Promise((resolve) => setTimeout(resolve, 200));
      await rm(lock);
      expect(await fetched).toBe(next);
    });

    it('that stays fails the fetch, naming the lock, and is left in place', async () => {
      const cache = new MirrorCache({ dir: cacheDir });
      await repo.commit(web(1));
      await cache.fetchBranch(source(), repo.branch);
      const lock = await lockBranchRef(cache, 0);
      await repo.commit(web(2));

      const error = await cache.fetchBranch(source(), repo.branch).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(PushgateError);
      expect((error as Error).message).toContain("staging.lock': File exists");
      expect((await stat(lock)).isFile()).toBe(true);
    });
  });
});
