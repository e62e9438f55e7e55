import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  githubExamples,
  githubHeaders,
  githubPush,
  randomSha,
  signGithub,
} from '../fixtures/github/payloads.js';
import {
  GITLAB_SIGNING_TOKEN,
  gitlabFixture,
  gitlabHeaders,
  gitlabPush,
} from '../fixtures/gitlab/payloads.js';
import { startRedis, WEBHOOK_503_WITHIN_MS, type TestRedis } from '../helpers/redis.js';
import {
  GITHUB_REPO,
  GITLAB_PROJECT,
  queuedCount,
  startReceiver,
  type Receiver,
} from './receiver-harness.js';

const SECRET = 'github-secret';

interface Answer {
  status: number;
  body: Record<string, unknown>;
  headers: Headers;
}

async function post(
  receiver: Receiver,
  path: string,
  body: string,
  headers: Record<string, string>,
): Promise<Answer> {
  const response = await fetch(`${receiver.url}${path}`, { method: 'POST', body, headers });
  return {
    status: response.status,
    body: (await response.json()) as Record<string, unknown>,
    headers: response.headers,
  };
}

function sendGithub(
  receiver: Receiver,
  payload: unknown,
  options: { event?: string; deliveryId?: string; secret?: string } = {},
) {
  const body = JSON.stringify(payload);
  return post(receiver, '/webhooks/github', body, githubHeaders(options.secret ?? SECRET, body, options));
}

function jobsOf(answer: Answer): { id: string; environment: string; sha: string; statusUrl: string }[] {
  return answer.body.jobs as { id: string; environment: string; sha: string; statusUrl: string }[];
}

let redis: TestRedis;
const receivers: Receiver[] = [];

async function receiver(options: Parameters<typeof startReceiver>[1] = {}): Promise<Receiver> {
  const started = await startReceiver(redis.url, options);
  receivers.push(started);
  return started;
}

beforeAll(async () => {
  redis = await startRedis();
});

afterAll(async () => {
  await Promise.all(receivers.map((r) => r.close()));
  await redis.stop();
});

