import path from 'node:path';
import { streamGit } from './run-git.js';
import { MAX_CHECKOUT_PATH_BYTES, measureTree, type TreeSize } from './tree-budget.js';

/** Symlinks followed for one checkout at most: past them, the whole commit is checked out. */
export const MAX_SCOPE_SYMLINKS = 1_000;
/** Paths a checkout is made of at most (each is one git command): past them, the whole commit. */
export const MAX_SCOPE_ROOTS = 32;
/** Listings for one checkout at most: symlinks that reach symlinks elsewhere take one more each. */
export const MAX_SCOPE_ROUNDS = 10;
/** Folders looked at for symlinks above paths not in the commit: past them, the whole commit. */
const MAX_SCOPE_FOLDERS_CHECKED = 512;
/**
 * Their listing at most: git lists the contents of a folder it goes down into (tens of bytes
 * an entry), so a folder of a hundred thousand is the whole commit, which the budget measures.
 */
const MAX_FOLDER_LISTING_BYTES = 8 * 1024 * 1024;

const SYMLINK_MODE = '120000';
const UTF8 = new TextDecoder('utf-8', { fatal: true });
/** The most git's answer about one symlink or path takes: a header and a path. */
const ANSWER_BYTES = 2 * MAX_CHECKOUT_PATH_BYTES + 128;

/** One path of the commit a scoped checkout holds, with all that lies under it. */
export interface ScopeRoot {
  /** Repository-relative, never empty. */
  path: string;
  mode: string;
  /** blob (a file or a symlink), tree or commit (a submodule). */
  type: string;
  object: string;
}

/** What a checkout holds: the whole commit, or these paths (none under another). */
export type CheckoutScope = { whole: true } | { whole: false; roots: ScopeRoot[] };

export interface ScopeContext {
  gitDir: string;
  sha: string;
  timeoutMs: number;
  /** The name of the folder the checkout is written to: `<dir>/../<name>` is the top again. */
  folderName: string;
}

/** Where a symlink leads: a path of the repository, nowhere in it, or somewhere lexical resolution cannot tell. */
export type SymlinkTarget =
  { kind: 'inside'; path: string } | { kind: 'outside' } | { kind: 'unknown'; reason: string };

const OUTSIDE: SymlinkTarget = { kind: 'outside' };

/**
 * The paths a checkout for an environment whose manifests are under `manifestPath` must hold,
 * measured against `budget` (refused past it, for good, as measureTree refuses): that path,
 * and what the symlinks under it reach elsewhere in the repository, theirs in turn, so that
 * loadManifests reads what it would read in a checkout of the whole commit. No path, `.` or
 * a path lexical resolution cannot follow (a symlink through another symlink) is the whole
 * commit. Anyone who can push chooses the symlinks: each bound passed falls back to the whole
 * commit, which the budget bounds as before.
 */
export async function measureCheckout(
  context: ScopeContext,
  manifestPath: string | undefined,
  budget: TreeSize,
): Promise<CheckoutScope> {
  const top = manifestPath === undefined ? '' : repositoryPath(manifestPath);
  if (top === '' || top === undefined) return measureWhole(context, budget);
  const whole = (reason: string) => measureWhole(context, budget, `for path "${manifestPath}", as ${reason}`);
  const where = ` under "${manifestPath}" and what its symlinks reach`;
  const targets = new Map<string, Buffer>();
  // Paths a symlink (or the environment) names: each must be in the checkout if it is in the commit.
  const wanted = new Set([top]);
  let roots = [top];
  for (let round = 1; round <= MAX_SCOPE_ROUNDS; round++) {
    const listing = await listScope(context, roots, wanted, budget, where);
    if (listing.symlinks === undefined) return whole(`it holds more than ${MAX_SCOPE_SYMLINKS} symlinks`);
    await readSymlinkTargets(context, listing.symlinks, targets);
    const reached = new Set<string>();
    for (const symlink of listing.symlinks) {
      const target = resolveSymlink(symlink.path, targets.get(symlink.object), context.folderName);
      if (target.kind === 'unknown') return whole(target.reason);
      if (target.kind === 'outside' || wanted.has(target.path)) continue;
      if (target.path === '') return whole('a symlink under it leads to the top of the repository');
      reached.add(target.path);
    }
    if (reached.size === 0) {
      // What is not in the commit as named might be through a symlink (`base/x`, `base` one).
      const missing = [...wanted].filter((wantedPath) => !listing.found.has(wantedPath));
      if (await anyUnderSymlink(context, missing))
        return whole('it or a symlink under it names a path through another symlink');
      return { whole: false, roots: roots.flatMap((root) => listing.found.get(root) ?? []) };
    }
    for (const reachedPath of reached) wanted.add(reachedPath);
    roots = outermost([...roots, ...reached]);
    if (roots.length > MAX_SCOPE_ROOTS)
      return whole(`its symlinks reach more than ${MAX_SCOPE_ROOTS - 1} paths outside it`);
  }
  return whole(`its symlinks lead to symlinks elsewhere more than ${MAX_SCOPE_ROUNDS - 1} times`);
}

