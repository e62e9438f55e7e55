import { mkdir, readFile, symlink } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MirrorCache, type Worktree } from '../../src/git/mirror-cache.js';
import { errorMessage } from '../../src/lib/errors.js';
import { loadManifests } from '../../src/manifests/load.js';
import type { EnvRepo } from '../helpers/env-repo.js';
import { git } from '../helpers/git.js';
import { writtenPaths } from '../helpers/git-trees.js';
import { createMirrorWorld, type MirrorWorld } from '../helpers/mirror-world.js';

const configMap = (name: string) => `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ${name}}\n`;

/** A folder of other teams' files no environment below reads. */
const UNRELATED = {
  'unrelated/x.yaml': configMap('x'),
  'unrelated/deep/y.yaml': configMap('y'),
};

/** What loadManifests makes of `manifestPath` in a checkout: its objects' names, or its error. */
async function loaded(tree: Worktree, manifestPath: string): Promise<string[] | string> {
  return loadManifests(tree.dir, manifestPath).then(
    (manifests) => manifests.map((manifest) => manifest.object.metadata.name),
    (error: unknown) => errorMessage(error),
  );
}

describe('git mirror cache: a checkout of the environment path and what its symlinks reach (real git)', () => {
  let repo: EnvRepo;
  let cacheDir: string;
  let cache: MirrorCache;
  const source = () => ({ url: repo.url, provider: 'github' as const });

  let world: MirrorWorld;
  beforeEach(async () => {
    ({ repo, cacheDir, cache } = world = await createMirrorWorld());
  });
  afterEach(() => world.remove());

  /** Commits `files` and `symlinks` (path → target) and fetches the commit into the mirror. */
  async function commit(
    files: Record<string, string | null>,
    symlinks: Record<string, string> = {},
  ): Promise<string> {
    for (const [link, target] of Object.entries(symlinks)) {
      await mkdir(path.dirname(path.join(repo.workDir, link)), { recursive: true });
      await symlink(target, path.join(repo.workDir, link));
    }
    const sha = await repo.commit(files);
    await cache.fetchBranch(source(), repo.branch);
    return sha;
  }

  /** Checks `manifestPath` of `sha` out, and hands the tree to `use` before removing it. */
  async function withCheckout<T>(
    sha: string,
    manifestPath: string | undefined,
    use: (tree: Worktree) => Promise<T>,
  ) {
    const tree = await cache.checkout(source(), sha, manifestPath);
    try {
      return await use(tree);
    } finally {
      await tree.remove();
    }
  }

  /**
   * How a checkout of `manifestPath` fares with one entry less than the whole commit holds:
   * undefined when it is made (of less than the whole commit), else the refusal, naming why
   * the whole commit was counted.
   */
  async function refusalShortOfWhole(sha: string, manifestPath: string): Promise<string | undefined> {
    const listed = await git(repo.bareDir, ['--git-dir', repo.bareDir, 'ls-tree', '-r', '-t', sha]);
    const short = new MirrorCache({
      dir: cacheDir,
      checkoutBudget: { entries: listed.split('\n').length - 1 },
    });
    return short.checkout(source(), sha, manifestPath).then(
      (tree) => tree.remove().then(() => undefined),
      (error: unknown) => errorMessage(error),
    );
  }

  it('writes what symlinks under the path reach elsewhere, a folder and a file, and loads through them', async () => {
    const sha = await commit(
      {
        ...UNRELATED,
        'apps/web/a.yaml': configMap('a'),
        'base/b.yaml': configMap('b'),
        'base/nested/c.yaml': configMap('c'),
        'files/d.yaml': configMap('d'),
        'files/other.yaml': configMap('other'),
      },
      { 'apps/web/base': '../../base', 'apps/web/d.yaml': '../../files/d.yaml' },
    );

    await withCheckout(sha, 'apps/web', async (tree) => {
      expect(await writtenPaths(tree.dir)).toEqual([
        'apps/web/a.yaml',
        'apps/web/base',
        'apps/web/d.yaml',
        'base/b.yaml',
        'base/nested/c.yaml',
        'files/d.yaml',
      ]);
      expect(await loaded(tree, 'apps/web')).toEqual(['a', 'b', 'c', 'd']);
    });
  });

  it('follows chains: a symlink in a folder reached through one, a symlink reached through one', async () => {
    const sha = await commit(
      {
        ...UNRELATED,
        'apps/web/a.yaml': configMap('a'),
        'base/b.yaml': configMap('b'),
        'more/m.yaml': configMap('m'),
        'files/e.yaml': configMap('e'),
      },
      {
        'apps/web/shared': '../../base',
        'base/more': '../more',
        'apps/web/e.yaml': '../../links/e.yaml',
        'links/e.yaml': '../files/e.yaml',
      },
    );

    await withCheckout(sha, 'apps/web', async (tree) => {
      expect(await writtenPaths(tree.dir)).toEqual([
        'apps/web/a.yaml',
        'apps/web/e.yaml',
        'apps/web/shared',
        'base/b.yaml',
        'base/more',
        'files/e.yaml',
        'links/e.yaml',
        'more/m.yaml',
      ]);
      expect(await loaded(tree, 'apps/web')).toEqual(['a', 'e', 'b', 'm']);
    });
  });

  it('checks out the whole commit where a target goes through another symlink, and loads as from it', async () => {
    const sha = await commit(
      {
        ...UNRELATED,
        'apps/web/a.yaml': configMap('a'),
        'real/r.yaml': configMap('r'),
        'base/b.yaml': configMap('b'),
      },
      {
        alias: 'real',
        // alias/r.yaml is no path of the commit: only following alias finds it.
        'apps/web/r.yaml': '../../alias/r.yaml',
      },
    );
    const intoAndOut = await commit({ 'apps/web/r.yaml': null }, { 'apps/web/back': '../../real/../base' });

    for (const [commitSha, expected, why] of [
      [sha, ['a', 'r'], 'it or a symlink under it names a path through another symlink'],
      [intoAndOut, ['a', 'b'], 'a symlink under it goes into a folder and back out (x/../y)'],
    ] as const) {
      await withCheckout(commitSha, 'apps/web', async (tree) => {
        expect(await writtenPaths(tree.dir)).toContain('unrelated/deep/y.yaml');
        expect(await loaded(tree, 'apps/web')).toEqual(expected);
      });
      expect(await refusalShortOfWhole(commitSha, 'apps/web')).toContain(
        '(an environment repository should hold manifests only; ' +
          `the whole commit counts for path "apps/web", as ${why})`,
      );
    }
  });

  it('follows a path that is a symlink, and checks out the whole commit for one through a symlink', async () => {
    const sha = await commit(
      { ...UNRELATED, 'apps/web/a.yaml': configMap('a') },
      { current: 'apps/web', team: 'apps' },
    );

    await withCheckout(sha, 'current', async (tree) => {
      expect(await writtenPaths(tree.dir)).toEqual(['apps/web/a.yaml', 'current']);
      expect(await loaded(tree, 'current')).toEqual(['a']);
    });
    await withCheckout(sha, 'team/web', async (tree) => {
      expect(await writtenPaths(tree.dir)).toContain('unrelated/x.yaml');
      expect(await loaded(tree, 'team/web')).toEqual(['a']);
    });
    expect(await refusalShortOfWhole(sha, 'current')).toBeUndefined();
    expect(await refusalShortOfWhole(sha, 'team/web')).toContain(
      'the whole commit counts for path "team/web", as it or a symlink under it names a path through another symlink',
    );
  });

  it('loads through symlinks that name their folder as ./x or x/., which git itself cannot follow', async () => {
    const sha = await commit(
      { ...UNRELATED, 'apps/web/a.yaml': configMap('a'), 'common/c.yaml': configMap('c') },
      // What `ln -s ./common shared` writes.
      {
        shared: './common',
        dotted: 'common/.',
        team: './apps',
        'apps/web/c.yaml': '../../shared/c.yaml',
        'apps/api/c.yaml': '../../dotted/c.yaml',
      },
    );

    for (const [manifestPath, expected] of [
      ['apps/web', ['a', 'c']],
      ['apps/api', ['c']],
      ['team/web', ['a', 'c']],
    ] as const) {
      await withCheckout(sha, manifestPath, async (tree) => {
        expect(await loaded(tree, manifestPath)).toEqual(expected);
      });
    }
  });

  it('checks out the whole commit, rather than look up each one, past 32 symlinks to paths the commit lacks', async () => {
    const dangling = Object.fromEntries(
      Array.from({ length: 33 }, (_, n) => [`apps/web/l${n}.yaml`, `nothing/n${n}.yaml`]),
    );
    const sha = await commit({ ...UNRELATED, 'apps/web/a.yaml': configMap('a') }, dangling);

    await withCheckout(sha, 'apps/web', async (tree) => {
      expect(await loaded(tree, 'apps/web')).toMatch(/broken symlink/);
    });
    expect(await refusalShortOfWhole(sha, 'apps/web')).toContain(
      'the whole commit counts for path "apps/web", as it or a symlink under it names a path through another symlink',
    );
    // 32 of them are looked up, in one listing: scoped.
    const fewer = await commit({ 'apps/web/l32.yaml': null });
    expect(await refusalShortOfWhole(fewer, 'apps/web')).toBeUndefined();
  });

  /**
   * Each case: the symlink `cases/<name>/link.yaml` beside `cases/<name>/a.yaml`, and what
   * loading `cases/<name>` gives, from a checkout of that path as from one of the whole commit.
   */
  const symlinkCases: { name: string; target: string; expected: string[] | RegExp; whole?: true }[] = [
    { name: 'out of the repository', target: '../../../..', expected: /symlink leaves the repository/ },
    { name: 'to an absolute path', target: '/etc/passwd', expected: /symlink leaves the repository/ },
    { name: 'to nothing', target: '../../nothing.yaml', expected: /broken symlink/ },
    { name: 'through a file', target: '../../base/b.yaml/c.yaml', expected: /broken symlink/ },
    { name: 'to itself', target: 'link.yaml', expected: /broken symlink/ },
    // Under a symlink: the whole commit, whatever that symlink leads to.
    {
      name: 'through a dangling symlink',
      target: '../../dangling/b.yaml',
      expected: /broken symlink/,
      whole: true,
    },
    // Above the top is the checkout's own folder, whose tree is the top again.
    { name: 'out and back in', target: '../../../tree/base/b.yaml', expected: ['a', 'b'] },
    {
      name: 'through a symlink out',
      target: '../../etc/passwd',
      expected: /symlink leaves the repository/,
      whole: true,
    },
  ];

  it.each(symlinkCases)(
    'loads a path with a symlink $name as from the whole commit',
    async ({ name, target, expected, whole }) => {
      const folder = `cases/${name.replaceAll(' ', '-')}`;
      const sha = await commit(
        { ...UNRELATED, [`${folder}/a.yaml`]: configMap('a'), 'base/b.yaml': configMap('b') },
        { [`${folder}/link.yaml`]: target, dangling: 'nowhere', etc: '/etc' },
      );
      const fromWhole = await withCheckout(sha, undefined, (tree) => loaded(tree, folder));

      await withCheckout(sha, folder, async (tree) => {
        expect((await writtenPaths(tree.dir)).includes('unrelated/x.yaml')).toBe(whole ?? false);
        const fromPath = await loaded(tree, folder);
        expect(fromPath).toEqual(fromWhole);
        if (Array.isArray(expected)) expect(fromPath).toEqual(expected);
        else expect(fromPath).toMatch(new RegExp(`^${folder}/link\\.yaml: ${expected.source}`));
      });
      const refusal = await refusalShortOfWhole(sha, folder);
      if (whole) expect(refusal).toContain(`the whole commit counts for path "${folder}", as `);
      else expect(refusal).toBeUndefined();
    },
  );

  it.each([
    ['does not exist', 'nothing', /manifest path "nothing" does not exist in the repository/],
    [
      'is a symlink out of the repository',
      'out',
      /manifest path "out" is a symlink that leaves the repository/,
    ],
    ['is a broken symlink', 'gone', /manifest path "gone" is a broken symlink/],
  ])('reports a path that %s as from the whole commit', async (_, manifestPath, expected) => {
    const sha = await commit(
      { ...UNRELATED, 'apps/web/a.yaml': configMap('a') },
      { out: '/etc', gone: 'nothing' },
    );
    const fromWhole = await withCheckout(sha, undefined, (tree) => loaded(tree, manifestPath));

    await withCheckout(sha, manifestPath, async (tree) => {
      expect(await writtenPaths(tree.dir)).not.toContain('unrelated/x.yaml');
      expect(await loaded(tree, manifestPath)).toEqual(fromWhole);
      expect(fromWhole).toMatch(expected);
    });
  });

  it('takes the path literally: a name with * or [ ] is that folder alone', async () => {
    const sha = await commit({
      'apps/w*/a.yaml': configMap('a'),
      'apps/web/b.yaml': configMap('b'),
      'apps/[ab]/c.yaml': configMap('c'),
      'apps/a/d.yaml': configMap('d'),
    });

    await withCheckout(sha, 'apps/w*', async (tree) => {
      expect(await writtenPaths(tree.dir)).toEqual(['apps/w*/a.yaml']);
    });
    await withCheckout(sha, './apps/[ab]/', async (tree) => {
      expect(await writtenPaths(tree.dir)).toEqual(['apps/[ab]/c.yaml']);
    });
  });

  it('writes the committed bytes, whatever .gitattributes under the path asks', async () => {
    const sha = await commit({
      ...UNRELATED,
      'apps/web/.gitattributes': '* ident\ncrlf.txt text eol=crlf\n',
      'apps/web/id.txt': '$Id$\n',
      'apps/web/crlf.txt': 'a\nb\n',
    });

    await withCheckout(sha, 'apps/web', async (tree) => {
      expect(await writtenPaths(tree.dir)).toEqual([
        'apps/web/.gitattributes',
        'apps/web/crlf.txt',
        'apps/web/id.txt',
      ]);
      expect(await readFile(path.join(tree.dir, 'apps/web/id.txt'), 'utf8')).toBe('$Id$\n');
      expect(await readFile(path.join(tree.dir, 'apps/web/crlf.txt'), 'utf8')).toBe('a\nb\n');
    });
  });
});
