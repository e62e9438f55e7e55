import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { githubHeaders, githubPush, randomSha } from '../fixtures/github/payloads.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { GITHUB_REPO, startReceiver, type Receiver } from './receiver-harness.js';

let redis: TestRedis;
const receivers: Receiver[] = [];

async function receiver(redisUrl = redis.url): Promise<Receiver> {
  const started = await startReceiver(redisUrl);
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

async function get(app: Receiver, path: string): Promise<{ status: number; body: unknown }> {
  const response = await fetch(`${app.url}${path}`);
  return { status: response.status, body: await response.json() };
}

async function pushJob(app: Receiver): Promise<string> {
  const body = JSON.stringify(
    githubPush({ repository: GITHUB_REPO, branch: 'env/staging', after: randomSha() }),
  );
  const response = await fetch(`${app.url}/webhooks/github`, {
    method: 'POST',
    body,
    headers: githubHeaders('github-secret', body),
  });
  expect(response.status).toBe(202);
  const { jobs } = (await response.json()) as { jobs: { id: string }[] };
  return jobs[0]!.id;
}

describe('status API faults', () => {
  it('a job record that is not JSON answers 500 (a fault), not 503 (an outage to retry)', async () => {
    const app = await receiver();
    const id = await pushJob(app);
    await app.services.redis.set(app.services.keys.job(id), 'not json');

    for (const path of [`/jobs/${id}`, '/jobs', '/environments', '/environments/staging']) {
      expect({ path, ...(await get(app, path)) }).toEqual({
        path,
        status: 500,
        body: { error: 'internal error' },
      });
    }
    expect(app.logs.some((line) => line.msg === 'request failed' && line.level === 'error')).toBe(true);
    // Redis itself answers: the receiver is ready.
    expect((await fetch(`${app.url}/readyz`)).status).toBe(200);
  });

  it("a key kept beside a job record (a redelivered job's mark) is not served as a job", async () => {
    const app = await receiver();
    const body = JSON.stringify(
      githubPush({ repository: GITHUB_REPO, branch: 'env/staging', after: randomSha() }),
    );
    const headers = githubHeaders('github-secret', body);
    const ids: string[] = [];
    for (let delivery = 0; delivery < 2; delivery++) {
      const response = await fetch(`${app.url}/webhooks/github`, { method: 'POST', body, headers });
      ids.push(((await response.json()) as { jobs: { id: string }[] }).jobs[0]!.id);
    }
    expect(ids[1]).toBe(ids[0]);
    expect(await app.services.redis.exists(`${app.services.keys.job(ids[0]!)}:shared`)).toBe(1);

    expect((await get(app, `/jobs/${ids[0]!}:shared`)).status).toBe(404);
  });

  it('answers 503 while Redis is unreachable', async () => {
    const own = await startRedis();
    try {
      const app = await receiver(own.url);
      const id = await pushJob(app);
      await own.kill();

      for (const path of [`/jobs/${id}`, '/jobs', '/environments', '/environments/staging']) {
        expect({ path, ...(await get(app, path)) }).toEqual({
          path,
          status: 503,
          body: { error: 'the job store (Redis) is unavailable' },
        });
      }
    } finally {
      await own.stop();
    }
  });
});
