import type { EnvironmentConfig } from '../config/schema.js';
import { gitFetchLimitsFromEnv } from '../git/fetch-budget.js';
import { refuseUnknownFsckIds } from '../git/fetch-fsck.js';
import { defaultGitCacheDir, MirrorCache } from '../git/mirror-cache.js';
import { newlySkippedFolders } from '../deploy/skipped-folders.js';
import { loadManifests, type SkippedPath } from '../manifests/load.js';
import type { LoadedManifest } from '../manifests/types.js';
import { loadRuntime, type Runtime } from '../runtime.js';
import { CliFailure } from './cli-failure.js';
import type { CommandArgs } from './command.js';

/** One commit of an environment's branch, its manifests loaded as a deploy loads them. */
export interface EnvironmentCommit {
  runtime: Runtime;
  environment: EnvironmentConfig;
  sha: string;
  manifests: LoadedManifest[];
  /**
   * The folders this commit skips for their kustomization that the commit `since` read as
   * plain folders (skipped-folders.ts): a deploy coming from `since` would refuse it.
   */
  newlySkippedSince: (since: string) => Promise<SkippedPath[]>;
}

/**
 * What `pushgate render` and `pushgate diff` share: the environment named by the first
 * argument, its branch head (or --ref) fetched into the local mirror cache, checked out and
 * loaded, then handed to `use`. An unknown environment is exit 2; a failure to fetch, load or
 * `use` is thrown, for the CLI to say after what this prints on the way out (its exit code
 * and --json code by what failed: cli-failure.ts). Never talks to Redis.
 */
export async function withEnvironmentCommit(
  args: CommandArgs,
  command: string,
  use: (commit: EnvironmentCommit) => Promise<number>,
): Promise<number> {
  const [name] = args.positionals;
  // The same config as the receiver's, `${REDIS_URL}` unset, will do.
  const runtime = loadRuntime(args.config, args.env, {
    unsetWhenVariableMissing: ['redis.url'],
    redisUnused: true,
  });
  const environment = runtime.config.environments.find((candidate) => candidate.name === name);
  if (!environment) {
    const known = runtime.config.environments.map((candidate) => candidate.name).join(', ') || 'none';
    throw new CliFailure('environment_not_found', `unknown environment "${name}" (configured: ${known})`, {
      exitCode: 2,
    });
  }
  const limits = gitFetchLimitsFromEnv(args.env);
  await refuseUnknownFsckIds(limits.fsckIgnore, args.env);
  const mirrors = new MirrorCache({
    dir: defaultGitCacheDir(args.env),
    token: runtime.secrets.gitToken,
    ...limits,
  });
  const repo = { url: environment.repo.url, provider: environment.repo.provider };
  try {
    const sha = args.ref
      ? await mirrors.fetchCommit(repo, environment.branch, args.ref)
      : await mirrors.fetchBranch(repo, environment.branch);
    const tree = await mirrors.checkout(repo, sha, environment.path);
    try {
      let skipped: readonly SkippedPath[] = [];
      const manifests = await loadManifests(tree.dir, environment.path, {
        logger: runtime.logger,
        environment,
        onSkipped: (folders) => (skipped = folders),
      });
      const newlySkippedSince = async (since: string): Promise<SkippedPath[]> =>
        since === sha || skipped.length === 0
          ? []
          : newlySkippedFolders(mirrors, repo, since, environment.path, skipped);
      return await use({ runtime, environment, sha, manifests, newlySkippedSince });
    } finally {
      await tree.remove();
    }
  } finally {
    // Fetches leave gc to their caller: a mirror only this command fetches into would never be repacked.
    for (const failure of await mirrors.collectGarbage())
      args.stderr.write(`pushgate ${command}: warning: git gc of the mirror failed: ${failure.message}\n`);
  }
}
