import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { githubHeaders, githubPush, randomSha } from '../fixtures/github/payloads.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { GITHUB_REPO, startReceiver, type Receiver } from './receiver-harness.js';

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

async function get(
  app: Receiver,
  path: string,
  token?: string,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${app.url}${path}`, {
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** The status of a GET sent with this Host header (fetch cannot set one). */
function statusWithHost(base: string, path: string, host: string, token?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(`${base}${path}`, {
      headers: { host, ...(token ? { authorization: `Bearer ${token}` } : {}) },
    });
    request.on('response', (response) => {
      response.resume();
      resolve(response.statusCode ?? 0);
    });
    request.on('error', reject);
    request.end();
  });
}

/** A job made the way production makes them: a signed push through the receiver. */
async function pushJob(app: Receiver, branch = 'env/staging'): Promise<string> {
  const body = JSON.stringify(githubPush({ repository: GITHUB_REPO, branch, after: randomSha() }));
  const response = await fetch(`${app.url}/webhooks/github`, {
    method: 'POST',
    body,
    headers: githubHeaders('github-secret', body),
  });
  expect(response.status).toBe(202);
  const { jobs } = (await response.json()) as { jobs: { id: string }[] };
  return jobs[0]!.id;
}

describe('GET /jobs/:id', () => {
  it('answers the job as SPEC §5 shows it, message null while it has none, as GET /jobs lists it', async () => {
    const app = await receiver();
    const id = await pushJob(app);
    const { status, body } = await get(app, `/jobs/${id}`);
    expect(status).toBe(200);
    expect(Object.keys(body).sort()).toEqual(
      [
        'attempts',
        'environment',
        'error',
        'finishedAt',
        'id',
        'message',
        'receivedAt',
        'resources',
        'sha',
        'startedAt',
        'state',
        'trigger',
      ].sort(),
    );
    expect(body).toMatchObject({
      id,
      environment: 'staging',
      state: 'queued',
      attempts: 0,
      resources: [],
      error: null,
      message: null,
    });
    expect(body.trigger).toMatchObject({ kind: 'webhook', provider: 'github', pusher: 'Codertocat' });
    const listed = await get(app, '/jobs?environment=staging');
    expect((listed.body.jobs as Record<string, unknown>[]).find((job) => job.id === id)).toEqual(body);
  });

  it('answers 404 for an unknown job', async () => {
    const app = await receiver();
    expect(await get(app, '/jobs/no-such-job')).toEqual({
      status: 404,
      body: { error: 'job "no-such-job" not found' },
    });
  });
});

describe('GET /jobs', () => {
  it('lists jobs newest first, filtered by environment and state, limited', async () => {
    // A clock a second apart per request, so "newest first" never rests on a millisecond tie.
    let clock = Date.now();
    const app = await receiver({ now: () => (clock += 1_000) });
    const first = await pushJob(app, 'env/staging');
    const second = await pushJob(app, 'env/staging');
    await pushJob(app, 'env/production');
    await app.services.store.update(first, { state: 'succeeded', finishedAt: new Date().toISOString() });

    const staging = await get(app, '/jobs?environment=staging');
    expect((staging.body.jobs as { id: string }[]).map((job) => job.id)).toEqual([second, first]);
    const succeeded = await get(app, '/jobs?state=succeeded');
    expect((succeeded.body.jobs as { id: string }[]).map((job) => job.id)).toEqual([first]);
    const one = await get(app, '/jobs?limit=1');
    expect(one.body.jobs).toHaveLength(1);
    const all = await get(app, '/jobs');
    expect(all.body.jobs).toHaveLength(4);
  });

  it('refuses an unknown state or environment and a limit outside 1..500 with 400', async () => {
    const app = await receiver();
    expect(await get(app, '/jobs?state=done')).toEqual({
      status: 400,
      body: { error: 'state: must be one of queued, running, succeeded, failed, superseded' },
    });
    expect(await get(app, '/jobs?environment=nope')).toEqual({
      status: 400,
      body: { error: 'environment: unknown environment "nope"' },
    });
    const outOfRange = { status: 400, body: { error: 'limit: must be a whole number from 1 to 500' } };
    expect(await get(app, '/jobs?limit=501')).toEqual(outOfRange);
    expect(await get(app, '/jobs?limit=0')).toEqual(outOfRange);
    expect(await get(app, '/jobs?limit=-1')).toEqual(outOfRange);
    expect(await get(app, '/jobs?limit=ten')).toEqual(outOfRange);
    expect(await get(app, '/jobs?state=queued&state=failed')).toEqual({
      status: 400,
      body: { error: 'state: give it once (one value per request)' },
    });
    // A misspelt filter is refused, not ignored (which would answer every job).
    for (const [query, name] of [
      ['env=staging', 'env'],
      ['status=failed', 'status'],
      ['environment[]=staging', 'environment[]'],
    ]) {
      expect(await get(app, `/jobs?${query}`)).toEqual({
        status: 400,
        body: { error: `query: unknown parameter "${name}" (known: environment, state, limit)` },
      });
    }
  });

  it('defaults the limit to 20', async () => {
    const app = await receiver();
    for (let i = 0; i < 21; i += 1) {
      await app.services.producer.enqueue('staging', {
        kind: 'webhook',
        provider: 'github',
        deliveryId: `d-${i}`,
        sha: randomSha(),
      });
    }
    expect((await get(app, '/jobs')).body.jobs).toHaveLength(20);
  });
});

describe('environments', () => {
  it('GET /environments shows every environment with its last applied commit and newest job', async () => {
    const app = await receiver();
    const id = await pushJob(app, 'env/staging');
    const appliedAt = new Date().toISOString();
    await app.services.store.update(id, { state: 'succeeded', finishedAt: appliedAt, sha: 'a'.repeat(40) });
    await app.services.store.recordFinished('staging', id, { sha: 'a'.repeat(40), at: appliedAt });

    const { status, body } = await get(app, '/environments');
    expect(status).toBe(200);
    const environments = body.environments as Record<string, unknown>[];
    expect(environments.map((environment) => environment.name)).toEqual([
      'staging',
      'production',
      'production-eu',
      'gl-staging',
    ]);
    expect(environments[0]).toEqual({
      name: 'staging',
      branch: 'env/staging',
      cluster: 'local',
      lastAppliedSha: 'a'.repeat(40),
      lastAppliedAt: appliedAt,
      lastJob: { id, state: 'succeeded', sha: 'a'.repeat(40), finishedAt: appliedAt },
      suspended: null,
    });
    expect(environments[1]).toMatchObject({
      name: 'production',
      lastAppliedSha: null,
      lastAppliedAt: null,
      lastJob: null,
    });
  });

  it('GET /environments reads each newest job up to its object list only', async () => {
    const app = await receiver();
    const id = await pushJob(app, 'env/staging');
    const finishedAt = new Date().toISOString();
    const resources = Array.from({ length: 2_000 }, (_, i) => ({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      namespace: 'apps',
      name: `config-${i}`,
      action: 'unchanged' as const,
    }));
    await app.services.store.update(id, { state: 'succeeded', finishedAt, sha: 'b'.repeat(40), resources });
    const calls = async (command: string) => {
      const stats = await app.services.redis.info('commandstats');
      return Number(new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(stats)?.[1] ?? 0);
    };
    const readsBefore = (await calls('get')) + (await calls('mget'));

    const { status, body } = await get(app, '/environments');

    expect(status).toBe(200);
    expect((body.environments as Record<string, unknown>[])[0]?.lastJob).toEqual({
      id,
      state: 'succeeded',
      sha: 'b'.repeat(40),
      finishedAt,
    });
    // Every record whole (MGET, GET) would be ~200 KB for this one environment alone.
    expect((await calls('get')) + (await calls('mget'))).toBe(readsBefore);
  });

  it('shows, for a newest job that was superseded, the job that took its place: its failure is not hidden', async () => {
    const app = await receiver();
    const { store, producer } = app.services;
    const sha = 'c'.repeat(40);
    const deploying = await pushJob(app, 'env/staging');
    await store.update(deploying, { state: 'running', sha, startedAt: new Date().toISOString() });
    // A sync queued meanwhile finds its commit being deployed by that job, and applies nothing.
    const later = new Date(Date.now() + 60_000).toISOString();
    const { id: synced } = await producer.enqueue('staging', { kind: 'manual' }, later);
    await store.update(synced, {
      state: 'superseded',
      finishedAt: later,
      supersededBy: sha,
      message: `superseded by job ${deploying}, which deploys this commit (${sha})`,
    });
    const failedAt = new Date(Date.now() + 120_000).toISOString();
    await store.update(deploying, { state: 'failed', finishedAt: failedAt, error: 'workloads not ready' });
    // One whose successor is no longer known is shown as it is.
    const { id: orphan } = await producer.enqueue('production', { kind: 'manual' }, later);
    await store.update(orphan, { state: 'superseded', finishedAt: later, supersededBy: 'd'.repeat(40) });

    const fleet = (await get(app, '/environments')).body.environments as Record<string, unknown>[];
    const one = await get(app, '/environments/staging');

    const tried = { id: deploying, state: 'failed', sha, finishedAt: failedAt };
    expect(fleet.find((environment) => environment.name === 'staging')?.lastJob).toEqual(tried);
    expect(one.body.lastJob).toEqual(tried);
    expect((one.body.jobs as { id: string }[]).map((job) => job.id)).toEqual([synced, deploying]);
    expect(fleet.find((environment) => environment.name === 'production')?.lastJob).toEqual({
      id: orphan,
      state: 'superseded',
      sha: null,
      finishedAt: later,
    });
  });

  it('GET /environments/:name adds its recent jobs; 404 for an unknown one', async () => {
    const app = await receiver();
    const id = await pushJob(app, 'env/production');
    const { status, body } = await get(app, '/environments/production');
    expect(status).toBe(200);
    expect(body).toMatchObject({
      name: 'production',
      branch: 'env/production',
      lastJob: { id, state: 'queued', finishedAt: null },
    });
    expect((body.jobs as { id: string }[]).map((job) => job.id)).toEqual([id]);
    expect(await get(app, '/environments/nope')).toEqual({
      status: 404,
      body: { error: 'environment "nope" not found' },
    });
  });

  it('POST /environments/:name/sync queues a manual deploy of the branch head', async () => {
    const app = await receiver();
    const response = await fetch(`${app.url}/environments/production/sync`, { method: 'POST' });
    expect(response.status).toBe(202);
    const { jobs } = (await response.json()) as {
      jobs: { id: string; environment: string; statusUrl: string }[];
    };
    expect(jobs).toEqual([
      { id: jobs[0]!.id, environment: 'production', statusUrl: `${app.url}/jobs/${jobs[0]!.id}` },
    ]);
    const queued = await app.services.queue.getJob(jobs[0]!.id);
    expect(queued?.data).toMatchObject({ environment: 'production', trigger: { kind: 'manual' } });
    // SPEC §5's trigger shape holds for every job: fields a manual sync has no value for are null.
    const shown = await get(app, `/jobs/${jobs[0]!.id}`);
    expect((shown.body as { trigger: unknown }).trigger).toEqual({
      kind: 'manual',
      provider: null,
      deliveryId: null,
      sha: null,
      pusher: null,
    });
    const unknown = await fetch(`${app.url}/environments/nope/sync`, { method: 'POST' });
    expect(unknown.status).toBe(404);
  });

  it('ten POST /environments/:name/sync at once queue one job, each answered 202 with it', async () => {
    const app = await receiver();

    const answers = await Promise.all(
      Array.from({ length: 10 }, () => fetch(`${app.url}/environments/production/sync`, { method: 'POST' })),
    );
    const bodies = await Promise.all(answers.map((answer): Promise<unknown> => answer.json()));

    expect(answers.map((answer) => answer.status)).toEqual(Array(10).fill(202));
    const [first] = bodies as [{ jobs: [{ id: string }] }];
    const id = first.jobs[0].id;
    for (const body of bodies)
      expect(body).toEqual({ jobs: [{ id, environment: 'production', statusUrl: `${app.url}/jobs/${id}` }] });
    expect(await app.services.store.list({ environment: 'production', limit: 20 })).toHaveLength(1);
    expect(await app.services.queue.count()).toBe(1);
    expect(await app.services.store.get(id)).toMatchObject({ state: 'queued', trigger: { kind: 'manual' } });
  });

  it('a sync once the job has started queues a new one; a resume queues its own, which later syncs join', async () => {
    const app = await receiver();
    const sync = async (route = 'sync') => {
      const answer = await fetch(`${app.url}/environments/production/${route}`, { method: 'POST' });
      expect(answer.status).toBe(202);
      return ((await answer.json()) as { jobs: { id: string }[] }).jobs[0]!.id;
    };
    const first = await sync();
    // The worker's part: it takes the job (then fetches the branch head).
    await app.services.store.update(first, {
      state: 'running',
      attempts: 1,
      startedAt: new Date().toISOString(),
    });

    const second = await sync();
    const resumed = await sync('resume');
    const third = await sync();

    expect(second).not.toBe(first);
    expect(resumed).not.toBe(second);
    expect(third).toBe(resumed);
  });

  it('a sync of a suspended environment is still refused (409), and queues nothing', async () => {
    const app = await receiver();
    const waiting = await fetch(`${app.url}/environments/production/sync`, { method: 'POST' });
    expect(waiting.status).toBe(202);
    const suspended = await fetch(`${app.url}/environments/production/suspend`, { method: 'POST' });
    expect(suspended.status).toBe(200);

    const refused = await fetch(`${app.url}/environments/production/sync`, { method: 'POST' });

    expect(refused.status).toBe(409);
    expect(await app.services.store.list({ environment: 'production', limit: 20 })).toHaveLength(1);
  });
});

describe('parameters and bodies the environment routes do not take', () => {
  async function post(app: Receiver, path: string, body?: string) {
    const response = await fetch(`${app.url}${path}`, {
      method: 'POST',
      ...(body === undefined ? {} : { body }),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  }

  it('are refused with 400 naming them, and nothing is queued, rather than ignored', async () => {
    const app = await receiver();
    const none = '(this route takes none)';
    expect(await get(app, '/environments?environment=nope')).toEqual({
      status: 400,
      body: { error: `query: unknown parameter "environment" ${none}` },
    });
    expect(await get(app, '/environments/production?state=failed')).toEqual({
      status: 400,
      body: { error: 'query: unknown parameter "state" (known: limit)' },
    });
    const refusals: [string, string | undefined, string][] = [
      ['/environments/production/sync?force=true', undefined, `query: unknown parameter "force" ${none}`],
      [
        '/environments/production/sync',
        '{"ref": "abc"}',
        'unknown field "ref": sync takes no body: it deploys the branch head',
      ],
      [
        '/environments/production/sync',
        'abc',
        'sync takes no body: it deploys the branch head (3 bytes sent)',
      ],
      [
        '/environments/production/resume',
        '{"reason": "x", "wait": true}',
        'unknown fields "reason", "wait": resume takes no body: it deploys the branch head',
      ],
      ['/environments/production/resume?wait=1', undefined, `query: unknown parameter "wait" ${none}`],
      ['/environments/production/suspend?reason=x', undefined, `query: unknown parameter "reason" ${none}`],
    ];
    for (const [path, sent, error] of refusals) {
      const answer = await post(app, path, sent);
      expect({ path, sent, ...answer }).toEqual({ path, sent, status: 400, body: { error } });
    }
    expect(await app.services.store.list({ environment: 'production', limit: 10 })).toEqual([]);
    expect((await get(app, '/environments/production')).body.suspended).toBeNull();
  });

  it('GET /environments/:name takes limit, as GET /jobs does; sync takes an empty body or {}', async () => {
    const app = await receiver();
    const first = await post(app, '/environments/production/sync', '');
    expect(first.status).toBe(202);
    // Started, so the next sync is a job of its own rather than this one.
    const [{ id }] = first.body.jobs as [{ id: string }];
    await app.services.store.update(id, { state: 'running', attempts: 1 });
    expect((await post(app, '/environments/production/sync', ' {} ')).status).toBe(202);

    expect(((await get(app, '/environments/production?limit=1')).body.jobs as unknown[]).length).toBe(1);
    expect(((await get(app, '/environments/production')).body.jobs as unknown[]).length).toBe(2);
    expect(await get(app, '/environments/production?limit=0')).toEqual({
      status: 400,
      body: { error: 'limit: must be a whole number from 1 to 500' },
    });
  });

  it('error answers say what was wrong: the path, the body, its size', async () => {
    const app = await receiver();
    expect(await get(app, '/jobs/%ZZ')).toEqual({
      status: 400,
      body: { error: 'malformed percent-encoding in the path' },
    });
    const notAnObject = 'the body must be a JSON object: {"reason": "…"}';
    for (const body of ['null', '42', '"x"'])
      expect(await post(app, '/environments/production/suspend', body), body).toEqual({
        status: 400,
        body: { error: notAnObject },
      });
    const tooLarge = {
      status: 413,
      body: { error: 'the body is larger than 4 kB, the most this route takes' },
    };
    const reason = JSON.stringify({ reason: 'x'.repeat(5_000) });
    expect(await post(app, '/environments/production/suspend', reason)).toEqual(tooLarge);
    expect(await post(app, '/environments/production/sync', reason)).toEqual(tooLarge);
    expect((await get(app, '/environments/production')).body.suspended).toBeNull();
  });

  it('names ten unknown parameters at most, and how many more there are', async () => {
    const app = await receiver();
    const query = Array.from({ length: 1_000 }, (_, i) => `p${i}=1`).join('&');
    const shown = Array.from({ length: 10 }, (_, i) => `"p${i}"`).join(', ');
    expect(await get(app, `/jobs?${query}`)).toEqual({
      status: 400,
      body: { error: `query: unknown parameters ${shown} and 990 more (known: environment, state, limit)` },
    });
  });
});

describe('API token', () => {
  it('guards every status route with any of the configured bearer tokens', async () => {
    const app = await receiver({ secrets: { apiTokens: ['token-new', 'token-old'] } });
    for (const path of ['/jobs', '/jobs/x', '/environments', '/environments/staging', '/metrics']) {
      const anonymous = await fetch(`${app.url}${path}`);
      expect(anonymous.status, path).toBe(401);
      expect(anonymous.headers.get('www-authenticate')).toBe('Bearer realm="pushgate"');
      const wrong = await fetch(`${app.url}${path}`, { headers: { authorization: 'Bearer token-ne' } });
      expect(wrong.status, path).toBe(401);
    }
    expect((await get(app, '/jobs', 'token-new')).status).toBe(200);
    expect((await get(app, '/environments', 'token-old')).status).toBe(200);
    const sync = await fetch(`${app.url}/environments/staging/sync`, { method: 'POST' });
    expect(sync.status).toBe(401);
    expect(await app.services.queue.count()).toBe(0);
  });

  it('opens /metrics, and nothing else, to a metrics-only token, so a scrape cannot suspend or sync', async () => {
    const app = await receiver({ secrets: { apiTokens: ['api-token'], metricsTokens: ['scrape-token'] } });
    expect(
      (await fetch(`${app.url}/metrics`, { headers: { authorization: 'Bearer scrape-token' } })).status,
    ).toBe(200);
    expect(
      (await fetch(`${app.url}/metrics`, { headers: { authorization: 'Bearer api-token' } })).status,
    ).toBe(200);
    const anonymous = await fetch(`${app.url}/metrics`);
    expect(anonymous.status).toBe(401);
    expect(await anonymous.json()).toEqual({
      error:
        'a valid bearer token is required (Authorization: Bearer <PUSHGATE_METRICS_TOKEN or PUSHGATE_API_TOKEN>)',
    });
    for (const path of ['/jobs', '/environments', '/environments/staging'])
      expect((await get(app, path, 'scrape-token')).status, path).toBe(401);
    const sync = await fetch(`${app.url}/environments/staging/sync`, {
      method: 'POST',
      headers: { authorization: 'Bearer scrape-token' },
    });
    expect(sync.status).toBe(401);
    expect(await app.services.queue.count()).toBe(0);
  });

  it('closes /metrics with a metrics token alone, while the status API stays open', async () => {
    const app = await receiver({ secrets: { metricsTokens: ['scrape-token'] } });
    expect((await fetch(`${app.url}/metrics`)).status).toBe(401);
    expect(
      (await fetch(`${app.url}/metrics`, { headers: { authorization: 'Bearer scrape-token' } })).status,
    ).toBe(200);
    expect((await get(app, '/environments')).status).toBe(200);
  });

  it('refuses what a web page of another site sends, and on loopback without a token any Host but localhost or an IP', async () => {
    const app = await receiver(); // 127.0.0.1, no API token: the open API of a workstation
    const ownHost = new URL(app.url).host;
    // A page elsewhere posting as a form would: no preflight, so nothing but the server stops it.
    const suspend = await fetch(`${app.url}/environments/production/suspend`, {
      method: 'POST',
      headers: { origin: 'https://evil.example', 'content-type': 'text/plain' },
      body: '{"reason":"x"}',
    });
    expect(suspend.status).toBe(403);
    expect(await suspend.json()).toEqual({
      error:
        'cross-origin request refused (Origin "https://evil.example"): the status API takes no requests from web pages of other sites',
    });
    const sandboxed = await fetch(`${app.url}/environments/staging/sync`, {
      method: 'POST',
      headers: { origin: 'null' },
    });
    expect(sandboxed.status).toBe(403);
    expect(await app.services.store.suspensions.get('production')).toBeNull();
    expect(await app.services.queue.count()).toBe(0);
    // Clients that send no Origin (curl, the CLI) and the server's own origin are served.
    const own = await fetch(`${app.url}/environments/staging/sync`, {
      method: 'POST',
      headers: { origin: `http://${ownHost}` },
    });
    expect(own.status).toBe(202);

    // A page whose name now resolves to 127.0.0.1 (DNS rebinding) names itself as Host.
    const port = new URL(app.url).port;
    expect(await statusWithHost(app.url, '/jobs', `rebind.example:${port}`)).toBe(403);
    for (const host of [`localhost:${port}`, ownHost, `[::1]:${port}`])
      expect(await statusWithHost(app.url, '/jobs', host), host).toBe(200);
    // With a token the name does not matter: the token is what a page cannot send.
    const guarded = await receiver({ secrets: { apiTokens: ['token'] } });
    expect(await statusWithHost(guarded.url, '/jobs', 'pushgate.internal', 'token')).toBe(200);
    // Behind a proxy that passes another Host on, server.publicUrl's origin is the server's own.
    const proxied = await receiver({ server: { publicUrl: 'https://pushgate.example.com/' } });
    const fromPublicOrigin = await fetch(`${proxied.url}/environments/staging/sync`, {
      method: 'POST',
      headers: { origin: 'https://pushgate.example.com' },
    });
    expect(fromPublicOrigin.status).toBe(202);
  });

  it('leaves /healthz, /readyz and the webhooks open', async () => {
    const app = await receiver({ secrets: { apiTokens: ['token'] } });
    expect(await get(app, '/healthz')).toEqual({ status: 200, body: { status: 'ok' } });
    expect(await get(app, '/readyz')).toEqual({ status: 200, body: { status: 'ready' } });
    await pushJob(app);
  });
});