describe('GitHub push webhooks', () => {
  it("queues a deploy for GitHub's example push, durably in Redis before the 202", async () => {
    const app = await receiver();
    const payload = githubPush({ repository: GITHUB_REPO, branch: 'env/staging' });
    const answer = await sendGithub(app, payload, { deliveryId: 'delivery-1' });

    expect(answer.status).toBe(202);
    const [job, ...others] = jobsOf(answer);
    expect(others).toEqual([]);
    expect(job).toEqual({
      id: expect.any(String) as string,
      environment: 'staging',
      sha: payload.after,
      statusUrl: `${app.url}/jobs/${job!.id}`,
    });
    const queued = await app.services.queue.getJob(job!.id);
    expect(queued?.data).toMatchObject({
      environment: 'staging',
      trigger: {
        kind: 'webhook',
        provider: 'github',
        deliveryId: 'delivery-1',
        sha: payload.after,
        pusher: 'Codertocat',
      },
      // Where this receiver's configuration sends the push: a worker configured otherwise hands it back.
      target: { branch: 'env/staging', path: '.', cluster: 'local', namespace: 'staging' },
    });
    expect(await app.services.store.get(job!.id)).toMatchObject({ state: 'queued', environment: 'staging' });
  });

  it('queues one job per environment fed by the pushed branch', async () => {
    const app = await receiver();
    const answer = await sendGithub(app, githubPush({ repository: GITHUB_REPO, branch: 'env/production' }));
    expect(answer.status).toBe(202);
    expect(
      jobsOf(answer)
        .map((job) => job.environment)
        .sort(),
    ).toEqual(['production', 'production-eu']);
    expect(await queuedCount(app)).toBe(2);
  });

  it('matches the repository name case-insensitively', async () => {
    const app = await receiver();
    const answer = await sendGithub(
      app,
      githubPush({ repository: GITHUB_REPO.toUpperCase(), branch: 'env/staging' }),
    );
    expect(answer.status).toBe(202);
  });

  it('redelivered webhook returns the same job', async () => {
    const app = await receiver();
    const payload = githubPush({ repository: GITHUB_REPO, branch: 'env/staging' });
    const first = await sendGithub(app, payload, { deliveryId: 'same-delivery' });
    const again = await sendGithub(app, payload, { deliveryId: 'same-delivery' });
    expect(again.status).toBe(202);
    expect(jobsOf(again)).toEqual(jobsOf(first));
    expect(await queuedCount(app)).toBe(1);
  });

  it('a redelivered id with another body answers with its job and that job’s commit, not the body’s', async () => {
    const app = await receiver();
    const first = await sendGithub(app, githubPush({ repository: GITHUB_REPO, branch: 'env/staging' }), {
      deliveryId: 'reused-delivery',
    });
    const again = await sendGithub(app, githubPush({ repository: GITHUB_REPO, branch: 'env/staging' }), {
      deliveryId: 'reused-delivery',
    });
    expect(again.status).toBe(202);
    expect(jobsOf(again)).toEqual(jobsOf(first));
    const record = await app.services.store.get(jobsOf(first)[0]!.id);
    expect(jobsOf(again)[0]!.sha).toBe(record!.trigger.sha);
  });

  it('a second push of the same sha to the same environment returns the queued job', async () => {
    const app = await receiver();
    const after = randomSha();
    const first = await sendGithub(
      app,
      githubPush({ repository: GITHUB_REPO, branch: 'env/staging', after }),
    );
    const second = await sendGithub(
      app,
      githubPush({ repository: GITHUB_REPO, branch: 'env/staging', after }),
    );
    expect(jobsOf(second)[0]!.id).toBe(jobsOf(first)[0]!.id);
    expect(await queuedCount(app)).toBe(1);
  });

  it('a push of the commit a running job caught up to returns that job, naming the pushed commit', async () => {
    const app = await receiver();
    const [job] = jobsOf(
      await sendGithub(app, githubPush({ repository: GITHUB_REPO, branch: 'env/staging' })),
    );
    // The job found the branch moved on and deploys its head, as a worker does.
    const head = randomSha();
    await app.services.store.update(job!.id, { state: 'running', sha: head });

    const push = await sendGithub(
      app,
      githubPush({ repository: GITHUB_REPO, branch: 'env/staging', after: head }),
    );

    expect(jobsOf(push)).toEqual([{ ...job, sha: head }]);
  });

  it('accepts the old and the new secret during a rotation', async () => {
    const app = await receiver({ secrets: { githubWebhookSecrets: ['new-secret', 'old-secret'] } });
    for (const secret of ['old-secret', 'new-secret']) {
      const answer = await sendGithub(app, githubPush({ repository: GITHUB_REPO, branch: 'env/staging' }), {
        secret,
      });
      expect(answer.status).toBe(202);
    }
    expect(await queuedCount(app)).toBe(2);
  });

  it('answers ping with 200', async () => {
    const app = await receiver();
    const answer = await sendGithub(
      app,
      { zen: 'Keep it logically awesome.', hook_id: 1 },
      { event: 'ping' },
    );
    expect(answer.status).toBe(200);
  });

  it('uses server.publicUrl for status URLs when set, and keeps it on the job for the commit status', async () => {
    const app = await receiver({ server: { publicUrl: 'https://deploy.example.com/pushgate' } });
    const answer = await sendGithub(app, githubPush({ repository: GITHUB_REPO, branch: 'env/staging' }));
    const [job] = jobsOf(answer);
    expect(job!.statusUrl).toBe(`https://deploy.example.com/pushgate/jobs/${job!.id}`);
    expect(await app.services.store.get(job!.id)).toMatchObject({ statusUrl: job!.statusUrl });
  });

  it('answers with a status URL on the Host used, but keeps no Host-made link for the commit status', async () => {
    const app = await receiver();
    const body = JSON.stringify(githubPush({ repository: GITHUB_REPO, branch: 'env/staging' }));
    const answer = await rawRequest(app, '/webhooks/github', body, {
      ...githubHeaders(SECRET, body),
      host: 'phish.example',
    });
    const [job] = (JSON.parse(answer.body) as { jobs: { statusUrl: string; id: string }[] }).jobs;
    expect(job!.statusUrl).toBe(`http://phish.example/jobs/${job!.id}`);
    const record = await app.services.store.get(job!.id);
    expect(record).not.toBeNull();
    expect(record).not.toHaveProperty('statusUrl');
  });

  it('never takes the status URL host from a Host header that carries a path', async () => {
    const app = await receiver();
    const body = JSON.stringify(githubPush({ repository: GITHUB_REPO, branch: 'env/staging' }));
    const port = new URL(app.url).port;
    const answer = await rawRequest(app, '/webhooks/github', body, {
      ...githubHeaders(SECRET, body),
      host: 'evil.example/x?',
    });
    expect(answer.status).toBe(202);
    const [job] = (JSON.parse(answer.body) as { jobs: { statusUrl: string; id: string }[] }).jobs;
    expect(job!.statusUrl).toBe(`http://127.0.0.1:${port}/jobs/${job!.id}`);
  });

  it('logs each webhook with its provider and delivery id, and an accepted one a line per job with its id', async () => {
    const app = await receiver();
    const sha = randomSha();
    // env/production feeds two environments: one line for each job.
    const push = githubPush({ repository: GITHUB_REPO, branch: 'env/production', after: sha });
    const accepted = await sendGithub(app, push, { deliveryId: 'delivery-logged' });
    const body = JSON.stringify(push);
    await post(app, '/webhooks/github', body, {
      ...githubHeaders(SECRET, body, { deliveryId: 'delivery-forged' }),
      'x-hub-signature-256': signGithub('guessed-secret', body),
    });

    const lines = (deliveryId: string) => app.logs.filter((line) => line.deliveryId === deliveryId);
    const acceptedLines = lines('delivery-logged').filter((line) => line.msg === 'webhook accepted');
    const jobs = jobsOf(accepted);
    expect(jobs).toHaveLength(2);
    expect(acceptedLines).toHaveLength(2);
    for (const job of jobs) {
      expect(acceptedLines).toContainEqual(
        expect.objectContaining({
          level: 'info',
          provider: 'github',
          repository: GITHUB_REPO,
          branch: 'env/production',
          sha,
          jobId: job.id,
          environment: job.environment,
          created: true,
        }),
      );
    }
    expect(lines('delivery-forged')).toContainEqual(
      expect.objectContaining({
        level: 'warn',
        msg: 'webhook rejected: signature or token did not verify',
        provider: 'github',
        reason: 'mismatch',
      }),
    );
  });
});

