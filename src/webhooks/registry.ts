import type { EnvironmentConfig } from '../config/schema.js';
import type { Secrets } from '../config/secrets.js';
import { refuseGithubHeaders, verifyGithubSignature } from './github/verify.js';
import { parseGithubEvent } from './github/parse-push.js';
import { createGitlabVerifier } from './gitlab/verify.js';
import { parseGitlabEvent } from './gitlab/parse-push.js';
import {
  header,
  type Provider,
  type PushEvent,
  type Refusal,
  type VerifyInput,
  type VerifyResult,
  type WebhookEvent,
  type WebhookHeaders,
} from './types.js';

/** What the receiver needs to know about one provider; the route is the same for all of them. */
export interface WebhookProvider {
  name: Provider;
  /** Names the variable to set, for the log line when no secret is configured. */
  secretVariables: string;
  configured: boolean;
  /**
   * A refusal the headers alone decide (no or a malformed signature, a wrong GitLab token, a
   * stale timestamp), so the body need not be read; undefined when only the body can tell.
   */
  refuseFromHeaders(headers: WebhookHeaders, now: number): Refusal | undefined;
  verify(input: VerifyInput): Promise<VerifyResult>;
  eventName(headers: WebhookHeaders): string | undefined;
  deliveryId(headers: WebhookHeaders): string | undefined;
  /** The headers deliveryId reads, for an error that names them. */
  deliveryHeaders: string;
  parse(event: string | undefined, body: unknown, deliveryId: string | undefined): WebhookEvent;
}

export type WebhookRegistry = Record<Provider, WebhookProvider>;

/** Built once at start: secrets are read and signing keys decoded outside the request path. */
export function createWebhookRegistry(secrets: Secrets): WebhookRegistry {
  const githubSecrets = [...secrets.githubWebhookSecrets];
  const gitlab = createGitlabVerifier(secrets.gitlabWebhookTokens, secrets.gitlabSigningTokens);
  return {
    github: {
      name: 'github',
      secretVariables: 'GITHUB_WEBHOOK_SECRET',
      configured: githubSecrets.length > 0,
      refuseFromHeaders: (headers) => refuseGithubHeaders(githubSecrets, headers),
      verify: (input) => verifyGithubSignature(githubSecrets, input),
      eventName: (headers) => header(headers, 'x-github-event'),
      deliveryId: (headers) => header(headers, 'x-github-delivery'),
      deliveryHeaders: 'X-GitHub-Delivery',
      parse: parseGithubEvent,
    },
    gitlab: {
      name: 'gitlab',
      secretVariables: 'GITLAB_WEBHOOK_TOKEN or GITLAB_WEBHOOK_SIGNING_TOKEN',
      configured: gitlab.configured,
      refuseFromHeaders: (headers, now) => gitlab.refuseHeaders(headers, now),
      verify: (input) => Promise.resolve(gitlab.verify(input)),
      eventName: (headers) => header(headers, 'x-gitlab-event'),
      // GitLab sends the same Idempotency-Key on every retry of one event; the event UUID
      // is the fallback for versions that predate it.
      deliveryId: (headers) => header(headers, 'idempotency-key') || header(headers, 'x-gitlab-event-uuid'),
      deliveryHeaders: 'Idempotency-Key or X-Gitlab-Event-UUID',
      parse: parseGitlabEvent,
    },
  };
}

/** Environments fed by this push: same provider, same repository (case-insensitive), same branch. */
export function environmentsForPush(
  environments: readonly EnvironmentConfig[],
  push: PushEvent,
): EnvironmentConfig[] {
  const repository = push.repository.toLowerCase();
  return environments.filter(
    (environment) =>
      environment.repo.provider === push.provider &&
      environment.repo.name.toLowerCase() === repository &&
      environment.branch === push.branch,
  );
}
