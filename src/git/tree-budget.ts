import { PushgateError } from '../lib/errors.js';
import { streamGit } from './run-git.js';

/**
 * Files, folders, symlinks and submodules of one commit, all paths together. An environment
 * repository holds manifests; this leaves room for many environments in one repository, while
 * the worker's `/tmp` (a 1 GiB emptyDir in deploy/kubernetes) takes four concurrent checkouts
 * at the limit, each entry costing a 4 KiB block or page however small it is.
 */
export const MAX_CHECKOUT_ENTRIES = 20_000;
/**
 * The sizes of all files of one commit together: four times what one environment's manifests
 * may add up to (MAX_MANIFEST_TOTAL_BYTES), for the other environments and the docs beside them.
 */
export const MAX_CHECKOUT_BYTES = 128 * 1024 * 1024;
/** Linux's PATH_MAX: read-tree could not write a longer path anyway. */
export const MAX_CHECKOUT_PATH_BYTES = 4096;
/** NAME_MAX of Linux file systems: read-tree fails on a longer file or folder name, every time. */
export const MAX_CHECKOUT_NAME_BYTES = 255;

export interface TreeSize {
  /** Files, folders, symlinks and submodules. */
  entries: number;
  /** The sizes of the files (and symlink targets) together. */
  bytes: number;
}

const TAB = 0x09;
const NUL = 0x00;
const SLASH = 0x2f;

/**
 * Counts the entries of a commit's tree and adds up its blob sizes from the object database,
 * without writing anything, and refuses it (permanently: the commit will not shrink) once
 * either passes the budget. git is killed at that moment, so a "git bomb" (a small pack of
 * trees that repeat one subtree at every level, 10^n files) costs what the budget allows to
 * read, never what the tree would expand to. Paths are skipped, not kept, and one longer than
 * any file system takes (long names, nested or repeated) is refused too, which bounds what is
 * read per entry.
 */
export async function measureTree(
  gitDir: string,
  sha: string,
  budget: TreeSize,
  timeoutMs: number,
): Promise<TreeSize> {
  const size: TreeSize = { entries: 0, bytes: 0 };
  let refusal: string | undefined;
  // One record per entry, trees included (-t): "<mode> <type> <object> <size>\t<path>\0",
  // the size "-" for a tree or a submodule. -l and -z rather than --format, which needs git 2.36.
  let header = '';
  let inPath = false;
  let pathBytes = 0;
  let nameBytes = 0;
  const args = ['--git-dir', gitDir, 'ls-tree', '-r', '-t', '-l', '-z', '--end-of-options', sha];
  await streamGit(args, { timeoutMs, what: `measure ${sha}` }, (chunk) => {
    let at = 0;
    while (at < chunk.length) {
      if (!inPath) {
        const tab = chunk.indexOf(TAB, at);
        header += chunk.toString('latin1', at, tab === -1 ? chunk.length : tab);
        if (tab === -1) return 'more';
        const bytes = Number(header.trim().split(/ +/)[3]);
        size.entries++;
        if (Number.isFinite(bytes)) size.bytes += bytes;
        header = '';
        inPath = true;
        pathBytes = 0;
        nameBytes = 0;
        at = tab + 1;
        if (size.entries > budget.entries)
          refusal = `more than ${budget.entries} files and folders, the limit`;
        else if (size.bytes > budget.bytes)
          refusal = `more than ${budget.bytes} bytes of files (${size.bytes} counted before stopping), over the ${budget.bytes}-byte limit`;
        if (refusal) return 'enough';
      }
      const nul = chunk.indexOf(NUL, at);
      const end = nul === -1 ? chunk.length : nul;
      pathBytes += end - at;
      if (pathBytes > MAX_CHECKOUT_PATH_BYTES) {
        refusal = `a path longer than ${MAX_CHECKOUT_PATH_BYTES} bytes, the limit`;
        return 'enough';
      }
      for (let byte = at; byte < end; byte++) {
        nameBytes = chunk[byte] === SLASH ? 0 : nameBytes + 1;
        if (nameBytes > MAX_CHECKOUT_NAME_BYTES) {
          refusal = `a file or folder name longer than ${MAX_CHECKOUT_NAME_BYTES} bytes, more than a file system takes`;
          return 'enough';
        }
      }
      if (nul === -1) return 'more';
      inPath = false;
      at = nul + 1;
    }
    return 'more';
  });
  if (refusal === undefined) return size;
  throw new PushgateError(
    'manifest_invalid',
    `commit ${sha} holds ${refusal} for one checkout: refusing to check it out (an environment repository should hold manifests only)`,
    { permanent: true },
  );
}