describe('ignored deliveries: 200 with the reason, nothing queued', () => {
  it('branch deletion', async () => {
    const app = await receiver();
    const payload = {
      ...githubPush({ repository: GITHUB_REPO, branch: 'env/staging' }),
      after: '0'.repeat(40),
      deleted: true,
    };
    const answer = await sendGithub(app, payload);
    expect(answer).toMatchObject({ status: 200, body: { ignored: 'branch deletion (env/staging)' } });
    expect(await queuedCount(app)).toBe(0);
  });

  it("tag push (GitHub's example)", async () => {
    const app = await receiver();
    const tag = githubExamples('push').find(
      (example) => example.ref === 'refs/tags/simple-tag' && example.deleted === false,
    )!;
    (tag.repository as Record<string, unknown>).full_name = GITHUB_REPO;
    const answer = await sendGithub(app, tag);
    expect(answer).toMatchObject({ status: 200, body: { ignored: 'tag push (refs/tags/simple-tag)' } });
    expect(await queuedCount(app)).toBe(0);
  });

  it('an event of another kind', async () => {
    const app = await receiver();
    const issue = githubExamples('issues')[0];
    const answer = await sendGithub(app, issue, { event: 'issues' });
    expect(answer).toMatchObject({ status: 200, body: { ignored: 'event "issues" is not a push' } });
    expect(await queuedCount(app)).toBe(0);
  });

  it('a push that matches no environment', async () => {
    const app = await receiver();
    const answer = await sendGithub(app, githubPush({ repository: 'acme/other', branch: 'env/staging' }));
    expect(answer).toMatchObject({
      status: 200,
      body: { ignored: 'no environment is configured for github acme/other branch env/staging' },
    });
    const wrongBranch = await sendGithub(app, githubPush({ repository: GITHUB_REPO, branch: 'main' }));
    expect(wrongBranch.status).toBe(200);
    expect(await queuedCount(app)).toBe(0);
  });
});

