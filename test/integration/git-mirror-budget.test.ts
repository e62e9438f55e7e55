import { CoreV1Api } from '@kubernetes/client-node';
import { lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { MirrorCache } from '../../src/git/mirror-cache.js';
import {
  MAX_CHECKOUT_ENTRIES,
  MAX_CHECKOUT_NAME_BYTES,
  MAX_CHECKOUT_PATH_BYTES,
} from '../../src/git/tree-budget.js';
import { errorMessage, PushgateError } from '../../src/lib/errors.js';
import { loadManifests } from '../../src/manifests/load.js';
import { createEnvRepo, type EnvRepo } from '../helpers/env-repo.js';
import { createTestNamespace, kubeConfigFromTest } from '../helpers/kube.js';
import {
  commitGitBomb,
  commitTree,
  writeBlob,
  writeGitBomb,
  writeTree,
  writtenPaths,
} from '../helpers/git-trees.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { createWorkerHarness } from './worker-harness.js';

const configMap = (name: string) => `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ${name}}\n`;

describe('git mirror cache: the checkout budget (real git)', () => {
  let repo: EnvRepo;
  let cacheDir: string;
  /** TMPDIR of this test alone: where checkout() makes its pushgate-tree-* folders. */
  let temp: string;
  const source = () => ({ url: repo.url, provider: 'github' as const });

  beforeEach(async () => {
    repo = await createEnvRepo({ branch: 'env/staging' });
    cacheDir = await mkdtemp(path.join(tmpdir(), 'pushgate-cache-'));
    temp = await mkdtemp(path.join(tmpdir(), 'pushgate-budget-tmp-'));
    vi.stubEnv('TMPDIR', temp);
  });

  afterEach(async () => {
    vi.unstubAllEnvs();
    await repo.remove();
    await rm(cacheDir, { recursive: true, force: true });
    await rm(temp, { recursive: true, force: true });
  });

  it('refuses a git bomb at once, permanently, naming the limit, and writes nothing', async () => {
    const bomb = await commitGitBomb(repo, 9);
    const cache = new MirrorCache({ dir: cacheDir });
    await cache.fetchBranch(source(), repo.branch);

    const started = Date.now();
    const error = await cache.checkout(source(), bomb).catch((e: unknown) => e);
    const elapsedMs = Date.now() - started;

    expect(error).toBeInstanceOf(PushgateError);
    expect(error).toMatchObject({ code: 'manifest_invalid', permanent: true });
    expect((error as Error).message).toBe(
      `commit ${bomb} holds more than ${MAX_CHECKOUT_ENTRIES} files and folders, the limit for one checkout: ` +
        'refusing to check it out (an environment repository should hold manifests only)',
    );
    // 10^10 files would take read-tree days; the measurement stops at the budget.
    expect(elapsedMs).toBeLessThan(10_000);
    expect(await readdir(temp)).toEqual([]);
  });

  it('checks out a commit at the entry budget and refuses one entry more', async () => {
    const files = {
      'manifests/a.yaml': configMap('a'),
      'manifests/b.yaml': configMap('b'),
      'README.md': '# env\n',
    };
    const atBudget = await repo.commit(files);
    const over = await repo.commit({ 'manifests/c.yaml': configMap('c') });
    // manifests/, its two files and README.md.
    const cache = new MirrorCache({ dir: cacheDir, checkoutBudget: { entries: 4 } });
    await cache.fetchBranch(source(), repo.branch);

    const tree = await cache.checkout(source(), atBudget);
    try {
      expect(path.relative(temp, tree.dir)).toMatch(/^pushgate-tree-\d+-\d+-\w+\/tree$/);
      expect((await readdir(path.join(tree.dir, 'manifests'))).sort()).toEqual(['a.yaml', 'b.yaml']);
    } finally {
      await tree.remove();
    }
    const error = await cache.checkout(source(), over).catch((e: unknown) => e);

    expect(error).toMatchObject({ code: 'manifest_invalid', permanent: true });
    expect((error as Error).message).toContain(`commit ${over} holds more than 4 files and folders`);
    expect(await readdir(temp)).toEqual([]);
  });

  it('checks out a commit whose files add up to the byte budget and refuses one byte more', async () => {
    const atBudget = await repo.commit({ 'manifests/a.yaml': configMap('a') });
    const over = await repo.commit({ 'manifests/a.yaml': configMap('ab') });
    const bytes = Buffer.byteLength(configMap('a'));
    const cache = new MirrorCache({ dir: cacheDir, checkoutBudget: { bytes } });
    await cache.fetchBranch(source(), repo.branch);

    const tree = await cache.checkout(source(), atBudget);
    await tree.remove();
    const error = await cache.checkout(source(), over).catch((e: unknown) => e);

    expect(error).toMatchObject({ code: 'manifest_invalid', permanent: true });
    expect((error as Error).message).toContain(
      `commit ${over} holds more than ${bytes} bytes of files (${bytes + 1} counted before stopping), over the ${bytes}-byte limit for one checkout`,
    );
  });

  it('counts a symlink and a submodule as entries, the symlink by its target and the submodule as no bytes', async () => {
    const manifest = await writeBlob(repo.bareDir, configMap('a'));
    const target = 'manifests/a.yaml';
    const link = await writeBlob(repo.bareDir, target);
    const manifests = await writeTree(repo.bareDir, [{ mode: '100644', sha: manifest, name: 'a.yaml' }]);
    const someCommit = await commitTree(repo, manifests);
    const sha = await commitTree(
      repo,
      await writeTree(repo.bareDir, [
        { mode: '120000', sha: link, name: 'link.yaml' },
        { mode: '040000', sha: manifests, name: 'manifests' },
        { mode: '160000', sha: someCommit, name: 'vendor' },
      ]),
    );
    const exact = { entries: 4, bytes: Buffer.byteLength(configMap('a')) + target.length };
    const checkoutWithin = async (budget: { entries: number; bytes: number }) => {
      const cache = new MirrorCache({ dir: cacheDir, checkoutBudget: budget });
      await cache.fetchBranch(source(), repo.branch);
      return cache.checkout(source(), sha);
    };
    const refusal = (budget: { entries: number; bytes: number }) =>
      checkoutWithin(budget).then(
        () => 'checked out',
        (error: unknown) => errorMessage(error),
      );

    const tree = await checkoutWithin(exact);
    try {
      expect(await readlink(path.join(tree.dir, 'link.yaml'))).toBe(target);
      expect((await lstat(path.join(tree.dir, 'vendor'))).isDirectory()).toBe(true);
    } finally {
      await tree.remove();
    }
    expect(await refusal({ ...exact, entries: 3 })).toContain(
      `commit ${sha} holds more than 3 files and folders`,
    );
    expect(await refusal({ ...exact, bytes: exact.bytes - 1 })).toContain(
      `commit ${sha} holds more than ${exact.bytes - 1} bytes of files`,
    );
  });

  it('refuses a path longer than a file system takes, without reading it whole', async () => {
    const manifest = await writeBlob(repo.bareDir, configMap('a'));
    let tree = await writeTree(repo.bareDir, [{ mode: '100644', sha: manifest, name: 'a.yaml' }]);
    // 21 folders of 200-byte names: a 4,200-byte path.
    for (let level = 0; level < 21; level++) {
      tree = await writeTree(repo.bareDir, [
        { mode: '040000', sha: tree, name: 'd'.repeat(199) + String(level % 10) },
      ]);
    }
    const sha = await commitTree(repo, tree);
    const cache = new MirrorCache({ dir: cacheDir });
    await cache.fetchBranch(source(), repo.branch);

    const error = await cache.checkout(source(), sha).catch((e: unknown) => e);

    expect(error).toMatchObject({ code: 'manifest_invalid', permanent: true });
    expect(errorMessage(error)).toContain(
      `commit ${sha} holds a path longer than ${MAX_CHECKOUT_PATH_BYTES} bytes`,
    );
    expect(await readdir(temp)).toEqual([]);
  });

  it('refuses a file name longer than a file system takes, for good, before writing anything', async () => {
    // read-tree would fail on it at every attempt ("File name too long"), as if the disk were at fault.
    const manifest = await writeBlob(repo.bareDir, configMap('a'));
    const commitNamed = async (name: string) => {
      const docs = await writeTree(repo.bareDir, [{ mode: '100644', sha: manifest, name }]);
      return commitTree(repo, await writeTree(repo.bareDir, [{ mode: '040000', sha: docs, name: 'docs' }]));
    };
    const tooLong = await commitNamed(`${'n'.repeat(MAX_CHECKOUT_NAME_BYTES - 2)}.md`);
    const cache = new MirrorCache({ dir: cacheDir });
    await cache.fetchBranch(source(), repo.branch);

    const error = await cache.checkout(source(), tooLong).catch((e: unknown) => e);

    expect(error).toMatchObject({ code: 'manifest_invalid', permanent: true });
    expect(errorMessage(error)).toContain(
      `commit ${tooLong} holds a file or folder name longer than ${MAX_CHECKOUT_NAME_BYTES} bytes`,
    );
    expect(await readdir(temp)).toEqual([]);
    // 255 bytes is what the file system takes.
    const longest = await commitNamed(`${'n'.repeat(MAX_CHECKOUT_NAME_BYTES - 3)}.md`);
    await cache.fetchBranch(source(), repo.branch);
    const tree = await cache.checkout(source(), longest);
    await tree.remove();
  });

  it('writes the committed bytes, whatever .gitattributes asks (no ident, eol or encoding growth)', async () => {
    const sha = await repo.commit({
      '.gitattributes': '* ident\ncrlf.txt text eol=crlf\n',
      'id.txt': '$Id$\n',
      'crlf.txt': 'a\nb\n',
    });
    const cache = new MirrorCache({ dir: cacheDir });
    await cache.fetchBranch(source(), repo.branch);

    const tree = await cache.checkout(source(), sha);
    try {
      expect(await readFile(path.join(tree.dir, 'id.txt'), 'utf8')).toBe('$Id$\n');
      expect(await readFile(path.join(tree.dir, 'crlf.txt'), 'utf8')).toBe('a\nb\n');
    } finally {
      await tree.remove();
    }
  });

  describe('of an environment path', () => {
    /** apps/web holds two manifests (with apps/, 4 entries); the rest of the commit 14 more. */
    const monorepo = () =>
      repo.commit({
        'apps/web/a.yaml': configMap('a'),
        'apps/web/b.yaml': configMap('b'),
        'README.md': '# apps\n',
        ...Object.fromEntries(
          Array.from({ length: 12 }, (_, i) => [`apps/other/${i}.yaml`, configMap(`other${i}`)]),
        ),
      });

    it('counts and writes that path alone: a commit over the budget elsewhere checks it out', async () => {
      const sha = await monorepo();
      const cache = new MirrorCache({ dir: cacheDir, checkoutBudget: { entries: 4 } });
      await cache.fetchBranch(source(), repo.branch);

      const tree = await cache.checkout(source(), sha, 'apps/web');
      try {
        expect(await writtenPaths(tree.dir)).toEqual(['apps/web/a.yaml', 'apps/web/b.yaml']);
        const manifests = await loadManifests(tree.dir, 'apps/web');
        expect(manifests.map((manifest) => manifest.object.metadata.name)).toEqual(['a', 'b']);
      } finally {
        await tree.remove();
      }
      expect(errorMessage(await cache.checkout(source(), sha).catch((e: unknown) => e))).toContain(
        `commit ${sha} holds more than 4 files and folders, the limit for one checkout`,
      );
    });

    it('checks it out at once beside a git bomb', async () => {
      const manifest = await writeBlob(repo.bareDir, configMap('a'));
      const web = await writeTree(repo.bareDir, [{ mode: '100644', sha: manifest, name: 'a.yaml' }]);
      const bomb = await writeGitBomb(repo.bareDir, 9);
      const sha = await commitTree(
        repo,
        await writeTree(repo.bareDir, [
          { mode: '040000', sha: bomb, name: 'bomb' },
          { mode: '040000', sha: web, name: 'web' },
        ]),
      );
      const cache = new MirrorCache({ dir: cacheDir });
      await cache.fetchBranch(source(), repo.branch);

      const started = Date.now();
      const tree = await cache.checkout(source(), sha, 'web');
      try {
        expect(await writtenPaths(tree.dir)).toEqual(['web/a.yaml']);
        expect(Date.now() - started).toBeLessThan(10_000);
      } finally {
        await tree.remove();
      }
    });

    it('refuses it over the budget, for good, naming the limit and the path, and writes nothing', async () => {
      const sha = await monorepo();
      const cache = new MirrorCache({ dir: cacheDir, checkoutBudget: { entries: 3 } });
      await cache.fetchBranch(source(), repo.branch);

      const error = await cache.checkout(source(), sha, 'apps/web').catch((e: unknown) => e);

      expect(error).toMatchObject({ code: 'manifest_invalid', permanent: true });
      expect(errorMessage(error)).toBe(
        `commit ${sha} holds more than 3 files and folders under "apps/web" and what its symlinks reach, ` +
          "the limit for one checkout: refusing to check it out (an environment's path should hold its manifests only)",
      );
      expect(await readdir(temp)).toEqual([]);
    });

    it('counts what its symlinks reach elsewhere, files and folders, entries and bytes', async () => {
      await mkdir(path.join(repo.workDir, 'apps/web'), { recursive: true });
      await symlink('../../base', path.join(repo.workDir, 'apps/web/base'));
      const sha = await repo.commit({
        'apps/web/a.yaml': configMap('a'),
        'base/b.yaml': configMap('b'),
        'unrelated/c.yaml': configMap('c'),
      });
      // apps/, apps/web/, a.yaml, the symlink; base/ and b.yaml.
      const exact = { entries: 6, bytes: 2 * Buffer.byteLength(configMap('a')) + '../../base'.length };
      const checkoutWithin = async (budget: { entries: number; bytes: number }) => {
        const cache = new MirrorCache({ dir: cacheDir, checkoutBudget: budget });
        await cache.fetchBranch(source(), repo.branch);
        return cache.checkout(source(), sha, 'apps/web');
      };

      const tree = await checkoutWithin(exact);
      try {
        expect(await writtenPaths(tree.dir)).toEqual(['apps/web/a.yaml', 'apps/web/base', 'base/b.yaml']);
      } finally {
        await tree.remove();
      }
      await expect(checkoutWithin({ ...exact, entries: 5 })).rejects.toThrow(
        `commit ${sha} holds more than 5 files and folders under "apps/web"`,
      );
      await expect(checkoutWithin({ ...exact, bytes: exact.bytes - 1 })).rejects.toThrow(
        `commit ${sha} holds more than ${exact.bytes - 1} bytes of files (${exact.bytes} counted before stopping) under "apps/web"`,
      );
    });

    it.each(['.', './', ''])(
      'counts and writes the whole commit for path %j, as without one',
      async (manifestPath) => {
        const sha = await monorepo();
        const within = new MirrorCache({ dir: cacheDir, checkoutBudget: { entries: 18 } });
        const over = new MirrorCache({ dir: cacheDir, checkoutBudget: { entries: 17 } });
        await within.fetchBranch(source(), repo.branch);

        const tree = await within.checkout(source(), sha, manifestPath);
        try {
          expect(await writtenPaths(tree.dir)).toContain('README.md');
          expect(await writtenPaths(tree.dir)).toHaveLength(15);
        } finally {
          await tree.remove();
        }
        expect(errorMessage(await over.checkout(source(), sha, manifestPath).catch((e: unknown) => e))).toBe(
          `commit ${sha} holds more than 17 files and folders, the limit for one checkout: ` +
            'refusing to check it out (an environment repository should hold manifests only)',
        );
      },
    );
  });
});

describe('deploy worker and a git bomb (real Redis, git over file://, kube-apiserver)', () => {
  let redis: TestRedis;
  let temp: string;

  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis.stop();
  });
  beforeEach(async () => {
    temp = await mkdtemp(path.join(tmpdir(), 'pushgate-budget-tmp-'));
    vi.stubEnv('TMPDIR', temp);
  });
  afterEach(async () => {
    vi.unstubAllEnvs();
    await rm(temp, { recursive: true, force: true });
  });

  it('fails the job at once (one attempt) with the limit in its error, and checks nothing out', async () => {
    const repo = await createEnvRepo({ branch: 'env/test' });
    const harness = await createWorkerHarness({
      redisUrl: redis.url,
      environments: [{ name: 'bomb', repo, env: { namespace: 'pushgate-bomb-never-applied' } }],
    });
    try {
      const sha = await commitGitBomb(repo, 9);
      await harness.startWorker();

      const record = await harness.waitForJob(await harness.webhook('bomb', sha));

      expect(record).toMatchObject({ state: 'failed', sha, attempts: 1 });
      expect(record.error).toContain(
        `commit ${sha} holds more than ${MAX_CHECKOUT_ENTRIES} files and folders`,
      );
      expect((await readdir(temp)).filter((name) => name.startsWith('pushgate-tree-'))).toEqual([]);
    } finally {
      await harness.close();
      await repo.remove();
    }
  });

  it('deploys an environment whose path lies beside a git bomb', async () => {
    const repo = await createEnvRepo({ branch: 'env/test' });
    const namespace = await createTestNamespace('beside-bomb');
    const harness = await createWorkerHarness({
      redisUrl: redis.url,
      environments: [{ name: 'monorepo', repo, env: { namespace: namespace.name } }],
    });
    try {
      const manifest = await writeBlob(repo.bareDir, configMap('beside-bomb'));
      const manifests = await writeTree(repo.bareDir, [{ mode: '100644', sha: manifest, name: 'web.yaml' }]);
      const bomb = await writeGitBomb(repo.bareDir, 9);
      const sha = await commitTree(
        repo,
        await writeTree(repo.bareDir, [
          { mode: '040000', sha: manifests, name: 'manifests' },
          { mode: '040000', sha: bomb, name: 'other' },
        ]),
      );
      await harness.startWorker();

      const record = await harness.waitForJob(await harness.webhook('monorepo', sha));

      expect(record).toMatchObject({ state: 'succeeded', sha, attempts: 1, error: null });
      const core = kubeConfigFromTest().makeApiClient(CoreV1Api);
      const live = await core.readNamespacedConfigMap({ name: 'beside-bomb', namespace: namespace.name });
      expect(live.metadata?.name).toBe('beside-bomb');
    } finally {
      await harness.close();
      await namespace.cleanup();
      await repo.remove();
    }
  });
});
