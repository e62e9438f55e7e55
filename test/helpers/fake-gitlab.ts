import { startFakeProvider, type FakeProvider } from './fake-github.js';

/**
 * GitLab's commit status API, as documented: `POST /api/v4/projects/:id/statuses/:sha`
 * (`:id` the URL-encoded project path) answers 201 with the status object.
 */
export function startFakeGitlab(): Promise<FakeProvider> {
  let nextId = 1;
  return startFakeProvider((request, res) => {
    const match = /^\/api\/v4\/projects\/([^/]+)\/statuses\/([0-9a-f]{40})$/.exec(request.path);
    if (request.method !== 'POST' || !match) {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"message":"404 Not found"}');
      return;
    }
    const body = request.body as Record<string, string | undefined>;
    const id = nextId++;
    res.writeHead(201, { 'content-type': 'application/json' }).end(
      JSON.stringify({
        id,
        sha: match[2],
        ref: body.ref ?? null,
        status: body.state,
        name: body.name ?? body.context ?? 'default',
        target_url: body.target_url ?? null,
        description: body.description ?? null,
        created_at: new Date().toISOString(),
        started_at: null,
        finished_at: null,
        allow_failure: false,
        coverage: null,
        pipeline_id: 1,
        author: { id: 1, username: 'pushgate-bot', name: 'pushgate' },
      }),
    );
  });
}