describe('GET /metrics', () => {
  it('exports webhooks, jobs by state, the deploy duration histogram and the queue depth', async () => {
    const app = await receiver();
    const id = await pushJob(app);
    await pushJob(app);
    await app.services.store.update(id, { state: 'failed', finishedAt: new Date().toISOString() });
    const response = await fetch(`${app.url}/metrics`);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await response.text();
    expect(text).toContain('pushgate_webhooks_total{provider="github",outcome="queued"} 2');
    expect(text).toContain('pushgate_jobs{state="queued"} 1');
    expect(text).toContain('pushgate_jobs{state="failed"} 1');
    expect(text).toContain('pushgate_queue_depth{state="waiting"} 2');
    expect(text).toContain('# TYPE pushgate_deploy_duration_seconds histogram');
  });

  it("says which environments' last deploy to end failed, until one of theirs succeeds, in the order they ended", async () => {
    const app = await receiver();
    const failing = async (environment: string) => {
      const text = await (await fetch(`${app.url}/metrics`)).text();
      return new RegExp(`^pushgate_environment_failing\\{environment="${environment}"\\} (\\d)$`, 'm').exec(
        text,
      )?.[1];
    };
    const finish = (id: string, state: 'failed' | 'succeeded' | 'superseded') =>
      app.services.store.finish(id, { state, finishedAt: new Date().toISOString() });
    expect(await failing('staging')).toBe('0');

    await finish(await pushJob(app), 'failed');
    expect(await failing('staging')).toBe('1');
    expect(await failing('production')).toBe('0');
    // Still failing while the next push waits or runs, and when it was overtaken.
    const next = await pushJob(app);
    expect(await failing('staging')).toBe('1');
    await finish(next, 'superseded');
    expect(await failing('staging')).toBe('1');
    // Jobs end in another order than they came (a re-sync runs behind pushes): the last to end decides.
    const earlier = await pushJob(app);
    const later = await pushJob(app);
    await finish(later, 'failed');
    await finish(earlier, 'succeeded');
    expect(await failing('staging')).toBe('0');
    await finish(await pushJob(app, 'env/production'), 'failed');
    expect(await failing('production')).toBe('1');
    expect(await failing('staging')).toBe('0');
  });
});
