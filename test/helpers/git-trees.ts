import { execFile } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import type { EnvRepo } from './env-repo.js';
import { git } from './git.js';

const execFileAsync = promisify(execFile);

/** git with `input` on its stdin (mktree and hash-object --stdin read it). */
async function gitWithInput(gitDir: string, args: string[], input: string | Buffer): Promise<string> {
  const running = execFileAsync('git', ['--git-dir', gitDir, ...args], {
    env: { ...process.env, GIT_CONFIG_GLOBAL: '/dev/null', GIT_CONFIG_NOSYSTEM: '1' },
  });
  running.child.stdin?.end(input);
  return (await running).stdout.trim();
}

/** One entry of a tree written with writeTree: a file, a symlink, a folder or a submodule. */
export interface TreeEntry {
  mode: '100644' | '120000' | '040000' | '160000';
  sha: string;
  name: string;
}

const TYPES = { '100644': 'blob', '120000': 'blob', '040000': 'tree', '160000': 'commit' } as const;

export function writeBlob(gitDir: string, content: string): Promise<string> {
  return gitWithInput(gitDir, ['hash-object', '-w', '--stdin'], content);
}

export function writeTree(gitDir: string, entries: TreeEntry[]): Promise<string> {
  const lines = entries.map((entry) => `${entry.mode} ${TYPES[entry.mode]} ${entry.sha}\t${entry.name}`);
  return gitWithInput(gitDir, ['mktree'], lines.map((line) => `${line}\n`).join(''));
}

/**
 * A tree of `entries` as they are given, unsorted or twice of a name, through
 * `hash-object --literally`: a tree mktree would sort, and git fsck refuses.
 */
export function writeTreeLiterally(
  gitDir: string,
  entries: TreeEntry[],
  options: { zeroPaddedModes?: boolean } = {},
): Promise<string> {
  const body = entries.flatMap((entry) => [
    // As git writes a folder's mode: 40000, no leading zero (that is a problem of its own).
    Buffer.from(`${options.zeroPaddedModes ? entry.mode : entry.mode.replace(/^0/, '')} ${entry.name}\0`),
    Buffer.from(entry.sha, 'hex'),
  ]);
  return gitWithInput(
    gitDir,
    ['hash-object', '-t', 'tree', '--literally', '-w', '--stdin'],
    Buffer.concat(body),
  );
}

/** A commit of exactly `text` (headers, a blank line, the message), however malformed. */
export function writeCommitLiterally(gitDir: string, text: string): Promise<string> {
  return gitWithInput(gitDir, ['hash-object', '-t', 'commit', '--literally', '-w', '--stdin'], text);
}

/** Commits `tree` (on top of `parents`) straight into the bare repository as the head of `branch`. */
export async function commitTree(repo: EnvRepo, tree: string, parents: string[] = []): Promise<string> {
  const sha = await git(repo.bareDir, [
    '--git-dir',
    repo.bareDir,
    'commit-tree',
    tree,
    ...parents.flatMap((parent) => ['-p', parent]),
    '-m',
    'tree',
  ]);
  await git(repo.bareDir, ['--git-dir', repo.bareDir, 'update-ref', `refs/heads/${repo.branch}`, sha]);
  return sha;
}

const tenOf = (mode: TreeEntry['mode'], sha: string, prefix: string): TreeEntry[] =>
  Array.from({ length: 10 }, (_, i) => ({ mode, sha, name: `${prefix}${i}` }));

/**
 * A "git bomb" folder: ten copies of one manifest, and at each of `levels` levels above them
 * ten copies of the level below. A few kilobytes of objects; 10^(levels + 1) files once
 * checked out. Returns the folder's tree.
 */
export async function writeGitBomb(gitDir: string, levels: number): Promise<string> {
  const blob = await writeBlob(gitDir, 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\n');
  let tree = await writeTree(gitDir, tenOf('100644', blob, 'f'));
  for (let level = 0; level < levels; level++) {
    tree = await writeTree(gitDir, tenOf('040000', tree, 'd'));
  }
  return tree;
}

/** A commit whose manifests/ folder is a git bomb (writeGitBomb). */
export async function commitGitBomb(repo: EnvRepo, levels: number): Promise<string> {
  const bomb = await writeGitBomb(repo.bareDir, levels);
  return commitTree(repo, await writeTree(repo.bareDir, [{ mode: '040000', sha: bomb, name: 'manifests' }]));
}

/** The files and symlinks under `dir`, by path relative to it, sorted: what a checkout wrote. */
export async function writtenPaths(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => !entry.isDirectory())
    .map((entry) => path.relative(dir, path.join(entry.parentPath, entry.name)))
    .sort();
}
