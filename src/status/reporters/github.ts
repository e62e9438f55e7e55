import { Octokit } from '@octokit/rest';
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
};

export function createGithubSender(options: { token: string; apiUrl: string }): CommitStatusSender {
  const quiet = () => undefined;
  const octokit = new Octokit({
    auth: options.token,
    baseUrl: options.apiUrl.replace(/\/$/, ''),
    userAgent: 'pushgate',
    // Failures are logged once by the reporter, through pino, not by octokit on the console.
    log: { debug: quiet, info: quiet, warn: quiet, error: quiet },
  });
  return {
    async send(update, signal) {
      const [owner, ...rest] = update.environment.repo.name.split('/');
      await octokit.repos.createCommitStatus({
        owner: owner!,
        repo: rest.join('/'),
        sha: update.sha,
        state: GITHUB_STATES[update.state],
        context: update.context,
        target_url: update.targetUrl,
        description: clipDescription(update.description, 140),
        request: { signal },
      });
    },
  };
}
