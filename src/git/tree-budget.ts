import { PushgateError } from '../lib/errors.js';
import { streamGit, type StreamVerdict } from './run-git.js';

/**
 * Files, folders, symlinks and submodules of one checkout: the environment's path and what its
 * symlinks reach (checkout-scope.ts), or the whole commit for path `.`. The rest of a monorepo
 * is neither counted nor written. An environment's path holds manifests; this leaves room for
 * the docs and files beside them, while the worker's `/tmp` (a 1 GiB emptyDir in
 * deploy/kubernetes) takes four concurrent checkouts at the limit, each entry costing a 4 KiB
 * block or page however small it is.
 */
export const MAX_CHECKOUT_ENTRIES = 20_000;
/**
 * The sizes of all files of one checkout together: four times what one environment's manifests
 * may add up to (MAX_MANIFEST_TOTAL_BYTES), for what else its path (or a whole repository
 * checked out for `.`) holds beside them.
 */
export const MAX_CHECKOUT_BYTES = 128 * 1024 * 1024;
/** Linux's PATH_MAX: git could not write a longer path anyway. */
export const MAX_CHECKOUT_PATH_BYTES = 4096;
/** NAME_MAX of Linux file systems: git fails to write a longer file or folder name, every time. */
export const MAX_CHECKOUT_NAME_BYTES = 255;

export interface TreeSize {
  /** Files, folders, symlinks and submodules. */
  entries: number;
  /** The sizes of the files (and symlink targets) together. */
  bytes: number;
}

/** One record of the listing, as measureTree read it. */
export interface ListedEntry {
  mode: string;
  type: string;
  object: string;
  /** The blob's size; undefined for a tree or a submodule. */
  size: number | undefined;
  /** Repository-relative, as git stores it (not necessarily UTF-8). */
  path: Buffer;
}

export interface MeasureOptions {
  /** Repository-relative paths to count (and what lies under them); the whole tree without. */
  paths?: readonly string[];
  /** What the paths are, for a refusal: ` under "apps/web" and what its symlinks reach`. */
  where?: string;
  /** What to do instead, for a refusal; by default that a repository should hold manifests only. */
  advice?: string;
  /** Sees each entry counted, path and all; 'enough' stops the listing there, as no refusal. */
  onEntry?: (entry: ListedEntry) => StreamVerdict;
}

interface Refusal {
  /** What the commit holds: "more than 20000 files and folders". */
  what: string;
  /** What it is over: ", the limit". */
  limit: string;
}

const TAB = 0x09;
const NUL = 0x00;
const SLASH = 0x2f;

/**
 * Counts the entries of a commit's tree (or of some paths of it) and adds up their blob sizes
 * from the object database, without writing anything, and refuses it (permanently: the commit
 * will not shrink) once either passes the budget. git is killed at that moment, so a "git
 * bomb" (a small pack of trees that repeat one subtree at every level, 10^n files) costs what
 * the budget allows to read, never what the tree would expand to. A path longer than any file
 * system takes (long names, nested or repeated) is refused too, which bounds what is read, and
 * kept for onEntry, per entry. Returns what was counted (up to where onEntry stopped it).
 */
export async function measureTree(
  gitDir: string,
  sha: string,
  budget: TreeSize,
  timeoutMs: number,
  options: MeasureOptions = {},
): Promise<TreeSize> {
  const size: TreeSize = { entries: 0, bytes: 0 };
  // No paths is nothing to count: no pathspec at all would be the whole tree.
  if (options.paths?.length === 0) return size;
  const { onEntry } = options;
  let refusal: Refusal | undefined;
  // One record per entry, trees included (-t): "<mode> <type> <object> <size>\t<path>\0",
  // the size "-" for a tree or a submodule. -l and -z rather than --format, which needs git 2.36.
  let header = '';
  let listed: Omit<ListedEntry, 'path'> | undefined;
  let pathParts: Buffer[] = [];
  let pathBytes = 0;
  let nameBytes = 0;
  // Literal pathspecs: a `*` or `:(glob)` in a path names that path alone.
  const args = ['--git-dir', gitDir, '--literal-pathspecs', 'ls-tree', '-r', '-t', '-l', '-z', '--full-tree'];
  args.push('--end-of-options', sha, ...(options.paths ? ['--', ...options.paths] : []));
  await streamGit(args, { timeoutMs, what: `measure ${sha}` }, (chunk) => {
    let at = 0;
    while (at < chunk.length) {
      if (listed === undefined) {
        const tab = chunk.indexOf(TAB, at);
        header += chunk.toString('latin1', at, tab === -1 ? chunk.length : tab);
        if (tab === -1) return 'more';
        listed = parseHeader(header);
        size.entries++;
        size.bytes += listed.size ?? 0;
        header = '';
        pathParts = [];
        pathBytes = 0;
        nameBytes = 0;
        at = tab + 1;
        if (size.entries > budget.entries)
          refusal = { what: `more than ${budget.entries} files and folders`, limit: ', the limit' };
        else if (size.bytes > budget.bytes)
          refusal = {
            what: `more than ${budget.bytes} bytes of files (${size.bytes} counted before stopping)`,
            limit: `, over the ${budget.bytes}-byte limit`,
          };
        if (refusal) return 'enough';
      }
      const nul = chunk.indexOf(NUL, at);
      const end = nul === -1 ? chunk.length : nul;
      pathBytes += end - at;
      if (pathBytes > MAX_CHECKOUT_PATH_BYTES) {
        refusal = { what: `a path longer than ${MAX_CHECKOUT_PATH_BYTES} bytes`, limit: ', the limit' };
        return 'enough';
      }
      for (let byte = at; byte < end; byte++) {
        nameBytes = chunk[byte] === SLASH ? 0 : nameBytes + 1;
        if (nameBytes > MAX_CHECKOUT_NAME_BYTES) {
          refusal = {
            what: `a file or folder name longer than ${MAX_CHECKOUT_NAME_BYTES} bytes`,
            limit: ', more than a file system takes',
          };
          return 'enough';
        }
      }
      if (onEntry) pathParts.push(chunk.subarray(at, end));
      if (nul === -1) return 'more';
      const entry = listed;
      listed = undefined;
      at = nul + 1;
      if (onEntry?.({ ...entry, path: Buffer.concat(pathParts) }) === 'enough') return 'enough';
    }
    return 'more';
  });
  if (refusal === undefined) return size;
  const advice = options.advice ?? 'an environment repository should hold manifests only';
  throw new PushgateError(
    'manifest_invalid',
    `commit ${sha} holds ${refusal.what}${options.where ?? ''}${refusal.limit} for one checkout: refusing to check it out (${advice})`,
    { permanent: true },
  );
}

function parseHeader(header: string): Omit<ListedEntry, 'path'> {
  const [mode = '', type = '', object = '', bytes] = header.trim().split(/ +/);
  const size = Number(bytes);
  return { mode, type, object, size: Number.isFinite(size) ? size : undefined };
}