/**
 * Where a symlink at `symlinkPath` (as git lists it: real folders) leads, resolved by its
 * text alone. That is what the kernel does unless a name it passes through is itself a
 * symlink: a target that goes into a folder and back out (`x/../y`) is left unknown; one
 * through a symlink (`base/x`, `base` one) is found by the caller, as a path not in the commit.
 * Above the top is the checkout's own folder (`../<folderName>` is the top again), then
 * folders no commit chooses.
 */
export function resolveSymlink(
  symlinkPath: Buffer,
  target: Buffer | undefined,
  folderName: string,
): SymlinkTarget {
  // Empty, or too long to be written as a symlink: it leads nowhere, in either checkout.
  if (target === undefined || target.length === 0) return OUTSIDE;
  const [symlinkText, targetText] = [utf8(symlinkPath), utf8(target)];
  if (symlinkText === undefined || targetText === undefined || targetText.includes('\0'))
    return { kind: 'unknown', reason: 'a symlink under it has a name or target that is not UTF-8 text' };
  if (targetText.startsWith('/')) return OUTSIDE;
  const folders = symlinkText.split('/').slice(0, -1);
  let levelsAbove = 0;
  let namesTaken = 0;
  for (const part of targetText.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (namesTaken > 0)
        return { kind: 'unknown', reason: 'a symlink under it goes into a folder and back out (x/../y)' };
      if (folders.length > 0) folders.pop();
      else levelsAbove++;
    } else if (levelsAbove === 0) {
      folders.push(part);
      namesTaken++;
    } else if (levelsAbove === 1 && part === folderName) {
      levelsAbove = 0;
    } else {
      return OUTSIDE;
    }
  }
  return levelsAbove === 0 ? { kind: 'inside', path: folders.join('/') } : OUTSIDE;
}

/**
 * `manifestPath` as git names it (`./apps//web/` is `apps/web`), `''` for the top, undefined
 * when it is not inside the repository (the configuration refuses those).
 */
export function repositoryPath(manifestPath: string): string | undefined {
  if (manifestPath.includes('\0')) return undefined;
  const normalized = path.posix.normalize(manifestPath).replace(/\/+$/, '');
  if (normalized === '.' || normalized === '') return '';
  if (path.posix.isAbsolute(normalized) || normalized === '..' || normalized.startsWith('../'))
    return undefined;
  return normalized;
}

/** `paths` without those under (or equal to) another. */
export function outermost(paths: readonly string[]): string[] {
  const sorted = [...new Set(paths)].sort();
  return sorted.filter((candidate) => !sorted.some((other) => candidate.startsWith(`${other}/`)));
}

interface ListedSymlink {
  path: Buffer;
  type: string;
  object: string;
  size: number;
}

interface ScopeListing {
  /** The wanted paths that are entries of the commit, as named. */
  found: Map<string, ScopeRoot>;
  /** undefined once over MAX_SCOPE_SYMLINKS (the listing stopped there). */
  symlinks: ListedSymlink[] | undefined;
}

/** Measures `roots` (refusing them over the budget) and finds their symlinks and the wanted paths. */
async function listScope(
  context: ScopeContext,
  roots: readonly string[],
  wanted: ReadonlySet<string>,
  budget: TreeSize,
  where: string,
): Promise<ScopeListing> {
  // By their bytes: a name that is not UTF-8 must not match a wanted path holding U+FFFD.
  const wantedByBytes = new Map([...wanted].map((wantedPath) => [bytesKey(wantedPath), wantedPath]));
  const listing: ScopeListing = { found: new Map(), symlinks: [] };
  await measureTree(context.gitDir, context.sha, budget, context.timeoutMs, {
    paths: roots,
    where,
    advice: "an environment's path should hold its manifests only",
    onEntry: (entry) => {
      const wantedPath = wantedByBytes.get(entry.path.toString('latin1'));
      if (wantedPath !== undefined)
        listing.found.set(wantedPath, {
          path: wantedPath,
          mode: entry.mode,
          type: entry.type,
          object: entry.object,
        });
      if (entry.mode !== SYMLINK_MODE) return 'more';
      if (listing.symlinks?.length === MAX_SCOPE_SYMLINKS) {
        listing.symlinks = undefined;
        return 'enough';
      }
      listing.symlinks?.push({
        path: entry.path,
        type: entry.type,
        object: entry.object,
        size: entry.size ?? 0,
      });
      return 'more';
    },
  });
  return listing;
}

