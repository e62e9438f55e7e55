import { stringify } from 'yaml';
import { createKubeApplyEngine } from '../deploy/kube-apply-engine.js';
import { UsageError } from '../lib/errors.js';
import type { CommandArgs } from './command.js';
import { withEnvironmentCommit } from './environment-commit.js';
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
  return withEnvironmentCommit(args, 'render', async ({ runtime, environment, sha, manifests }) => {
    const objects = await createKubeApplyEngine(runtime.config, args.env).render(environment, manifests);
    args.stderr.write(`# ${environment.name} at ${sha}: ${objects.length} object(s)\n`);
    const shown = args.showSecrets ? objects : objects.map(withSecretPlaceholders);
    if (!args.showSecrets && objects.some((object) => object.kind === 'Secret'))
      args.stderr.write('# Secret values are shown as [redacted: N bytes]; --show-secrets prints them\n');
    args.stdout.write(shown.map((object) => stringify(object, { lineWidth: 0 })).join('---\n'));
    return 0;
  });
}