describe('bad input', () => {
  it('missing signature: 401, nothing queued, nothing revealed', async () => {
    const app = await receiver();
    const body = JSON.stringify(githubPush({ repository: GITHUB_REPO, branch: 'env/staging' }));
    const { 'x-hub-signature-256': _signature, ...headers } = githubHeaders(SECRET, body);
    const answer = await post(app, '/webhooks/github', body, headers);
    expect(answer).toEqual(
      expect.objectContaining({
        status: 401,
        body: { error: 'invalid or missing webhook signature or token' },
      }),
    );
    expect(await queuedCount(app)).toBe(0);
  });

  it('wrong signature: 401, the same answer, and neither secret nor signature in the logs', async () => {
    const app = await receiver();
    const body = JSON.stringify(githubPush({ repository: GITHUB_REPO, branch: 'env/staging' }));
    const forged = signGithub('guessed-secret', body);
    const answer = await post(app, '/webhooks/github', body, {
      ...githubHeaders(SECRET, body),
      'x-hub-signature-256': forged,
    });
    expect(answer).toMatchObject({
      status: 401,
      body: { error: 'invalid or missing webhook signature or token' },
    });
    expect(await queuedCount(app)).toBe(0);
    expect(app.logText()).not.toContain(SECRET);
    expect(app.logText()).not.toContain(forged.slice('sha256='.length));
  });

  it('no secret configured for the provider: 401 and a log line saying so', async () => {
    const app = await receiver({ secrets: { githubWebhookSecrets: [] } });
    const answer = await sendGithub(app, githubPush({ repository: GITHUB_REPO, branch: 'env/staging' }));
    expect(answer).toMatchObject({
      status: 401,
      body: { error: 'invalid or missing webhook signature or token' },
    });
    expect(app.logs.some((line) => String(line.msg).includes('no github webhook secret is configured'))).toBe(
      true,
    );
    expect(await queuedCount(app)).toBe(0);
  });

  it('body over server.bodyLimit (Content-Length): 413 before the body is read', async () => {
    const app = await receiver({ server: { bodyLimit: '1kb' } });
    const payload = {
      ...githubPush({ repository: GITHUB_REPO, branch: 'env/staging' }),
      padding: 'x'.repeat(2048),
    };
    const answer = await sendGithub(app, payload);
    expect(answer.status).toBe(413);
    expect(answer.body.error).toMatch(/larger than server\.bodyLimit/);
    expect(await queuedCount(app)).toBe(0);
  });

  it('chunked body over server.bodyLimit: 413, reading stops at the limit', async () => {
    const app = await receiver({ server: { bodyLimit: '1kb' } });
    const answer = await chunkedRequest(
      app,
      '/webhooks/github',
      'x'.repeat(512),
      64,
      githubHeaders(SECRET, 'irrelevant'),
    );
    expect(answer.status).toBe(413);
    expect(answer.connection).toBe('close');
  });

  it('not JSON: 400 with the reason', async () => {
    const app = await receiver();
    const body = '{"ref": "refs/heads/env/staging",';
    const answer = await post(app, '/webhooks/github', body, githubHeaders(SECRET, body));
    expect(answer.status).toBe(400);
    expect(answer.body.error).toMatch(/^body is not JSON/);
  });

  it('a signed body that is not UTF-8: verified over its raw bytes, then 400, nothing queued', async () => {
    const app = await receiver();
    const body = Buffer.concat([
      Buffer.from('{"ref": "refs/heads/env/staging", "x": "'),
      Buffer.from([0xff]),
      Buffer.from('"}'),
    ]);
    const headers = { ...githubHeaders(SECRET, ''), 'x-hub-signature-256': signGithub(SECRET, body) };
    const response = await fetch(`${app.url}/webhooks/github`, { method: 'POST', body, headers });
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({ error: 'body is not UTF-8 (JSON must be)' });
    const forged = { ...headers, 'x-hub-signature-256': signGithub('guessed-secret', body) };
    expect(
      (await fetch(`${app.url}/webhooks/github`, { method: 'POST', body, headers: forged })).status,
    ).toBe(401);
    expect(await queuedCount(app)).toBe(0);
  });

  for (const field of ['ref', 'after', 'repository'] as const) {
    it(`a push without ${field}: 400 naming it`, async () => {
      const app = await receiver();
      const payload = githubPush({ repository: GITHUB_REPO, branch: 'env/staging' });
      delete payload[field];
      const answer = await sendGithub(app, payload);
      expect(answer).toMatchObject({ status: 400, body: { error: `push payload: ${field} is required` } });
      expect(await queuedCount(app)).toBe(0);
    });
  }

  it('refuses a delivery id longer than 200 characters (it would be kept as a Redis key), queuing nothing', async () => {
    const app = await receiver();
    const push = githubPush({ repository: GITHUB_REPO, branch: 'env/staging' });
    const overlong = await sendGithub(app, push, { deliveryId: 'd'.repeat(201) });
    expect(overlong).toMatchObject({
      status: 400,
      body: { error: 'X-GitHub-Delivery: longer than 200 characters' },
    });
    expect(await queuedCount(app)).toBe(0);
    expect((await sendGithub(app, push, { deliveryId: 'd'.repeat(200) })).status).toBe(202);
  });

  it('unknown routes and malformed URLs answer JSON without a stack trace', async () => {
    const app = await receiver();
    const missing = await fetch(`${app.url}/nowhere`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ error: 'no route for GET /nowhere' });
    // A route asked with the wrong method says which one it takes.
    const wrongMethod = await fetch(`${app.url}/webhooks/github`);
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.get('allow')).toBe('POST, OPTIONS');
    expect(await wrongMethod.json()).toEqual({ error: 'GET is not allowed on /webhooks/github: use POST' });
    const deleteJobs = await fetch(`${app.url}/jobs`, { method: 'DELETE' });
    expect([deleteJobs.status, deleteJobs.headers.get('allow')]).toEqual([405, 'GET, HEAD, OPTIONS']);
    // OPTIONS names the methods, with no body (express's own answer is a plain-text list).
    for (const [path, allow] of [
      ['/webhooks/gitlab', 'POST, OPTIONS'],
      ['/jobs/some-id', 'GET, HEAD, OPTIONS'],
      ['/environments/staging/sync', 'POST, OPTIONS'],
    ]) {
      const options = await fetch(`${app.url}${path}`, { method: 'OPTIONS' });
      expect([options.status, options.headers.get('allow'), await options.text()], path).toEqual([
        204,
        allow,
        '',
      ]);
    }
    expect((await fetch(`${app.url}/nowhere`, { method: 'OPTIONS' })).status).toBe(404);
    // As the routers match a path (GET /jobs/ is GET /jobs), so do OPTIONS and a wrong method.
    for (const [path, allow] of [
      ['/jobs/', 'GET, HEAD, OPTIONS'],
      ['/environments/staging/', 'GET, HEAD, OPTIONS'],
      ['/environments/staging/sync/', 'POST, OPTIONS'],
      ['/Webhooks/GitHub/', 'POST, OPTIONS'],
    ]) {
      const options = await fetch(`${app.url}${path}`, { method: 'OPTIONS' });
      expect([options.status, options.headers.get('allow'), await options.text()], path).toEqual([
        204,
        allow,
        '',
      ]);
      const wrong = await fetch(`${app.url}${path}`, { method: 'DELETE' });
      expect([wrong.status, wrong.headers.get('allow')], path).toEqual([405, allow]);
      await wrong.arrayBuffer();
    }
    const malformed = await fetch(`${app.url}/jobs/%E0%A4%A`);
    expect(malformed.status).toBe(400);
    const text = await malformed.text();
    expect(JSON.parse(text)).toHaveProperty('error');
    expect(text).not.toMatch(/at .*\.js/);
    expect(missing.headers.get('x-powered-by')).toBeNull();
  });
});

