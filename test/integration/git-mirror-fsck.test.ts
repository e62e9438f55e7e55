import { CoreV1Api } from '@kubernetes/client-node';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { gitFetchLimitsFromEnv } from '../../src/git/fetch-budget.js';
import { FSCK_FETCH_CONFIG, FSCK_IGNORE_VARIABLE, MalformedObjectsError } from '../../src/git/fetch-fsck.js';
import { MirrorCache } from '../../src/git/mirror-cache.js';
import { runGit } from '../../src/git/run-git.js';
import { errorMessage } from '../../src/lib/errors.js';
import { createEnvRepo, type EnvRepo } from '../helpers/env-repo.js';
import { git } from '../helpers/git.js';
import {
  commitTree,
  writeBlob,
  writeCommitLiterally,
  writeTree,
  writeTreeLiterally,
  writtenPaths,
} from '../helpers/git-trees.js';
import { createTestNamespace, kubeConfigFromTest } from '../helpers/kube.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { createWorkerHarness } from './worker-harness.js';
import { createMirrorWorld, type MirrorWorld } from '../helpers/mirror-world.js';

const configMap = (name: string, value = 'v1') =>
  `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ${name}}\ndata: {value: ${value}}\n`;

/** A folder tree holding one file. */
async function folderOf(gitDir: string, name: string, content: string): Promise<string> {
  return writeTree(gitDir, [{ mode: '100644', sha: await writeBlob(gitDir, content), name }]);
}

/**
 * A tree holding `name` twice (mktree takes it): the first folder with a.yaml, the second
 * with b.yaml. A lookup of `name` finds the first alone; read-tree of the whole tree merges
 * both.
 */
async function twoFoldersOfOneName(gitDir: string, name: string, a: string, b: string): Promise<string> {
  return writeTree(gitDir, [
    { mode: '040000', sha: await folderOf(gitDir, 'a.yaml', a), name },
    { mode: '040000', sha: await folderOf(gitDir, 'b.yaml', b), name },
  ]);
}

