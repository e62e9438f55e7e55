import { PushgateError } from '../../lib/errors.js';
import { optionalString, payloadObject, requiredObject, requiredString } from '../payload-fields.js';
import { COMMIT_SHA, isZeroSha, type WebhookEvent } from '../types.js';

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

/**
 * Reads `ref`, `before`, `after`, `user_username`, `user_name` and
 * `project.path_with_namespace`, which names the repository; the URLs in `project` and
 * `repository` are never used.
 */
export function parseGitlabPush(body: unknown, deliveryId: string | undefined): WebhookEvent {
  const push = payloadObject(body);
  const ref = requiredString(push, 'ref');
  const rawAfter = requiredString(push, 'after');
  const before = optionalString(push, 'before');
  const repository = requiredString(
    requiredObject(push, 'project'),
    'path_with_namespace',
    'project.path_with_namespace',
  );
  const pusher = optionalString(push, 'user_username') ?? optionalString(push, 'user_name');
  if (ref.startsWith('refs/tags/')) return { kind: 'ignored', reason: `tag push (${ref})` };
  if (!ref.startsWith(BRANCH_PREFIX)) return { kind: 'ignored', reason: `ref ${ref} is not a branch` };
  const branch = ref.slice(BRANCH_PREFIX.length);
  // GitLab marks a deletion by an all-zero `after`; `deleted: true` is honoured too (SPEC §3).
  if (isZeroSha(rawAfter) || push.deleted === true)
    return { kind: 'ignored', reason: `branch deletion (${branch})` };
  const after = rawAfter.toLowerCase();
  if (!COMMIT_SHA.test(after)) {
    throw new PushgateError('bad_request', 'push payload: after is not a commit sha', { status: 400 });
  }
  return {
    kind: 'push',
    push: { provider: 'gitlab', repository, branch, before, after, deliveryId, pusher },
  };
}
