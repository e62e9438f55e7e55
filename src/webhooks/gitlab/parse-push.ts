import { PushgateError } from '../../lib/errors.js';
import { payloadError } from '../schema-error.js';
import { COMMIT_SHA, isZeroSha, type WebhookEvent } from '../types.js';
import { gitlabPushSchema } from './schema.js';

const BRANCH_PREFIX = 'refs/heads/';

/** A verified GitLab delivery → the push it announces, or why it deploys nothing. */
export function parseGitlabEvent(
  event: string | undefined,
  body: unknown,
  deliveryId: string | undefined,
): WebhookEvent {
  if (event === 'Tag Push Hook') return { kind: 'ignored', reason: 'tag push' };
  if (event !== 'Push Hook') return { kind: 'ignored', reason: `event "${event ?? '(none)'}" is not a push` };
  return parseGitlabPush(body, deliveryId);
}

export function parseGitlabPush(body: unknown, deliveryId: string | undefined): WebhookEvent {
  const parsed = gitlabPushSchema.safeParse(body);
  if (!parsed.success) throw payloadError('push payload', parsed.error);
  const push = parsed.data;
  if (push.ref.startsWith('refs/tags/')) return { kind: 'ignored', reason: `tag push (${push.ref})` };
  if (!push.ref.startsWith(BRANCH_PREFIX))
    return { kind: 'ignored', reason: `ref ${push.ref} is not a branch` };
  const branch = push.ref.slice(BRANCH_PREFIX.length);
  if (isZeroSha(push.after)) return { kind: 'ignored', reason: `branch deletion (${branch})` };
  const after = push.after.toLowerCase();
  if (!COMMIT_SHA.test(after)) {
    throw new PushgateError('bad_request', 'push payload: after is not a commit sha', { status: 400 });
  }
  return {
    kind: 'push',
    push: {
      provider: 'gitlab',
      repository: push.project.path_with_namespace,
      branch,
      before: push.before,
      after,
      deliveryId,
      pusher: push.user_username ?? push.user_name ?? undefined,
    },
  };
}
