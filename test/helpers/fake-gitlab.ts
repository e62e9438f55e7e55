import type { ServerResponse } from 'node:http';
import { startFakeProvider, type FakeProvider } from './fake-github.js';

type GitlabStatus = 'created' | 'pending' | 'running' | 'success' | 'failed' | 'canceled';

/** lib/api/commit_statuses.rb: each posted state is an event of the status state machine. */
const EVENTS: Record<string, { event: string; from: GitlabStatus[]; to: GitlabStatus }> = {
  pending: { event: 'enqueue', from: ['created'], to: 'pending' },
  // `running` is `enqueue` (quietly refused unless created) then `run!` from pending.
  running: { event: 'run', from: ['created', 'pending'], to: 'running' },
  success: { event: 'success', from: ['created', 'pending', 'running'], to: 'success' },
  failed: { event: 'drop', from: ['created', 'pending', 'running'], to: 'failed' },
  canceled: { event: 'cancel', from: ['created', 'pending', 'running'], to: 'canceled' },
};

/**
 * GitLab's commit status API, as documented: `POST /api/v4/projects/:id/statuses/:sha`
 * (`:id` the URL-encoded project path) answers 201 with the status object. Like GitLab it
 * refuses a request without `PRIVATE-TOKEN` (401), a state it does not know (400), a
 * `target_url` over 255 characters (400), and a transition its state machine does not allow
 * (400 "Cannot transition status via :enqueue from :pending"), per (sha, name, ref): a new
 * status starts `created` unless one is pending or running. GitLab picks a branch when `ref`
 * is missing; pushgate always sends one, so this fake requires it (400).
 */
export function startFakeGitlab(): Promise<FakeProvider> {
  let nextId = 1;
  const open = new Map<string, GitlabStatus>();
  const json = (res: ServerResponse, status: number, body: unknown): void => {
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  };
  return startFakeProvider((request, res) => {
    const match = /^\/api\/v4\/projects\/([^/]+)\/statuses\/([0-9a-f]{40})$/.exec(request.path);
    if (request.method !== 'POST' || !match) return json(res, 404, { message: '404 Not found' });
    if (!request.headers['private-token']) return json(res, 401, { message: '401 Unauthorized' });
    const body = request.body as Record<string, string | undefined>;
    const transition = EVENTS[body.state ?? ''];
    if (!transition) return json(res, 400, { error: 'state does not have a valid value' });
    if (!body.ref) return json(res, 400, { error: 'ref is missing (this fake requires it)' });
    if ((body.target_url ?? '').length > 255)
      return json(res, 400, { message: { target_url: ['is too long (maximum is 255 characters)'] } });
    const name = body.name ?? body.context ?? 'default';
    const key = `${match[1]}@${match[2]}#${name}@${body.ref}`;
    const current = open.get(key) ?? 'created';
    if (!transition.from.includes(current))
      return json(res, 400, {
        message: `Cannot transition status via :${transition.event} from :${current}`,
      });
    if (transition.to === 'pending' || transition.to === 'running') open.set(key, transition.to);
    else open.delete(key);
    const id = nextId++;
    json(res, 201, {
      id,
      sha: match[2],
      ref: body.ref,
      status: transition.to,
      name,
      target_url: body.target_url ?? null,
      description: body.description ?? null,
      created_at: new Date().toISOString(),
      started_at: null,
      finished_at: null,
      allow_failure: false,
      coverage: null,
      pipeline_id: 1,
      author: { id: 1, username: 'pushgate-bot', name: 'pushgate' },
    });
  });
}
