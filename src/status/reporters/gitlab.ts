import { Gitlab } from '@gitbeaker/rest';
import { clipDescription, type CommitStatusSender, type DeployStatusState } from './types.js';

type GitlabState = 'pending' | 'running' | 'success' | 'failed' | 'canceled';

/** GitLab shows an overtaken pipeline as `canceled`; a superseded deploy is the same thing. */
const GITLAB_STATES: Record<DeployStatusState, GitlabState> = {
  pending: 'pending',
  success: 'success',
  failure: 'failed',
  superseded: 'canceled',
};

export function createGitlabSender(options: {
  token: string;
  url: string;
  timeoutMs: number;
}): CommitStatusSender {
  const api = new Gitlab({
    token: options.token,
    host: options.url.replace(/\/$/, ''),
    queryTimeout: options.timeoutMs,
  });
  return {
    async send(update) {
      // The project path is its id once URL-encoded; gitbeaker encodes it.
      await api.Commits.editStatus(update.environment.repo.name, update.sha, GITLAB_STATES[update.state], {
        name: update.context,
        targetUrl: update.targetUrl,
        description: clipDescription(update.description, 255),
      });
    },
  };
}