describe('git mirror cache: a fetch checks what it receives (real git fsck over file://)', () => {
  let repo: EnvRepo;
  let cacheDir: string;
  let cache: MirrorCache;
  const source = () => ({ url: repo.url, provider: 'github' as const });
  const bare = (args: string[]) => git(repo.bareDir, ['--git-dir', repo.bareDir, ...args]);
  const inMirror = (args: string[]) => {
    const gitDir = cache.mirrorDir(repo.url);
    return git(gitDir, ['--git-dir', gitDir, ...args]);
  };
  const mirrorHolds = (object: string) =>
    inMirror(['cat-file', '-e', object]).then(
      () => true,
      () => false,
    );
  const packFiles = () => readdir(path.join(cache.mirrorDir(repo.url), 'objects', 'pack'));
  const refusal = (what: string, problem: string) =>
    `git ${what}: the repository holds malformed objects (${problem}): refusing them`;

  let world: MirrorWorld;
  beforeEach(async () => {
    ({ repo, cacheDir, cache } = world = await createMirrorWorld());
  });
  afterEach(() => world.remove());

  /** apps/web/a.yaml and apps/web/b.yaml, fetched into the mirror. */
  async function fetchedGoodCommit(): Promise<string> {
    const good = await repo.commit({ 'apps/web/a.yaml': configMap('a'), 'apps/web/b.yaml': configMap('b') });
    expect(await cache.fetchBranch(source(), repo.branch)).toBe(good);
    return good;
  }

  /** A commit on top of `parent` whose apps/ holds two web/ folders; returns it and apps/. */
  async function commitTwoWebFolders(parent: string): Promise<{ sha: string; apps: string }> {
    const apps = await twoFoldersOfOneName(repo.bareDir, 'web', configMap('a'), configMap('b'));
    expect(await bare(['ls-tree', '--name-only', apps])).toBe('web\nweb');
    const root = await writeTree(repo.bareDir, [{ mode: '040000', sha: apps, name: 'apps' }]);
    return { sha: await commitTree(repo, root, [parent]), apps };
  }

  it('refuses a tree holding one name twice, for good, naming the problem, and leaves the mirror as it was', async () => {
    const good = await fetchedGoodCommit();
    const packsBefore = await packFiles();
    const { sha: bad, apps } = await commitTwoWebFolders(good);

    const error = await cache.fetchBranch(source(), repo.branch).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(MalformedObjectsError);
    expect(error).toMatchObject({ code: 'git_failed', permanent: true });
    expect(errorMessage(error)).toBe(
      refusal(
        `fetch ${repo.branch} from ${repo.url}`,
        `duplicateEntries: contains duplicate file entries, in object ${apps}`,
      ),
    );
    // No ref moved, nothing of the push kept, no partial pack left behind.
    expect(await inMirror(['rev-parse', `refs/heads/${repo.branch}`])).toBe(good);
    expect(await mirrorHolds(bad)).toBe(false);
    expect(await mirrorHolds(apps)).toBe(false);
    expect(await packFiles()).toEqual(packsBefore);

    // A commit on top of it brings it again: refused the same way.
    const onTop = await commitTree(repo, await bare(['rev-parse', `${good}^{tree}`]), [bad]);
    await expect(cache.fetchBranch(source(), repo.branch)).rejects.toThrow(
      `duplicateEntries: contains duplicate file entries, in object ${apps}`,
    );
    expect(await mirrorHolds(onTop)).toBe(false);

    // The branch rewritten without it: fetched and checked out as ever.
    await repo.forcePush(good);
    const fixed = await repo.commit({ 'apps/web/c.yaml': configMap('c') });
    expect(await cache.fetchBranch(source(), repo.branch)).toBe(fixed);
    const tree = await cache.checkout(source(), fixed, 'apps/web');
    try {
      expect(await writtenPaths(tree.dir)).toEqual(['apps/web/a.yaml', 'apps/web/b.yaml', 'apps/web/c.yaml']);
    } finally {
      await tree.remove();
    }
  });

  it('refuses an unsorted tree, whose later entries path lookups never find', async () => {
    const good = await fetchedGoodCommit();
    const apps = await writeTreeLiterally(repo.bareDir, [
      { mode: '040000', sha: await folderOf(repo.bareDir, 'a.yaml', configMap('a')), name: 'web' },
      { mode: '040000', sha: await folderOf(repo.bareDir, 'b.yaml', configMap('b')), name: 'api' },
    ]);
    await expect(bare(['rev-parse', '--verify', `${apps}:api`])).rejects.toThrow();
    const root = await writeTree(repo.bareDir, [{ mode: '040000', sha: apps, name: 'apps' }]);
    await commitTree(repo, root, [good]);

    const error = await cache.fetchBranch(source(), repo.branch).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(MalformedObjectsError);
    expect(error).toMatchObject({ permanent: true });
    expect(errorMessage(error)).toBe(
      refusal(
        `fetch ${repo.branch} from ${repo.url}`,
        `treeNotSorted: not properly sorted, in object ${apps}`,
      ),
    );
    expect(await inMirror(['rev-parse', `refs/heads/${repo.branch}`])).toBe(good);
  });

  it('lets through the problems an operator names (PUSHGATE_GIT_FSCK_IGNORE), and only those', async () => {
    const good = await fetchedGoodCommit();
    const { sha } = await commitTwoWebFolders(good);
    const other = new MirrorCache({
      dir: path.join(cacheDir, 'other'),
      ...gitFetchLimitsFromEnv({ [FSCK_IGNORE_VARIABLE]: 'hasDot' }),
    });
    await expect(other.fetchBranch(source(), repo.branch)).rejects.toBeInstanceOf(MalformedObjectsError);
    const env = { [FSCK_IGNORE_VARIABLE]: 'hasDot, duplicateEntries' };
    const lenient = new MirrorCache({ dir: cacheDir, ...gitFetchLimitsFromEnv(env) });

    expect(await lenient.fetchBranch(source(), repo.branch)).toBe(sha);
    // Another operator's mirror, without the variable, refuses the same commit.
    const strict = new MirrorCache({ dir: path.join(cacheDir, 'strict') });
    await expect(strict.fetchBranch(source(), repo.branch)).rejects.toBeInstanceOf(MalformedObjectsError);
  });

  it('refuses a malformed commit fetched by sha off the branch, rather than calling it missing', async () => {
    const good = await fetchedGoodCommit();
    const { sha: bad, apps } = await commitTwoWebFolders(good);
    await bare(['update-ref', 'refs/heads/side', bad]);
    await repo.forcePush(good);
    await bare(['config', 'uploadpack.allowAnySHA1InWant', 'true']);

    const error = await cache.fetchCommit(source(), repo.branch, bad).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(MalformedObjectsError);
    expect(errorMessage(error)).toBe(
      refusal(
        `fetch ${bad} from ${repo.url}`,
        `duplicateEntries: contains duplicate file entries, in object ${apps}`,
      ),
    );
  });

  it('names what git reported with the token and URL credentials removed', async () => {
    const token = 'tok-secret-1234';
    const withToken = new MirrorCache({ dir: cacheDir, token });
    const good = await repo.commit({ 'apps/web/a.yaml': configMap('a') });
    await withToken.fetchBranch(source(), repo.branch);
    // git quotes a refused .gitmodules URL: here one that carries the token.
    const gitmodules = await writeBlob(
      repo.bareDir,
      `[submodule "x"]\n\tpath = x\n\turl = -https://x-access-token:${token}@example.com/x.git\n`,
    );
    const root = await writeTree(repo.bareDir, [
      { mode: '100644', sha: gitmodules, name: '.gitmodules' },
      { mode: '040000', sha: await bare(['rev-parse', `${good}:apps`]), name: 'apps' },
    ]);
    await commitTree(repo, root, [good]);

    const error = await withToken.fetchBranch(source(), repo.branch).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(MalformedObjectsError);
    expect(errorMessage(error)).toBe(
      refusal(
        `fetch ${repo.branch} from ${repo.url}`,
        `gitmodulesUrl: disallowed submodule url: -https://example.com/x.git, in object ${gitmodules}`,
      ),
    );
    expect(errorMessage(error)).not.toContain(token);
  });

  /** The branch, at `sha`, fetches into the cache, and a checkout of apps/web holds its two files. */
  async function expectFetchedAndCheckedOut(sha: string): Promise<void> {
    expect(await cache.fetchBranch(source(), repo.branch)).toBe(sha);
    const tree = await cache.checkout(source(), sha, 'apps/web');
    try {
      expect(await writtenPaths(tree.dir)).toEqual(['apps/web/a.yaml', 'apps/web/b.yaml']);
    } finally {
      await tree.remove();
    }
  }

  it('fetches and checks out a commit whose author and committer lines old tools wrote badly', async () => {
    const good = await fetchedGoodCommit();
    const text = [
      `tree ${await bare(['rev-parse', `${good}^{tree}`])}`,
      `parent ${good}`,
      'author Old Importer <old@example.com> 1700000000 +05', // badTimezone
      'author Second Author <second@example.com> 1700000000 +0000', // multipleAuthors
      'committer <committer@example.com> 1700000000 +0000', // missingNameBeforeEmail
      '',
      'imported',
      '',
    ].join('\n');
    const old = await writeCommitLiterally(repo.bareDir, text);
    await bare(['update-ref', `refs/heads/${repo.branch}`, old]);
    // Malformed in git's eyes: a fetch checking everything refuses it.
    const strict = path.join(cacheDir, 'strict.git');
    await git(cacheDir, ['init', '--bare', '--quiet', strict]);
    await expect(
      git(cacheDir, ['--git-dir', strict, '-c', 'fetch.fsckObjects=true', 'fetch', repo.url, repo.branch]),
    ).rejects.toThrow('badTimezone');

    await expectFetchedAndCheckedOut(old);
  });

  it('fetches and checks out a tree whose folder modes old git versions wrote with a leading zero', async () => {
    const good = await fetchedGoodCommit();
    const apps = await bare(['rev-parse', `${good}:apps`]);
    const padded = await writeTreeLiterally(repo.bareDir, [{ mode: '040000', sha: apps, name: 'apps' }], {
      zeroPaddedModes: true,
    });
    const old = await commitTree(repo, padded, [good]);

    await expectFetchedAndCheckedOut(old);
  });

  it('names only message ids git knows (it skips an unknown one with a warning)', async () => {
    await repo.commit({ 'apps/web/a.yaml': configMap('a') });
    const gitDir = path.join(cacheDir, 'ids.git');
    await git(cacheDir, ['init', '--bare', '--quiet', gitDir]);

    const { stderr } = await runGit(
      ['--git-dir', gitDir, ...FSCK_FETCH_CONFIG, 'fetch', '--quiet', repo.url, repo.branch],
      { timeoutMs: 30_000, what: 'fetch' },
    );

    expect(stderr).toBe('');
  });
});

