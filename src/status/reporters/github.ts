import { Octokit } from '@octokit/rest';
import { ProviderRequestError } from './delivery-failure.js';
import { clipDescription, type CommitStatusSender, type DeployStatusState } from './types.js';

type GithubState = 'pending' | 'success' | 'failure' | 'error';

/**
 * GitHub has no "skipped" status: a superseded commit is reported `success` with a
 * description naming the commit that replaced it. A red cross on a commit that was only
 * overtaken would alarm people and block branch rules for nothing.
 */
const GITHUB_STATES: Record<DeployStatusState, GithubState> = {
  pending: 'pending',
  success: 'success',
  failure: 'failure',
  superseded: 'success',
  // GitHub's "error" (not "failure": nothing is known to be wrong), as CI systems report an abort.
  canceled: 'error',
};

export function createGithubSender(options: { token: () => string; apiUrl: string }): CommitStatusSender {
  const quiet = () => undefined;
  const octokit = new Octokit({
    baseUrl: options.apiUrl.replace(/\/$/, ''),
    userAgent: 'pushgate',
    // Failures are logged once by the reporter, through pino, not by octokit on the console.
    log: { debug: quiet, info: quiet, warn: quiet, error: quiet },
  });
  return {
    async send(delivery, signal) {
      const [owner, repo] = delivery.repo.split('/');
      try {
        await octokit.repos.createCommitStatus({
          owner: owner!,
          repo: repo!,
          sha: delivery.sha,
          state: GITHUB_STATES[delivery.state],
          context: delivery.context,
          target_url: delivery.targetUrl,
          description: clipDescription(delivery.description, 140),
          // Per request, not at construction: a token file is read again at each send.
          headers: { authorization: `token ${options.token()}` },
          request: { signal },
        });
      } catch (error) {
        throw asProviderError(error);
      }
    },
  };
}

/** Octokit's RequestError for an answer; anything else (no answer) as it is. */
function asProviderError(error: unknown): unknown {
  const { status, response, message } = error as {
    status?: unknown;
    response?: { headers?: Record<string, unknown> };
    message?: unknown;
  };
  if (typeof status !== 'number' || !response) return error;
  const headers: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(response.headers ?? {}))
    if (typeof value === 'string' || typeof value === 'number') headers[name.toLowerCase()] = String(value);
  return new ProviderRequestError(typeof message === 'string' ? message : `HTTP ${status}`, status, headers);
}
