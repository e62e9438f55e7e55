import { stringify } from 'yaml';
import { createKubeApplyEngine } from '../deploy/kube-apply-engine.js';
import { defaultGitCacheDir, MirrorCache } from '../git/mirror-cache.js';
import { gitFetchLimitsFromEnv } from '../git/fetch-budget.js';
import { refuseUnknownFsckIds } from '../git/fetch-fsck.js';
import { PushgateError, UsageError } from '../lib/errors.js';
import { loadManifests } from '../manifests/load.js';
import { loadRuntime } from '../runtime.js';
import type { CommandArgs } from './command.js';
import { withSecretPlaceholders } from './secret-placeholders.js';

/**
 * `pushgate render ENV [--ref SHA] [--show-secrets]`: what ENV would apply, as the API server
 * would store it, Secret values replaced by their size unless --show-secrets.
 * Fetches the branch head (or SHA), loads, validates and policy-checks the manifests and
 * dry-runs them on the environment's cluster, then prints the objects as YAML documents.
 * Nothing is written. The cluster is needed: only it knows which kinds exist and which are
 * namespaced, so without it neither validation nor the namespace policy can be decided.
 */
export async function runRender(args: CommandArgs): Promise<number> {
  const [name, ...extra] = args.positionals;
  if (!name || extra.length > 0)
    throw new UsageError('usage: pushgate render ENV [--ref SHA] [--show-secrets]');
  // Render never talks to Redis: the same config as the receiver's, `${REDIS_URL}` unset, will do.
  const runtime = loadRuntime(args.config, args.env, { unsetWhenVariableMissing: ['redis.url'] });
  const environment = runtime.config.environments.find((candidate) => candidate.name === name);
  if (!environment) {
    const known = runtime.config.environments.map((candidate) => candidate.name).join(', ') || 'none';
    args.stderr.write(`pushgate render: unknown environment "${name}" (configured: ${known})\n`);
    return 2;
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
      const manifests = await loadManifests(tree.dir, environment.path, {
        logger: runtime.logger,
        environment,
      });
      const objects = await createKubeApplyEngine(runtime.config, args.env).render(environment, manifests);
      args.stderr.write(`# ${environment.name} at ${sha}: ${objects.length} object(s)\n`);
      const shown = args.showSecrets ? objects : objects.map(withSecretPlaceholders);
      if (!args.showSecrets && objects.some((object) => object.kind === 'Secret'))
        args.stderr.write('# Secret values are shown as [redacted: N bytes]; --show-secrets prints them\n');
      args.stdout.write(shown.map((object) => stringify(object, { lineWidth: 0 })).join('---\n'));
      return 0;
    } finally {
      await tree.remove();
    }
  } catch (error) {
    // A bad --ref or an unloadable kubeconfig is the caller's to fix (exit 2), not a failed render.
    if (error instanceof PushgateError && (error.code === 'usage' || error.code === 'config_invalid'))
      throw error;
    args.stderr.write(`pushgate render: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  } finally {
    // Fetches leave gc to their caller: a mirror only render fetches into would never be repacked.
    for (const failure of await mirrors.collectGarbage())
      args.stderr.write(`pushgate render: warning: git gc of the mirror failed: ${failure.message}\n`);
  }
}
