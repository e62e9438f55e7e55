import { clusterClientFor } from '../deploy/kube-apply-engine.js';
import { newlySkippedError } from '../deploy/skipped-folders.js';
import { diffAgainstCluster, type ClusterDiff, type ObjectChange } from '../kube/diff.js';
import { readInventory } from '../kube/inventory.js';
import { UsageError } from '../lib/errors.js';
import { diffLines, unifiedHunks } from '../lib/line-diff.js';
import { counted } from '../lib/counted.js';
import { describeRef } from '../manifests/resource-info.js';
import type { ObjectRef } from '../manifests/types.js';
import type { CommandArgs } from './command.js';
import { diffYamlLines } from './diff-yaml.js';
import { withEnvironmentCommit } from './environment-commit.js';
import { secretPlaceholdersOfChange } from './secret-placeholders.js';

/** Lines of context around each change, as git diff and kubectl diff show. */
const CONTEXT_LINES = 3;

/**
 * `--exit-code`'s answer when a deploy would change something. Not 1, which says the diff
 * itself failed (a refused commit, an unreachable cluster), nor 2 (bad usage): a drift check
 * must tell drift from a check that could not run, as Terraform's `-detailed-exitcode` does.
 */
export const DIFF_FOUND_EXIT_CODE = 3;

/**
 * `pushgate diff ENV [--ref SHA] [--show-secrets] [--json] [--exit-code]`: what a deploy of
 * ENV's branch head (or SHA) would change in its cluster, as a unified diff of each object's
 * live copy against the server's dry-run of the commit's, then what prune would delete; as
 * `kubectl diff` and `argocd app diff` show it. Nothing is written. Exit 0 whether or not
 * anything differs (the summary on stderr counts it) unless `--exit-code` asks for
 * DIFF_FOUND_EXIT_CODE when something does; 1 when the commit would fail before its first
 * write.
 */
export async function runDiff(args: CommandArgs): Promise<number> {
  const [name, ...extra] = args.positionals;
  if (!name || extra.length > 0)
    throw new UsageError('usage: pushgate diff ENV [--ref SHA] [--show-secrets] [--json] [--exit-code]');
  return withEnvironmentCommit(
    args,
    'diff',
    async ({ runtime, environment, sha, manifests, newlySkippedSince }) => {
      const client = clusterClientFor(runtime.config, environment, args.env);
      // A deploy refuses a commit that newly skips a folder it applied (its objects would be
      // pruned): from the inventory's commit, which diff reads without Redis.
      const inventory = environment.prune ? await readInventory(client, environment) : undefined;
      // A commit id only: the ConfigMap is anyone's to edit who may write the namespace.
      if (inventory && /^[0-9a-f]{40}(?:[0-9a-f]{24})?$/.test(inventory.revision)) {
        const folders = await newlySkippedSince(inventory.revision);
        if (folders.length > 0) throw newlySkippedError(folders, inventory.revision);
      }
      const diff = await diffAgainstCluster(client, { environment, manifests });
      const showSecrets = args.showSecrets ?? false;
      if (args.json) {
        args.stdout.write(`${JSON.stringify(diffAsJson(environment.name, sha, diff, showSecrets))}\n`);
      } else {
        for (const change of diff.changes) args.stdout.write(formatChange(change, sha, showSecrets));
        for (const { ref, why } of diff.notCompared)
          args.stdout.write(`# not compared: ${describeRef(ref)}: ${why}\n`);
        for (const { ref, why } of diff.keptFromPrune)
          args.stdout.write(`# kept, not in the commit: ${describeRef(ref)}: ${why}\n`);
      }
      const count = (action: ObjectChange['action']): number =>
        diff.changes.filter((change) => change.action === action).length;
      args.stderr.write(
        `# ${environment.name} at ${sha}: ${count('create')} to create, ${count('change')} to change, ` +
          `${count('replace')} to replace, ${count('delete')} to prune, ${counted(diff.unchanged, 'object')} unchanged` +
          (diff.notCompared.length > 0 ? `, ${diff.notCompared.length} not compared` : '') +
          (diff.keptFromPrune.length > 0 ? `, ${diff.keptFromPrune.length} kept from prune` : '') +
          '\n',
      );
      if (
        !args.showSecrets &&
        diff.changes.some((change) => (change.after ?? change.before)?.kind === 'Secret')
      )
        args.stderr.write('# Secret values are shown as [redacted: N bytes]; --show-secrets prints them\n');
      // An object that could not be compared may well change: a gate must not pass it unseen.
      const differs = diff.changes.length > 0 || diff.notCompared.length > 0;
      return args.exitCode && differs ? DIFF_FOUND_EXIT_CODE : 0;
    },
  );
}

/**
 * `--json`: one object, for a bot that comments on a pull request or a drift check (`jq
 * '.changes | length'`): each change with its unified diff as text, what was not compared
 * and what prune keeps, with why.
 */
function diffAsJson(
  environment: string,
  sha: string,
  diff: ClusterDiff,
  showSecrets: boolean,
): Record<string, unknown> {
  const located = (ref: ObjectRef) => ({
    apiVersion: ref.apiVersion,
    kind: ref.kind,
    ...(ref.namespace === undefined ? {} : { namespace: ref.namespace }),
    name: ref.name,
  });
  return {
    environment,
    sha,
    changes: diff.changes.map((change) => ({
      action: change.action,
      ...located(change.ref),
      ...(change.note ? { note: change.note } : {}),
      diff: formatChange(change, sha, showSecrets, false),
    })),
    unchanged: diff.unchanged,
    notCompared: diff.notCompared.map(({ ref, why }) => ({ ...located(ref), why })),
    keptFromPrune: diff.keptFromPrune.map(({ ref, why }) => ({ ...located(ref), why })),
  };
}

/** One object's change as a unified diff, its sides named after the live object and the commit. */
function formatChange(change: ObjectChange, sha: string, showSecrets: boolean, titled = true): string {
  const [before, after] = showSecrets
    ? [change.before, change.after]
    : secretPlaceholdersOfChange(change.before, change.after);
  const header = [
    ...(titled
      ? [`# ${change.action} ${describeRef(change.ref)}${change.note ? `: ${change.note}` : ''}`]
      : []),
    `--- ${before ? `live/${refPath(change.ref)}` : '/dev/null'}`,
    `+++ ${after ? `${sha.slice(0, 12)}/${refPath(change.ref)}` : '/dev/null'}`,
  ];
  const hunks = unifiedHunks(diffLines(diffYamlLines(before), diffYamlLines(after)), CONTEXT_LINES);
  return `${[...header, ...hunks].join('\n')}\n`;
}

function refPath(ref: ObjectRef): string {
  return [ref.apiVersion, ref.kind, ref.namespace, ref.name].filter((part) => part !== undefined).join('/');
}
