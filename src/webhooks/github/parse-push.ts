import { PushgateError } from '../../lib/errors.js';
import {
  optionalBoolean,
  optionalObject,
  optionalString,
  payloadObject,
  requiredObject,
  requiredString,
} from '../payload-fields.js';
import { COMMIT_SHA, isZeroSha, type WebhookEvent } from '../types.js';

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

/** Reads `ref`, `before`, `after`, `deleted`, `repository.full_name`, `pusher.name`, `sender.login`. */
export function parseGithubPush(body: unknown, deliveryId: string | undefined): WebhookEvent {
  const push = payloadObject(body);
  const ref = requiredString(push, 'ref');
  const rawAfter = requiredString(push, 'after');
  const before = optionalString(push, 'before');
  const deleted = optionalBoolean(push, 'deleted');
  const repository = requiredString(requiredObject(push, 'repository'), 'full_name', 'repository.full_name');
  const pusher = optionalObject(push, 'pusher');
  const sender = optionalObject(push, 'sender');
  const pusherName =
    (pusher && optionalString(pusher, 'name', 'pusher.name')) ??
    (sender && optionalString(sender, 'login', 'sender.login'));
  if (ref.startsWith('refs/tags/')) return { kind: 'ignored', reason: `tag push (${ref})` };
  if (!ref.startsWith(BRANCH_PREFIX)) return { kind: 'ignored', reason: `ref ${ref} is not a branch` };
  const branch = ref.slice(BRANCH_PREFIX.length);
  if (deleted === true || isZeroSha(rawAfter))
    return { kind: 'ignored', reason: `branch deletion (${branch})` };
  const after = rawAfter.toLowerCase();
  if (!COMMIT_SHA.test(after)) {
    throw new PushgateError('bad_request', 'push payload: after is not a commit sha', { status: 400 });
  }
  return {
    kind: 'push',
    push: { provider: 'github', repository, branch, before, after, deliveryId, pusher: pusherName },
  };
}