describe('GitLab push webhooks', () => {
  const push = (after = randomSha()) =>
    JSON.stringify(gitlabPush({ project: GITLAB_PROJECT, branch: 'env/staging', after }));

  it('queues the documented Push Hook verified by X-Gitlab-Token', async () => {
    const app = await receiver();
    const body = push();
    const answer = await post(
      app,
      '/webhooks/gitlab',
      body,
      gitlabHeaders({ token: 'gitlab-token', idempotencyKey: 'key-1' }),
    );
    expect(answer.status).toBe(202);
    const [job] = jobsOf(answer);
    expect(job!.environment).toBe('gl-staging');
    const queued = await app.services.queue.getJob(job!.id);
    expect(queued?.data.trigger).toMatchObject({ provider: 'gitlab', deliveryId: 'key-1', pusher: 'jsmith' });
  });

  it('redelivery with the same Idempotency-Key returns the same job', async () => {
    const app = await receiver();
    const first = await post(
      app,
      '/webhooks/gitlab',
      push(),
      gitlabHeaders({ token: 'gitlab-token', idempotencyKey: 'retry-me' }),
    );
    // A retry after the branch moved on still carries the original event's key.
    const again = await post(
      app,
      '/webhooks/gitlab',
      push(),
      gitlabHeaders({ token: 'gitlab-token', idempotencyKey: 'retry-me' }),
    );
    expect(jobsOf(again)[0]!.id).toBe(jobsOf(first)[0]!.id);
    expect(await queuedCount(app)).toBe(1);
  });

  it('falls back to X-Gitlab-Event-UUID as the delivery id', async () => {
    const app = await receiver();
    const { 'idempotency-key': _key, ...headers } = gitlabHeaders({ token: 'gitlab-token' });
    const answer = await post(app, '/webhooks/gitlab', push(), headers);
    const queued = await app.services.queue.getJob(jobsOf(answer)[0]!.id);
    expect(queued?.data.trigger.deliveryId).toBe(headers['x-gitlab-event-uuid']);
  });

  it('accepts the old and the new token during a rotation, constant-time, and refuses others with 401', async () => {
    const app = await receiver({ secrets: { gitlabWebhookTokens: ['new-token', 'old-token'] } });
    for (const token of ['old-token', 'new-token']) {
      expect((await post(app, '/webhooks/gitlab', push(), gitlabHeaders({ token }))).status).toBe(202);
    }
    const wrong = await post(app, '/webhooks/gitlab', push(), gitlabHeaders({ token: 'old-token-' }));
    expect(wrong).toMatchObject({
      status: 401,
      body: { error: 'invalid or missing webhook signature or token' },
    });
    expect(await queuedCount(app)).toBe(2);
    expect(app.logText()).not.toContain('new-token');
  });

  it('accepts a Standard Webhooks signature made with the signing token', async () => {
    const app = await receiver({
      secrets: { gitlabWebhookTokens: [], gitlabSigningTokens: [GITLAB_SIGNING_TOKEN] },
    });
    const body = push();
    const answer = await post(
      app,
      '/webhooks/gitlab',
      body,
      gitlabHeaders({ signingToken: GITLAB_SIGNING_TOKEN, body }),
    );
    expect(answer.status).toBe(202);
  });

  it('refuses a signature whose timestamp is more than five minutes old', async () => {
    const app = await receiver({
      secrets: { gitlabWebhookTokens: [], gitlabSigningTokens: [GITLAB_SIGNING_TOKEN] },
    });
    const body = push();
    const timestamp = Math.floor(Date.now() / 1000) - 301;
    const answer = await post(
      app,
      '/webhooks/gitlab',
      body,
      gitlabHeaders({ signingToken: GITLAB_SIGNING_TOKEN, body, timestamp }),
    );
    expect(answer.status).toBe(401);
    expect(await queuedCount(app)).toBe(0);
  });

  it('ignores the documented Tag Push Hook and a branch deletion', async () => {
    const app = await receiver();
    const tag = JSON.stringify(gitlabFixture('tag-push'));
    const tagAnswer = await post(
      app,
      '/webhooks/gitlab',
      tag,
      gitlabHeaders({ token: 'gitlab-token', event: 'Tag Push Hook' }),
    );
    expect(tagAnswer).toMatchObject({ status: 200, body: { ignored: 'tag push' } });
    const deletion = gitlabFixture('branch-deletion');
    (deletion.project as Record<string, unknown>).path_with_namespace = GITLAB_PROJECT;
    deletion.ref = 'refs/heads/env/staging';
    const deletionAnswer = await post(
      app,
      '/webhooks/gitlab',
      JSON.stringify(deletion),
      gitlabHeaders({ token: 'gitlab-token' }),
    );
    expect(deletionAnswer).toMatchObject({ status: 200, body: { ignored: 'branch deletion (env/staging)' } });
    expect(await queuedCount(app)).toBe(0);
  });

  it('a GitLab push to a GitHub environment’s repository name does not match', async () => {
    const app = await receiver();
    const body = JSON.stringify(
      gitlabPush({ project: GITHUB_REPO, branch: 'env/staging', after: randomSha() }),
    );
    const answer = await post(app, '/webhooks/gitlab', body, gitlabHeaders({ token: 'gitlab-token' }));
    expect(answer.status).toBe(200);
    expect(await queuedCount(app)).toBe(0);
  });
});

