import { createHash, randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import path from 'node:path';
import type { Provider } from '../config/schema.js';
import { PushgateError } from '../lib/errors.js';
import { gitAuthEnv } from './auth.js';
import { makeCheckoutFolder, STALE_TREE_MS } from './checkout-folders.js';
import { urlWithoutCredentials } from './redact.js';
import {
  DEFAULT_FETCH_MAX_BYTES,
  FetchTooLargeError,
  MEASURABLE_FETCH_CONFIG,
  watchFetch,
} from './fetch-budget.js';
import { fsckFetchConfig, MalformedObjectsError, malformedObjectsRefusal } from './fetch-fsck.js';
import { runGit } from './run-git.js';
import { MAX_CHECKOUT_BYTES, MAX_CHECKOUT_ENTRIES, type TreeSize } from './tree-budget.js';
import { measureCheckout, type ScopeRoot } from './checkout-scope.js';

export const DEFAULT_FETCH_TIMEOUT_MS = 60_000;
const LOCAL_TIMEOUT_MS = 120_000;
const SHA = /^[0-9a-f]{40}([0-9a-f]{24})?$/;
/** What git itself accepts as an abbreviation: at least 4 digits; 7 is what it prints. */
const ABBREVIATED_SHA = /^[0-9a-f]{7,39}$/;
/**
 * git's answers when another git of this mirror got to a ref first: its lock file is still
 * there, or it moved the ref between this fetch's read and its write.
 */
const LOCKED = /\.lock': File exists|cannot lock ref '[^']+': is at [0-9a-f]+ but expected/;
/**
 * A ref of a branch the server has since deleted stands where a new branch's ref must go
 * (`staging` once, `staging/eu` now, or the other way round): `--prune` drops only refs of
 * the branch fetched, and git cannot hold a ref and a folder of refs of one name.
 */
const REF_IN_THE_WAY =
  /(?:^|; )error: cannot lock ref '(refs\/heads\/[^']+)': '(refs\/heads\/[^']+)' exists; cannot create/;
/** Stale refs removed for one fetch at most (`staging/eu`, `staging/us`... in the way of `staging`). */
const REFS_REMOVED_AT_MOST = 20;
const FETCH_ATTEMPTS_WHEN_LOCKED = 3;
const LOCKED_RETRY_DELAY_MS = 500;
/**
 * Highest-precedence attributes of every mirror: a checkout holds the committed bytes, never
 * converted (`ident` alone turns each 4-byte "$Id$" into 46 bytes, UTF-32 quadruples a file),
 * so what measureTree counted is what is written.
 */
const CHECKOUT_ATTRIBUTES = '* -text -eol -ident -filter -working-tree-encoding\n';
/**
 * No gc from a fetch: it would make the deploy that fetched wait for it (in the foreground,
 * see run-git). collectGarbage runs it once the deploy is over.
 */
const NO_AUTO_GC_CONFIG = ['-c', 'gc.auto=0', '-c', 'maintenance.auto=false'];
/**
 * What git holds in memory as a fetch takes in large files (see `git-fetch` in BENCHMARKS.md).
 * Blobs over 16 MiB are streamed rather than held whole, by index-pack as a fetch receives
 * them and by gc, which also stops looking for deltas between them: a push of two 200 MB
 * files took index-pack to 4 MiB, 204 MiB with git's 512 MiB default. One thread resolves
 * deltas: a large blob sent as a delta is built whole, base and result, and a thread per core
 * builds several at once (a new mirror of those files changed once: 404 MiB, 533 MiB with git's
 * defaults). That one git cannot bound short of refusing the repository.
 */
const BOUNDED_MEMORY_CONFIG = ['-c', 'core.bigFileThreshold=16m', '-c', 'pack.threads=1'];
/**
 * `gc --auto` of a mirror: git's own thresholds (6,700 loose objects, 50 packs). A cruft pack
 * keeps the objects of rewritten history, until pruned, in one file rather than loosened one
 * file each. The deadline is far above what an environment repository's repack takes.
 */
const GC_ARGS = [...BOUNDED_MEMORY_CONFIG, '-c', 'gc.cruftPacks=true', 'gc', '--auto', '--quiet'];
const GC_TIMEOUT_MS = 10 * 60_000;
/** The folder of a checkout's files, beside its index file. */
const TREE_FOLDER = 'tree';
/** What `git init --bare` makes that every git command needs. */
const MIRROR_PARTS = ['HEAD', 'config', 'objects', 'refs'];

/** The repository as the configuration names it: the URL is never taken from a payload. */
export interface RepoSource {
  url: string;
  provider: Provider;
}

export interface MirrorCacheOptions {
  /** Where the bare mirrors live, one per repository URL. */
  dir: string;
  /** GIT_TOKEN, for HTTPS repositories. */
  token?: string;
  fetchTimeoutMs?: number;
  /** The most one fetch may write into a mirror; default DEFAULT_FETCH_MAX_BYTES. */
  fetchMaxBytes?: number;
  /** What fetches take PATH, HOME and the network settings (proxy, CA, SSH agent) from; default process.env. */
  env?: Record<string, string | undefined>;
  /** The largest commit checkout() writes; default MAX_CHECKOUT_ENTRIES and MAX_CHECKOUT_BYTES. */
  checkoutBudget?: Partial<TreeSize>;
  /** fsck message ids a fetch lets through besides IGNORED_FSCK_MESSAGES. */
  fsckIgnore?: readonly string[];
}

/** A checked-out tree of one commit; remove() deletes it. */
export interface Worktree {
  dir: string;
  sha: string;
  remove(): Promise<void>;
}

/** `$PUSHGATE_CACHE_DIR`, else `.pushgate/cache/git` under the working directory. */
export function defaultGitCacheDir(env: Record<string, string | undefined> = process.env): string {
  // Empty is unset, as for every variable (not the working directory itself).
  return path.resolve(env.PUSHGATE_CACHE_DIR || path.join('.pushgate', 'cache', 'git'));
}

/**
 * One bare repository per URL, fetched incrementally: only the environment branch's refspec,
 * so a repository with many branches costs what that branch costs. Fetches of one
 * repository are serialised inside the process (git's ref locks would make concurrent
 * fetches fail); different repositories fetch in parallel.
 */
export class MirrorCache {
  private readonly chains = new Map<string, Promise<unknown>>();
  /** Mirrors fetched into since their last gc. */
  private readonly fetchedSinceGc = new Set<string>();
  private readonly fetchTimeoutMs: number;
  private readonly fetchMaxBytes: number;
  private readonly checkoutBudget: TreeSize;

  constructor(private readonly options: MirrorCacheOptions) {
    this.fetchTimeoutMs = options.fetchTimeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS;
    this.fetchMaxBytes = options.fetchMaxBytes ?? DEFAULT_FETCH_MAX_BYTES;
    this.checkoutBudget = {
      entries: options.checkoutBudget?.entries ?? MAX_CHECKOUT_ENTRIES,
      bytes: options.checkoutBudget?.bytes ?? MAX_CHECKOUT_BYTES,
    };
  }

  mirrorDir(url: string): string {
    const hash = createHash('sha256').update(url).digest('hex').slice(0, 24);
    return path.join(this.options.dir, hash);
  }

  /**
   * Fetches the branch and returns its head commit. Failures name the branch and the
   * repository (without credentials): a worker serves many of both.
   */
  fetchBranch(repo: RepoSource, branch: string, abort?: AbortSignal): Promise<string> {
    const fetched = this.serialised(this.mirrorDir(repo.url), async () => {
      abort?.throwIfAborted();
      const gitDir = await this.ensureMirror(repo.url);
      const ref = `refs/heads/${branch}`;
      const from = `from ${urlWithoutCredentials(repo.url)}`;
      await this.fetch(repo, gitDir, [`+${ref}:${ref}`], `fetch ${branch} ${from}`, abort);
      const { stdout } = await runGit(['--git-dir', gitDir, 'rev-parse', '--verify', `${ref}^{commit}`], {
        timeoutMs: LOCAL_TIMEOUT_MS,
        what: `rev-parse ${branch} fetched ${from}`,
      });
      return stdout.trim();
    });
    // Aborted while waiting its turn behind another fetch of the mirror: given up at once.
    return abort ? untilAborted(fetched, abort) : fetched;
  }

  /**
   * Makes sure a given commit is in the mirror: fetches the branch, and when the commit is
   * not on it (any more), asks the server for the commit itself.
   */
  fetchCommit(repo: RepoSource, branch: string, sha: string): Promise<string> {
    const wanted = sha.toLowerCase();
    if (!SHA.test(wanted) && !ABBREVIATED_SHA.test(wanted)) {
      return Promise.reject(
        new PushgateError('usage', `"${sha}" is not a commit sha (7 to 40 hex digits)`, { permanent: true }),
      );
    }
    return this.fetchBranch(repo, branch).then(() =>
      this.serialised(this.mirrorDir(repo.url), async () => {
        const gitDir = this.mirrorDir(repo.url);
        if (!SHA.test(wanted)) return this.resolveAbbreviated(gitDir, wanted, repo, branch);
        if (await this.hasCommit(gitDir, wanted)) return wanted;
        const shown = urlWithoutCredentials(repo.url);
        await this.fetch(repo, gitDir, [wanted], `fetch ${wanted} from ${shown}`).catch((error: unknown) => {
          // Any other failure is told apart below: the commit is there or it is not.
          if (error instanceof FetchTooLargeError || error instanceof MalformedObjectsError) throw error;
        });
        if (await this.hasCommit(gitDir, wanted)) return wanted;
        throw new PushgateError('git_failed', `commit ${wanted} is not in the repository ${shown}`, {
          permanent: true,
        });
      }),
    );
  }

  /**
   * Writes the tree of a commit into a fresh temporary folder, through a private index file
   * so concurrent checkouts from one mirror never share state: all of it, or, given the
   * environment's `manifestPath`, that path and what its symlinks reach (measureCheckout),
   * each where it is in the commit. read-tree rather than `checkout -- .`, whose pathspec
   * fails on a commit that removed every file. What is checked out is refused over the
   * checkout budget before the folder is made: anyone who can push to the branch chooses it.
   */
  async checkout(repo: RepoSource, sha: string, manifestPath?: string): Promise<Worktree> {
    const gitDir = this.mirrorDir(repo.url);
    const scope = await measureCheckout(
      { gitDir, sha, timeoutMs: LOCAL_TIMEOUT_MS, folderName: TREE_FOLDER },
      manifestPath,
      this.checkoutBudget,
    );
    await writeCheckoutAttributes(gitDir);
    const base = await makeCheckoutFolder();
    const dir = path.join(base, TREE_FOLDER);
    await mkdir(dir);
    const remove = () => rm(base, { recursive: true, force: true });
    const git = (args: string[]) =>
      runGit(['--git-dir', gitDir, '--work-tree', dir, ...args], {
        env: { GIT_INDEX_FILE: path.join(base, 'index') },
        timeoutMs: LOCAL_TIMEOUT_MS,
        what: `checkout ${sha}`,
      });
    try {
      if (scope.whole) await git(['read-tree', '--reset', '-u', sha]);
      else await checkOutRoots(git, scope.roots);
    } catch (error) {
      await remove();
      throw error;
    }
    return { dir, sha, remove };
  }

  private async ensureMirror(url: string): Promise<string> {
    const gitDir = this.mirrorDir(url);
    // Only a part that is not there makes a folder no mirror: another error (EMFILE, EACCES)
    // says nothing of it, and fails the fetch rather than the mirror being thrown away.
    const present = (file: string) =>
      stat(file).then(Boolean, (error: unknown) => {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
        throw error;
      });
    const isMirror = async (dir: string) =>
      (await Promise.all(MIRROR_PARTS.map((part) => present(path.join(dir, part))))).every(Boolean);
    if (await isMirror(gitDir)) return gitDir;
    // The mirror holds every file of a private repository: readable by this user only, as
    // the temporary checkouts are (mkdtemp). The cache folder, created here too, likewise.
    await mkdir(this.options.dir, { recursive: true, mode: 0o700 });
    await removeStaleInits(gitDir, Date.now() - STALE_TREE_MS);
    // Made aside and renamed into place whole: git init writes HEAD first, and a process
    // killed before the rest would leave a folder every later fetch fails on.
    const fresh = await mkdtemp(`${gitDir}.init-`);
    try {
      await runGit(['init', '--bare', '--quiet', fresh], {
        timeoutMs: LOCAL_TIMEOUT_MS,
        what: 'init mirror',
      });
      // Left half made by a process killed mid-init before mirrors were made aside.
      if (!(await isMirror(gitDir))) await rm(gitDir, { recursive: true, force: true });
      await rename(fresh, gitDir).catch((error: unknown) => {
        // Another process made it meanwhile (render beside a worker): theirs is as good.
        const code = (error as NodeJS.ErrnoException).code;
        if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw error;
      });
    } finally {
      await rm(fresh, { recursive: true, force: true });
    }
    return gitDir;
  }

  /**
   * A fetch that meets a lock file is tried again: a lock older than any git command of this
   * cache may run was left by a git that was killed (an OOM-killed worker keeps its emptyDir),
   * and is removed; a younger one belongs to a git still running (`pushgate render` beside a
   * worker, say), which is waited for.
   */
  private async fetch(
    repo: RepoSource,
    gitDir: string,
    refspecs: string[],
    what: string,
    abort?: AbortSignal,
  ): Promise<void> {
    let removedRefs = 0;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.fetchOnce(repo, gitDir, refspecs, what, abort);
        return;
      } catch (error) {
        // Its message quotes what the push holds (a .gitmodules URL, say): matched against nothing.
        if (!(error instanceof Error) || error instanceof MalformedObjectsError) throw error;
        // git names one ref in the way per fetch: not counted as an attempt. (Never what the
        // server prints, `remote: …` or `fatal: remote error: …`: it chooses none of the mirror's refs.)
        // Matched in git's own lines (what follows `git <what>: `), each starting a line.
        const prefix = `git ${what}: `;
        const lines = error.message.startsWith(prefix) ? error.message.slice(prefix.length) : '';
        const inTheWay = REF_IN_THE_WAY.exec(lines);
        if (inTheWay && removedRefs < REFS_REMOVED_AT_MOST) {
          removedRefs++;
          attempt--;
          // The server holds the branch asked for, so it no longer holds the one in the way.
          await runGit(['--git-dir', gitDir, 'update-ref', '-d', inTheWay[2]!], {
            timeoutMs: LOCAL_TIMEOUT_MS,
            what: `remove ${inTheWay[2]!}, in the way of ${inTheWay[1]!}`,
          });
          continue;
        }
        if (attempt === FETCH_ATTEMPTS_WHEN_LOCKED || !LOCKED.test(error.message)) throw error;
        const removed = await removeStaleLocks(gitDir, Date.now() - this.longestGitCommandMs());
        if (removed === 0) await delay(LOCKED_RETRY_DELAY_MS * attempt);
      }
    }
  }

  private async fetchOnce(
    repo: RepoSource,
    gitDir: string,
    refspecs: string[],
    what: string,
    abort?: AbortSignal,
  ): Promise<void> {
    // The URL comes from the configuration only; --end-of-options keeps even a URL starting
    // with "-" from being read as a flag. --prune drops refs the server no longer has.
    const args = [
      '--git-dir',
      gitDir,
      ...MEASURABLE_FETCH_CONFIG,
      ...fsckFetchConfig(this.options.fsckIgnore),
      ...NO_AUTO_GC_CONFIG,
      ...BOUNDED_MEMORY_CONFIG,
      'fetch',
      '--quiet',
      '--no-tags',
      '--prune',
      '--no-write-fetch-head',
    ];
    const watch = await watchFetch(gitDir, this.fetchMaxBytes, what, Date.now() - this.longestGitCommandMs());
    let completed = false;
    try {
      await runGit([...args, '--end-of-options', repo.url, ...refspecs], {
        env: gitAuthEnv(repo.url, repo.provider, this.options.token),
        processEnv: this.options.env,
        timeoutMs: this.fetchTimeoutMs,
        secret: this.options.token,
        what,
        abort: abort ? AbortSignal.any([watch.signal, abort]) : watch.signal,
      }).catch((error: unknown) => {
        throw malformedObjectsRefusal(error, what);
      });
      completed = true;
    } finally {
      await watch.stop(completed);
      this.fetchedSinceGc.add(gitDir);
    }
  }

  /**
   * `git gc --auto` on each mirror fetched into since its last one, in this process and under
   * its deadline. Call it between deploys: in the queue of the mirror's fetches (no fetch of
   * this process runs beside it), so a fetch that comes meanwhile waits for it. Resolves with
   * the failures, which leave the mirror as it was and are tried again after its next fetch.
   */
  async collectGarbage(abort?: AbortSignal): Promise<Error[]> {
    const gitDirs = [...this.fetchedSinceGc];
    this.fetchedSinceGc.clear();
    const failures = await Promise.all(
      gitDirs.map((gitDir) =>
        this.serialised(gitDir, () =>
          runGit(['--git-dir', gitDir, ...GC_ARGS], { timeoutMs: GC_TIMEOUT_MS, what: 'gc', abort }),
        ).then(
          () => undefined,
          (error: unknown) => (error instanceof Error ? error : new Error(String(error))),
        ),
      ),
    );
    return failures.filter((failure) => failure !== undefined);
  }

  /** runGit kills every git of this cache by then, so no live one holds a lock that long. */
  private longestGitCommandMs(): number {
    return Math.max(this.fetchTimeoutMs, LOCAL_TIMEOUT_MS) + 10_000;
  }

  /**
   * An abbreviated sha, as `git log --oneline` shows it, among the commits the mirror holds
   * (the branch's history): a server does not resolve abbreviations, so one outside the
   * branch needs its full sha.
   */
  private async resolveAbbreviated(
    gitDir: string,
    abbreviated: string,
    repo: RepoSource,
    branch: string,
  ): Promise<string> {
    const found = await runGit(['--git-dir', gitDir, 'rev-parse', '--disambiguate=' + abbreviated], {
      timeoutMs: LOCAL_TIMEOUT_MS,
      what: 'rev-parse',
    });
    const commits: string[] = [];
    // --disambiguate lists every object with the prefix: blobs, trees and tags too.
    for (const candidate of found.stdout.split('\n').filter((line) => SHA.test(line))) {
      const type = await runGit(['--git-dir', gitDir, 'cat-file', '-t', candidate], {
        timeoutMs: LOCAL_TIMEOUT_MS,
        what: 'cat-file',
      });
      if (type.stdout.trim() !== 'commit') continue;
      // Other environments' branches share the mirror: an abbreviation names this branch's history only.
      const onBranch = await runGit(
        ['--git-dir', gitDir, 'merge-base', '--is-ancestor', candidate, `refs/heads/${branch}`],
        { timeoutMs: LOCAL_TIMEOUT_MS, what: 'merge-base' },
      ).then(
        () => true,
        () => false,
      );
      if (onBranch) commits.push(candidate);
    }
    if (commits.length === 1) return commits[0]!;
    const shown = urlWithoutCredentials(repo.url);
    if (commits.length === 0)
      throw new PushgateError(
        'git_failed',
        `no commit ${abbreviated} in the history of ${branch} fetched from ${shown} (give all 40 digits for another commit)`,
        { permanent: true },
      );
    throw new PushgateError(
      'usage',
      `${abbreviated} is ambiguous in ${shown} (${commits.length} commits start with it): give more digits`,
      { permanent: true },
    );
  }

  /**
   * The type (`tree`, `blob`, …) of each repository-relative path in commit `sha` of the
   * mirror; undefined where there is none, or the mirror lacks the commit. Symlinks inside the
   * tree are not followed.
   */
  async typesAt(repo: RepoSource, sha: string, paths: readonly string[]): Promise<(string | undefined)[]> {
    // cat-file reads one name a line: a path holding a line break cannot be asked for.
    const asked = paths.filter((entry) => !/[\r\n]/.test(entry));
    if (asked.length === 0) return paths.map(() => undefined);
    const { stdout } = await runGit(['--git-dir', this.mirrorDir(repo.url), 'cat-file', '--batch-check'], {
      input: asked.map((entry) => `${sha}:${entry}\n`).join(''),
      timeoutMs: LOCAL_TIMEOUT_MS,
      what: `read the tree of ${sha.slice(0, 12)}`,
    });
    const lines = stdout.split('\n');
    const types = new Map(
      asked.map((entry, index) => [entry, /^[0-9a-f]+ (\w+) \d+$/.exec(lines[index] ?? '')?.[1]]),
    );
    return paths.map((entry) => types.get(entry));
  }

  private async hasCommit(gitDir: string, sha: string): Promise<boolean> {
    return runGit(['--git-dir', gitDir, 'cat-file', '-e', `${sha}^{commit}`], {
      timeoutMs: LOCAL_TIMEOUT_MS,
      what: 'cat-file',
    }).then(
      () => true,
      () => false,
    );
  }

  private serialised<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.chains.get(key) ?? Promise.resolve();
    const next = previous.then(task, task);
    const settled = next.catch(() => undefined);
    this.chains.set(key, settled);
    void settled.then(() => {
      if (this.chains.get(key) === settled) this.chains.delete(key);
    });
    return next;
  }
}

