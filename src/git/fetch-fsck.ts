import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ConfigError, PushgateError } from '../lib/errors.js';
import { GitCommandError, runGit } from './run-git.js';

/**
 * git fsck message ids (git 2.39) a fetch lets through: problems of a commit's or tag's
 * author, committer or tagger line, a NUL byte in a commit's message, and a tree mode written
 * with a leading zero (`040000` as `0040000`, from old git versions and libraries). Real
 * repositories carry them from old tools and importers, a fetch's history brings them again
 * into every new mirror, and none of them changes the tree a checkout holds. Every other
 * problem stays an error (a fetch's fsck makes git's warnings errors too): the shape of trees
 * above all (duplicateEntries, treeNotSorted, hasDotgit, hasDot, hasDotdot, emptyName,
 * fullPathname, nullSha1, badTree), which can make a path lookup, and so a checkout of the
 * environment's path, see other files than a checkout of the whole commit; a commit's tree
 * and parents; and what .gitmodules and .gitattributes may say. (badFilemode, the 100664 of
 * 2005's git, stays what git makes it, a warning: every checkout reads such a mode the same
 * way, 100664 as 100644.)
 */
export const IGNORED_FSCK_MESSAGES = [
  'badDate',
  'badDateOverflow',
  'badTimezone',
  'zeroPaddedDate',
  'badEmail',
  'badName',
  'missingEmail',
  'missingNameBeforeEmail',
  'missingSpaceBeforeDate',
  'missingSpaceBeforeEmail',
  'multipleAuthors',
  'nulInCommit',
  'zeroPaddedFilemode',
] as const;

/**
 * git options that make a fetch check each object it receives (`index-pack --strict`) and
 * refuse them all at the first malformed one: no ref moves, and the partial pack left is
 * removed as any unfinished fetch's is (watchFetch). Objects already in the mirror are not
 * checked again.
 */
export function fsckFetchConfig(alsoIgnored: readonly string[] = []): string[] {
  const ignored = new Set<string>([...IGNORED_FSCK_MESSAGES, ...alsoIgnored]);
  return ['-c', 'fetch.fsckObjects=true', ...[...ignored].flatMap((id) => ['-c', `fetch.fsck.${id}=ignore`])];
}

export const FSCK_FETCH_CONFIG = fsckFetchConfig();

export const FSCK_IGNORE_VARIABLE = 'PUSHGATE_GIT_FSCK_IGNORE';
const MESSAGE_ID = /^[A-Za-z][A-Za-z0-9]*$/;

/**
 * `PUSHGATE_GIT_FSCK_IGNORE`: more fsck message ids a fetch lets through, comma-separated,
 * for a repository whose history holds a problem this version refuses (the operator's call:
 * letting duplicateEntries or treeNotSorted through lets a deploy hold other files than the
 * commit shows). Anything but ids is invalid configuration.
 */
export function fsckIgnoreFromEnv(env: Record<string, string | undefined>): string[] | undefined {
  const raw = env[FSCK_IGNORE_VARIABLE];
  if (raw === undefined || raw.trim() === '') return undefined;
  const ids = raw.split(',').map((id) => id.trim());
  // fetch.fsck.skipList names a file of objects to skip, not a message id.
  const bad = ids.find((id) => !MESSAGE_ID.test(id) || id.toLowerCase() === 'skiplist');
  if (bad !== undefined)
    throw new ConfigError(
      `${FSCK_IGNORE_VARIABLE}="${raw}" must be git fsck message ids separated by commas, such as hasDot,zeroPaddedFilemode ("${bad}" is not one)`,
    );
  return ids;
}

/** What git's fsck says of a `fsck.<id>` setting whose id it does not know. */
const UNKNOWN_ID = /Unhandled message id: (\S+)/;
/** …and of one it knows but never lets through (`nulInHeader`: a fetch fails whatever the setting). */
const FATAL_ID = /Cannot demote (\S+)/;