describe('metrics', () => {
  it('counts webhooks by provider and outcome', async () => {
    const app = await receiver();
    await sendGithub(app, githubPush({ repository: GITHUB_REPO, branch: 'env/staging' }));
    await sendGithub(app, githubPush({ repository: GITHUB_REPO, branch: 'env/staging' }), {
      secret: 'wrong',
    });
    const text = await (await fetch(`${app.url}/metrics`)).text();
    expect(text).toContain('pushgate_webhooks_total{provider="github",outcome="queued"} 1');
    expect(text).toContain('pushgate_webhooks_total{provider="github",outcome="unauthorized"} 1');
    expect(text).toContain('pushgate_queue_depth{state="waiting"} 1');
    expect(text).toContain('pushgate_jobs{state="queued"} 1');
  });
});

describe('a fault that is not an outage', () => {
  it('answers 500 (not 503, which the sender would retry for good) and counts it as an error', async () => {
    const app = await receiver();
    const push = githubPush({ repository: GITHUB_REPO, branch: 'env/staging' });
    const [job] = jobsOf(await sendGithub(app, push, { deliveryId: 'delivery-corrupt' }));
    await app.services.redis.set(app.services.keys.job(job!.id), 'not json');

    const again = await sendGithub(app, push, { deliveryId: 'delivery-corrupt' });

    expect(again.status).toBe(500);
    expect(again.body).toEqual({ error: 'internal error' });
    const text = await (await fetch(`${app.url}/metrics`)).text();
    expect(text).toContain('pushgate_webhooks_total{provider="github",outcome="error"} 1');
  });
});

