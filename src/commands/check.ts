import { loadConfig, resolveConfigPath } from '../config/load.js';
import { readSecrets, unsetSecret } from '../config/secrets.js';
import { unsetVariable } from '../config/variable.js';
import { kubeconfigProblems } from '../kube/cluster.js';
import { logLevelFromEnv } from '../lib/logger.js';
import type { CommandArgs } from './command.js';
import { someOf } from './some-of.js';
import { formatTable } from './table.js';
import { missingWebhookSecrets } from './webhook-secret-warnings.js';
import { namespacePolicyWarnings } from './policy-warnings.js';
import { providerUrlWarnings } from './provider-url-warnings.js';
import { repoUrlCredentialWarnings } from './repo-url-credential-warnings.js';

/** `pushgate check`: validates the configuration (exit 2 with file, path and reason) and lists the environments. */
export async function runCheck(args: CommandArgs): Promise<number> {
  const file = resolveConfigPath(args.config, args.env);
  // As `start` reads it: a missing REDIS_URL means "run a private redis-server" (SPEC §2), not
  // an invalid file; serve and worker still refuse to start without it, as warned below.
  let redisUrlVariable: string | undefined;
  const config = loadConfig(file, args.env, {
    unsetWhenVariableMissing: ['redis.url'],
    onUnset: (_path, variable) => (redisUrlVariable = variable),
    redisUnused: true,
  });
  const secrets = readSecrets(args.env);
  // What every other command refuses at start (exit 2), so a CI check catches it first.
  logLevelFromEnv(args.env.LOG_LEVEL);
  // The worker's numbers, not its fsck ids: those are checked against the git of the machine
  // that fetches, which a CI machine running check may not have. Loaded here only: the
  // worker's modules are not check's to pay for otherwise.
  const workerModule = await import('../../workers/deploy.js');
  workerModule.workerTuningFromEnv(args.env);
  workerModule.workerMetricsPortFromEnv(args.env);

  const rows = config.environments.map((environment) => [
    environment.name,
    `${environment.repo.provider} ${environment.repo.name}`,
    environment.branch,
    environment.path,
    environment.cluster,
    environment.namespace,
    environment.prune ? 'yes' : 'no',
  ]);
  args.stdout.write(
    `${file}: valid, ${config.environments.length} environment(s), ${config.clusters.length} cluster(s)\n`,
  );
  if (rows.length > 0) {
    args.stdout.write(
      formatTable(['ENVIRONMENT', 'REPO', 'BRANCH', 'PATH', 'CLUSTER', 'NAMESPACE', 'PRUNE'], rows),
    );
  }

  // Warnings, not errors: a receiver without secrets still serves the status API.
  if (config.environments.length === 0)
    args.stderr.write('warning: no environments configured: nothing will be deployed\n');
  for (const warning of namespacePolicyWarnings(config)) args.stderr.write(`warning: ${warning}\n`);
  if (!config.redis.url) {
    const why = redisUrlVariable ? ` (${unsetVariable(redisUrlVariable, args.env)})` : '';
    args.stderr.write(
      config.redis.cluster
        ? `warning: redis.url is not set${why}; pushgate serve, worker and start need it (redis.cluster: a node of the cluster)\n`
        : `warning: redis.url is not set${why}; pushgate serve and worker need it, pushgate start runs its own redis-server\n`,
    );
  }
  const providers = new Set(config.environments.map((environment) => environment.repo.provider));
  for (const warning of missingWebhookSecrets(config, secrets))
    args.stderr.write(`warning: ${warning.message}\n`);
  // Only a warning: check may run on a machine (CI) without the clusters' kubeconfigs.
  for (const problem of kubeconfigProblems(config.clusters, args.env)) {
    args.stderr.write(`warning: ${problem.message} (render and deploys from this machine will fail)\n`);
  }
  for (const warning of providerUrlWarnings(config, secrets.gitToken !== undefined))
    args.stderr.write(`warning: ${warning}\n`);
  for (const warning of repoUrlCredentialWarnings(config)) args.stderr.write(`warning: ${warning}\n`);
  const tokens = { github: secrets.githubToken, gitlab: secrets.gitlabToken };
  for (const provider of providers) {
    if (tokens[provider]) continue;
    const variable = provider === 'github' ? 'GITHUB_TOKEN' : 'GITLAB_TOKEN';
    const names = config.environments.filter((e) => e.repo.provider === provider).map((e) => e.name);
    args.stderr.write(
      `warning: ${unsetSecret(variable, secrets)}; commits of ${someOf(names)} (${provider}) will get no commit status` +
        // A worker reads the file again at each status: a sidecar's first token is still picked up.
        `${secrets.emptyFiles?.[variable] ? ' until it holds a token' : ''}\n`,
    );
  }
  const reports =
    (providers.has('github') && secrets.githubToken) || (providers.has('gitlab') && secrets.gitlabToken);
  if (reports && !config.server.publicUrl) {
    args.stderr.write(
      `warning: server.publicUrl is not set; commit statuses link to each job at http://localhost:${config.server.port}, ` +
        'which nobody else can open: set it to the URL pushgate is reached at\n',
    );
  }
  return 0;
}