describe('deploy worker and a malformed commit (real Redis, git over file://, kube-apiserver)', () => {
  let redis: TestRedis;

  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis.stop();
  });

  it('fails the job at once (one attempt) naming the problem, and applies and prunes nothing', async () => {
    const repo = await createEnvRepo({ branch: 'env/test' });
    const namespace = await createTestNamespace('malformed');
    const harness = await createWorkerHarness({
      redisUrl: redis.url,
      environments: [{ name: 'web', repo, env: { namespace: namespace.name } }],
    });
    const core = kubeConfigFromTest().makeApiClient(CoreV1Api);
    /** The value of ConfigMaps a and b in the cluster, or null for one that is not there. */
    const live = async (): Promise<Record<string, string | null>> =>
      Object.fromEntries(
        await Promise.all(
          ['a', 'b'].map(async (name) => {
            const found = await core
              .readNamespacedConfigMap({ name, namespace: namespace.name })
              .catch(() => null);
            return [name, found?.data?.value ?? null] as const;
          }),
        ),
      );
    try {
      const good = await repo.commit({
        'manifests/a.yaml': configMap('a'),
        'manifests/b.yaml': configMap('b'),
      });
      await harness.startWorker();
      expect(await harness.waitForJob(await harness.webhook('web', good))).toMatchObject({
        state: 'succeeded',
      });
      expect(await live()).toEqual({ a: 'v1', b: 'v1' });
      // The environment's path twice: a changed a.yaml in the first, b.yaml in the second.
      const root = await twoFoldersOfOneName(repo.bareDir, 'manifests', configMap('a', 'v2'), configMap('b'));
      const bad = await commitTree(repo, root, [good]);

      const record = await harness.waitForJob(await harness.webhook('web', bad));

      expect(record).toMatchObject({ state: 'failed', attempts: 1 });
      expect(record.error).toContain(
        'the repository holds malformed objects ' +
          `(duplicateEntries: contains duplicate file entries, in object ${root}): refusing them`,
      );
      expect(await live()).toEqual({ a: 'v1', b: 'v1' });
    } finally {
      await harness.close();
      await namespace.cleanup();
      await repo.remove();
    }
  });
});