/**
 * Writes `roots` (none under another) into the checkout: trees read into the index under
 * their own path, files, symlinks and submodules added as they are; then the index is
 * written out, as read-tree -u would.
 */
async function checkOutRoots(
  git: (args: string[]) => Promise<unknown>,
  roots: readonly ScopeRoot[],
): Promise<void> {
  if (roots.length === 0) return;
  const only = roots.length === 1 ? roots[0]! : undefined;
  // The usual scope, one folder: read and written out by one git, not two (a git costs 2–19 ms
  // by machine, measured). The index is new and the folder empty, so -u has nothing to refuse.
  if (only?.type === 'tree') {
    await git(['read-tree', '-u', `--prefix=${only.path}/`, only.object]);
    return;
  }
  for (const root of roots) {
    if (root.type === 'tree') await git(['read-tree', `--prefix=${root.path}/`, root.object]);
  }
  const entries = roots.filter((root) => root.type !== 'tree');
  if (entries.length > 0)
    await git([
      'update-index',
      '--add',
      ...entries.flatMap((entry) => ['--cacheinfo', `${entry.mode},${entry.object},${entry.path}`]),
    ]);
  await git(['checkout-index', '--all', '--force']);
}

/** `work`, or the abort's reason once `signal` aborts first. */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    work.catch(() => undefined);
    return Promise.reject(signal.reason as Error);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/**
 * Writes CHECKOUT_ATTRIBUTES as the mirror's info/attributes unless it holds them already:
 * mirrors made before it existed get it too. Renamed into place, so a concurrent checkout
 * reads either the old file or the whole new one.
 */
