import type { Config } from '../config/schema.js';
import { unsetSecret, type Secrets } from '../config/secrets.js';

export interface WebhookSecretWarning {
  provider: 'github' | 'gitlab';
  message: string;
}

/**
 * The providers of configured environments that have no secret to verify a webhook with:
 * every delivery from them is refused (401). `check` prints these; `serve` and `start` log them.
 */
export function missingWebhookSecrets(config: Config, secrets: Secrets): WebhookSecretWarning[] {
  const providers = new Set(config.environments.map((environment) => environment.repo.provider));
  const warnings: WebhookSecretWarning[] = [];
  if (providers.has('github') && secrets.githubWebhookSecrets.length === 0) {
    warnings.push({
      provider: 'github',
      message: `${unsetSecret('GITHUB_WEBHOOK_SECRET', secrets)}; GitHub webhooks will be refused (401)`,
    });
  }
  if (
    providers.has('gitlab') &&
    secrets.gitlabWebhookTokens.length === 0 &&
    secrets.gitlabSigningTokens.length === 0
  ) {
    const fromFile =
      secrets.emptyFiles?.GITLAB_WEBHOOK_TOKEN ?? secrets.emptyFiles?.GITLAB_WEBHOOK_SIGNING_TOKEN;
    const why =
      fromFile === undefined
        ? 'neither GITLAB_WEBHOOK_TOKEN nor GITLAB_WEBHOOK_SIGNING_TOKEN is set'
        : `${unsetSecret('GITLAB_WEBHOOK_TOKEN', secrets)} and ${unsetSecret('GITLAB_WEBHOOK_SIGNING_TOKEN', secrets)}`;
    warnings.push({ provider: 'gitlab', message: `${why}; GitLab webhooks will be refused (401)` });
  }
  return warnings;
}