/**
 * Refuses (as invalid configuration, exit 2) the ids of `PUSHGATE_GIT_FSCK_IGNORE` that the
 * git here does not know: a fetch skips such a setting with a warning in a log nobody reads,
 * and the repository stays refused. Asked of git itself (`git fsck` in an empty repository,
 * which fails on an unknown id), since its list of ids changes between versions.
 */
export async function refuseUnknownFsckIds(
  ids: readonly string[] | undefined,
  processEnv: Record<string, string | undefined> = process.env,
): Promise<void> {
  if (!ids || ids.length === 0) return;
  const dir = await mkdtemp(path.join(tmpdir(), 'pushgate-fsck-ids-'));
  try {
    const options = { timeoutMs: 30_000, processEnv, what: 'check the fsck message ids' };
    await runGit(['init', '--quiet', '--bare', dir], options);
    const unknown: string[] = [];
    const fatal: string[] = [];
    // One git per id: git stops at the first bad one, and every bad one should be named.
    for (const id of ids) {
      try {
        await runGit(['-c', `fsck.${id}=ignore`, '--git-dir', dir, 'fsck', '--no-progress'], options);
      } catch (error) {
        if (!(error instanceof GitCommandError)) throw error;
        if (UNKNOWN_ID.test(error.stderr)) unknown.push(id);
        else if (FATAL_ID.test(error.stderr)) fatal.push(id);
        else throw error;
      }
    }
    const quoted = (list: string[]): string => list.map((id) => `"${id}"`).join(', ');
    const problems = [
      ...(unknown.length > 0
        ? [
            `${quoted(unknown)}, which this git does not know as a fsck message id (git help fsck lists them, as in hasDot or zeroPaddedFilemode)`,
          ]
        : []),
      ...(fatal.length > 0
        ? [`${quoted(fatal)}, which git never lets through (a fetch fails whatever the setting)`]
        : []),
    ];
    if (problems.length > 0)
      throw new ConfigError(`${FSCK_IGNORE_VARIABLE} names ${problems.join('; and ')}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** What git prints once its fsck refused a fetch: of an object, or of the .gitmodules found among them. */
const FSCK_REFUSED = /^fatal: fsck error in pack(?:ed object| objects)$/m;
/** What git's fsck prints for each problem: `error: object <sha>: <message id>: <what is wrong>`. */
const FSCK_PROBLEM = /^error: object ([0-9a-f]{40}(?:[0-9a-f]{24})?): ([A-Za-z0-9]+): (.+)$/gm;
/** Problems named in the refusal at most: git stops at the first malformed object anyway. */
const PROBLEMS_SHOWN = 5;

/**
 * A fetch refused by git's fsck: permanent, as the same push brings the same objects again
 * (a later commit on top of it too, until the branch is rewritten without them).
 */
export class MalformedObjectsError extends PushgateError {
  constructor(message: string) {
    super('git_failed', message, { permanent: true });
    this.name = 'MalformedObjectsError';
  }
}

/**
 * The failure of fetch `what` as a MalformedObjectsError naming the problems git reported,
 * when its fsck refused what came; any other failure as it is. Built from the stderr runGit
 * kept, credentials removed, never from git's output as it was.
 */
export function malformedObjectsRefusal(error: unknown, what: string): unknown {
  if (!(error instanceof GitCommandError) || !FSCK_REFUSED.test(error.stderr)) return error;
  const problems = [
    ...new Set(
      [...error.stderr.matchAll(FSCK_PROBLEM)].map(
        ([, object, id, problem]) => `${id}: ${problem!.trim()}, in object ${object}`,
      ),
    ),
  ];
  const shown =
    problems.length === 0
      ? 'git did not say which'
      : problems.slice(0, PROBLEMS_SHOWN).join('; ') +
        (problems.length > PROBLEMS_SHOWN ? `; ${problems.length - PROBLEMS_SHOWN} more` : '');
  return new MalformedObjectsError(
    `git ${what}: the repository holds malformed objects (${shown}): refusing them`,
  );
}
