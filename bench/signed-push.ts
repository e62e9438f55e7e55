/** The webhooks every ingest bench sends: GitHub push deliveries signed as GitHub signs them. */
import { createHmac, randomBytes, randomUUID } from 'node:crypto';

export const SECRET = 'bench-secret';
export const REPOSITORY = 'acme/env-config';
export const BRANCH = 'env/production';

/** A push payload shaped like GitHub's (the webhooks-examples push is ~7 kB; this is close). */
function pushBody(sha: string): string {
  return JSON.stringify({
    ref: `refs/heads/${BRANCH}`,
    before: randomBytes(20).toString('hex'),
    after: sha,
    created: false,
    deleted: false,
    forced: false,
    base_ref: null,
    compare: `https://github.com/${REPOSITORY}/compare/${sha}`,
    repository: {
      id: 186853002,
      name: 'env-config',
      full_name: REPOSITORY,
      private: true,
      owner: { login: 'acme', id: 21031067, type: 'Organization' },
      html_url: `https://github.com/${REPOSITORY}`,
      description: 'x'.repeat(200),
      clone_url: `https://github.com/${REPOSITORY}.git`,
      default_branch: 'main',
    },
    pusher: { name: 'octocat', email: 'octocat@example.com' },
    sender: { login: 'octocat', id: 1 },
    commits: Array.from({ length: 3 }, (_, index) => ({
      id: randomBytes(20).toString('hex'),
      message: `Update production manifests (${index})\n\n${'y'.repeat(400)}`,
      timestamp: new Date().toISOString(),
      author: { name: 'Octo Cat', email: 'octocat@example.com', username: 'octocat' },
      added: [],
      modified: ['clusters/production/web.yaml', 'clusters/production/api.yaml'],
      removed: [],
    })),
    head_commit: { id: sha, message: 'Update production manifests', timestamp: new Date().toISOString() },
  });
}

/** Every request its own delivery id and commit, signed as GitHub signs them. */
export function signedPush(): { body: string; headers: Record<string, string> } {
  const body = pushBody(randomBytes(20).toString('hex'));
  return {
    body,
    headers: {
      'content-type': 'application/json',
      'x-github-event': 'push',
      'x-github-delivery': randomUUID(),
      'x-hub-signature-256': `sha256=${createHmac('sha256', SECRET).update(body).digest('hex')}`,
    },
  };
}
