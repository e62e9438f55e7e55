import { PushgateError } from '../../lib/errors.js';
import { payloadError } from '../schema-error.js';
import { COMMIT_SHA, isZeroSha, type WebhookEvent } from '../types.js';
import { githubPushSchema } from './schema.js';

const BRANCH_PREFIX = 'refs/heads/';

/** A verified GitHub delivery → the push it announces, or why it deploys nothing. */
export function parseGithubEvent(
  event: string | undefined,
  body: unknown,
  deliveryId: string | undefined,
): WebhookEvent {
  if (event === 'ping') return { kind: 'ping' };
  if (event !== 'push') return { kind: 'ignored', reason: `event "${event ?? '(none)'}" is not a push` };
  return parseGithubPush(body, deliveryId);
}

export function parseGithubPush(body: unknown, deliveryId: string | undefined): WebhookEvent {
  const parsed = githubPushSchema.safeParse(body);
  if (!parsed.success) throw payloadError('push payload', parsed.error);
  const push = parsed.data;
  if (push.ref.startsWith('refs/tags/')) return { kind: 'ignored', reason: `tag push (${push.ref})` };
  if (!push.ref.startsWith(BRANCH_PREFIX))
    return { kind: 'ignored', reason: `ref ${push.ref} is not a branch` };
  const branch = push.ref.slice(BRANCH_PREFIX.length);
  if (push.deleted === true || isZeroSha(push.after))
    return { kind: 'ignored', reason: `branch deletion (${branch})` };
  const after = push.after.toLowerCase();
  if (!COMMIT_SHA.test(after)) {
    throw new PushgateError('bad_request', 'push payload: after is not a commit sha', { status: 400 });
  }
  return {
    kind: 'push',
    push: {
      provider: 'github',
      repository: push.repository.full_name,
      branch,
      before: push.before,
      after,
      deliveryId,
      pusher: push.pusher?.name ?? push.sender?.login,
    },
  };
}