/**
 * Adds the targets of `symlinks` not read yet to `targets` (by blob), in one `cat-file`.
 * One longer than a path may be is left out: no checkout writes it.
 */
async function readSymlinkTargets(
  context: ScopeContext,
  symlinks: readonly ListedSymlink[],
  targets: Map<string, Buffer>,
): Promise<void> {
  const unread = new Set(
    symlinks
      .filter((symlink) => symlink.type === 'blob' && symlink.size <= MAX_CHECKOUT_PATH_BYTES)
      .map((symlink) => symlink.object)
      .filter((object) => !targets.has(object)),
  );
  if (unread.size === 0) return;
  const input = [...unread].map((object) => `${object}\n`).join('');
  const output = await gitOutput(context, ['cat-file', '--batch'], input, unread.size * ANSWER_BYTES);
  // "<object> blob <size>\n<content>\n" each, in the order asked.
  let at = 0;
  while (output && at < output.length) {
    const newline = output.indexOf(0x0a, at);
    if (newline === -1) break;
    const [object = '', type, size] = output.toString('latin1', at, newline).split(' ');
    at = newline + 1;
    // "<object> missing" has no content; any other answer's is skipped whatever its type, so
    // a symlink entry naming a tree cannot have its listing read as further answers.
    if (size === undefined) continue;
    const end = at + Number(size);
    if (type === 'blob') targets.set(object, output.subarray(at, end));
    at = end + 1;
  }
}

/**
 * Whether any of `paths` (none an entry of the commit as named) may lie through one of the
 * commit's symlinks: one of the folders above it is a symlink in the commit. A checkout of
 * the whole commit then resolves it the kernel's way (or reports it as leaving), where a
 * scoped one lacks the symlink. Decided by the commit's own entries, in one listing of every
 * such folder: git's own symlink following differs from the kernel's (`./x` targets, a
 * submodule reached through a symlink), and asked one path at a time it reads the top tree
 * again for each, however large. Else the path is missing, or under a file or a submodule:
 * broken in both checkouts. Past the bounds it may lie through one: the whole commit then.
 */
async function anyUnderSymlink(context: ScopeContext, paths: readonly string[]): Promise<boolean> {
  if (paths.length === 0) return false;
  if (paths.length > MAX_SCOPE_ROOTS) return true;
  const folders = new Set<string>();
  for (const missingPath of paths) {
    const names = missingPath.split('/');
    for (let depth = 1; depth < names.length; depth++) folders.add(names.slice(0, depth).join('/'));
  }
  if (folders.size === 0) return false;
  if (folders.size > MAX_SCOPE_FOLDERS_CHECKED) return true;
  const args = [
    '--literal-pathspecs',
    'ls-tree',
    '-z',
    '--full-tree',
    '--end-of-options',
    context.sha,
    '--',
    ...folders,
  ];
  const output = await gitOutput(context, args, undefined, MAX_FOLDER_LISTING_BYTES);
  if (output === undefined) return true;
  // "<mode> <type> <object>\t<path>\0": each folder that is an entry, and (git matches a
  // folder's contents too, once it goes down into it for a longer one) more, left aside.
  const folderKeys = new Set([...folders].map(bytesKey));
  return output
    .toString('latin1')
    .split('\0')
    .some((entry) => {
      const tab = entry.indexOf('\t');
      return entry.startsWith(`${SYMLINK_MODE} `) && folderKeys.has(entry.slice(tab + 1));
    });
}

/** What git prints for `input`, or undefined past `maxBytes` (git is stopped there). */
async function gitOutput(
  context: ScopeContext,
  args: readonly string[],
  input: string | undefined,
  maxBytes: number,
): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  const { stopped } = await streamGit(
    ['--git-dir', context.gitDir, ...args],
    {
      timeoutMs: context.timeoutMs,
      what: `${args.find((arg) => !arg.startsWith('-'))} ${context.sha}`,
      input,
    },
    (chunk) => {
      bytes += chunk.length;
      chunks.push(chunk);
      return bytes > maxBytes ? 'enough' : 'more';
    },
  );
  return stopped ? undefined : Buffer.concat(chunks);
}

async function measureWhole(context: ScopeContext, budget: TreeSize, why?: string): Promise<CheckoutScope> {
  await measureTree(context.gitDir, context.sha, budget, context.timeoutMs, {
    ...(why
      ? { advice: `an environment repository should hold manifests only; the whole commit counts ${why}` }
      : {}),
  });
  return { whole: true };
}

function utf8(bytes: Buffer): string | undefined {
  try {
    return UTF8.decode(bytes);
  } catch {
    return undefined;
  }
}

function bytesKey(text: string): string {
  return Buffer.from(text, 'utf8').toString('latin1');
}