async function writeCheckoutAttributes(gitDir: string): Promise<void> {
  const file = path.join(gitDir, 'info', 'attributes');
  const current = await readFile(file, 'utf8').catch(() => undefined);
  if (current === CHECKOUT_ATTRIBUTES) return;
  await mkdir(path.dirname(file), { recursive: true });
  const temporary = `${file}.${randomUUID()}`;
  await writeFile(temporary, CHECKOUT_ATTRIBUTES);
  await rename(temporary, file);
}

/** What processes killed mid-init left beside `gitDir` (`<gitDir>.init-*`), last changed before `before`. */
async function removeStaleInits(gitDir: string, before: number): Promise<void> {
  const prefix = `${path.basename(gitDir)}.init-`;
  for (const name of await readdir(path.dirname(gitDir)).catch(() => [] as string[])) {
    if (!name.startsWith(prefix)) continue;
    const folder = path.join(path.dirname(gitDir), name);
    const changed = await stat(folder).then(
      (info) => info.mtimeMs,
      () => Infinity,
    );
    if (changed < before) await rm(folder, { recursive: true, force: true });
  }
}

/**
 * Deletes the lock files of a mirror's refs (and its top-level files: packed-refs, HEAD,
 * config, shallow) last changed before `before`. Object files are never locked this way.
 */
async function removeStaleLocks(gitDir: string, before: number): Promise<number> {
  const [top, refs] = await Promise.all([
    readdir(gitDir, { withFileTypes: true }).catch(() => []),
    readdir(path.join(gitDir, 'refs'), { recursive: true, withFileTypes: true }).catch(() => []),
  ]);
  let removed = 0;
  for (const entry of [...top, ...refs]) {
    if (!entry.isFile() || !entry.name.endsWith('.lock')) continue;
    const file = path.join(entry.parentPath, entry.name);
    const changed = await stat(file).then(
      (info) => info.mtimeMs,
      () => Infinity,
    );
    if (changed >= before) continue;
    await rm(file, { force: true });
    removed++;
  }
  return removed;
}