describe('when Redis goes away', () => {
  let own: TestRedis;
  beforeAll(async () => {
    own = await startRedis();
  });
  afterAll(async () => {
    await own.stop();
  });

  it('answers webhooks 503 at once (its command timeout) and /readyz 503, and accepts again once Redis is back', async () => {
    const app = await startReceiver(own.url);
    receivers.push(app);
    expect((await fetch(`${app.url}/readyz`)).status).toBe(200);

    await own.kill();
    const started = Date.now();
    const down = await sendGithub(app, githubPush({ repository: GITHUB_REPO, branch: 'env/staging' }));
    expect(down.status).toBe(503);
    expect(Date.now() - started).toBeLessThan(WEBHOOK_503_WITHIN_MS);
    expect((await fetch(`${app.url}/readyz`)).status).toBe(503);
    const metrics = await (await fetch(`${app.url}/metrics`)).text();
    expect(metrics).toContain('pushgate_webhooks_total{provider="github",outcome="unavailable"} 1');

    await own.restart();
    await pollUntil(async () => (await fetch(`${app.url}/readyz`)).status === 200, 10_000);
    const back = await sendGithub(app, githubPush({ repository: GITHUB_REPO, branch: 'env/staging' }));
    expect(back.status).toBe(202);
    expect(await app.services.queue.getJob(jobsOf(back)[0]!.id)).toBeDefined();
  });

  it('answers webhooks 503 after its command timeout when Redis hangs (answers nothing) rather than refuses', async () => {
    const app = await startReceiver(own.url);
    receivers.push(app);
    expect((await fetch(`${app.url}/readyz`)).status).toBe(200);

    const resume = own.hang();
    try {
      for (const provider of ['github', 'gitlab'] as const) {
        const started = Date.now();
        const down =
          provider === 'github'
            ? await sendGithub(app, githubPush({ repository: GITHUB_REPO, branch: 'env/staging' }))
            : await post(
                app,
                '/webhooks/gitlab',
                JSON.stringify(
                  gitlabPush({ project: GITLAB_PROJECT, branch: 'env/staging', after: randomSha() }),
                ),
                gitlabHeaders({ token: 'gitlab-token' }),
              );
        expect(down.status, provider).toBe(503);
        expect(Date.now() - started, provider).toBeLessThan(WEBHOOK_503_WITHIN_MS);
      }
      expect((await fetch(`${app.url}/readyz`)).status).toBe(503);
    } finally {
      resume();
    }
    await pollUntil(async () => (await fetch(`${app.url}/readyz`)).status === 200, 10_000);
    const back = await sendGithub(app, githubPush({ repository: GITHUB_REPO, branch: 'env/staging' }));
    expect(back.status).toBe(202);
  });
});

async function pollUntil(check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function rawRequest(
  app: Receiver,
  path: string,
  body: string,
  headers: Record<string, string>,
): Promise<{ status: number; body: string }> {
  const url = new URL(app.url);
  return new Promise((resolve, reject) => {
    const req = request(
      { host: url.hostname, port: url.port, path, method: 'POST', headers, setHost: false },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Sends `chunk` over and over without Content-Length until the server answers. */
function chunkedRequest(
  app: Receiver,
  path: string,
  chunk: string,
  maxChunks: number,
  headers: Record<string, string>,
): Promise<{ status: number; connection: string | undefined }> {
  const url = new URL(app.url);
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = request({ host: url.hostname, port: url.port, path, method: 'POST', headers }, (res) => {
      answered = true;
      res.resume();
      resolve({ status: res.statusCode ?? 0, connection: res.headers.connection });
    });
    req.on('error', (error) => {
      if (!answered) reject(error);
    });
    let sent = 0;
    const next = (): void => {
      if (answered || sent >= maxChunks) {
        req.end();
        return;
      }
      sent += 1;
      req.write(chunk, () => setImmediate(next));
    };
    next();
  });
}
