import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { githubHeaders, githubPush } from '../fixtures/github/payloads.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { GITHUB_REPO, queuedCount, startReceiver, type Receiver } from './receiver-harness.js';

const SECRET = 'github-secret';
const FORM = 'application/x-www-form-urlencoded';

let redis: TestRedis;
let app: Receiver;

beforeAll(async () => {
  redis = await startRedis();
  app = await startReceiver(redis.url);
});

afterAll(async () => {
  await app.close();
  await redis.stop();
});

/** A GitHub delivery with the webhook's content type set to `application/x-www-form-urlencoded`. */
async function postForm(body: string, signedBody = body): Promise<{ status: number; body: unknown }> {
  const headers = { ...githubHeaders(SECRET, signedBody), 'content-type': FORM };
  const response = await fetch(`${app.url}/webhooks/github`, { method: 'POST', body, headers });
  return { status: response.status, body: await response.json() };
}

describe('GitHub form-encoded deliveries', () => {
  it('queues the push carried in the payload field, verified over the encoded body', async () => {
    const push = githubPush({ repository: GITHUB_REPO, branch: 'env/staging' });
    const body = new URLSearchParams({ payload: JSON.stringify(push) }).toString();

    const answer = await postForm(body);

    expect(answer.status).toBe(202);
    const [job] = (answer.body as { jobs: { id: string; environment: string; sha: string }[] }).jobs;
    expect(job).toMatchObject({ environment: 'staging', sha: push.after });
    expect(await app.services.queue.getJob(job!.id)).toBeDefined();
  });

  it('refuses a form body signed as something else with 401', async () => {
    const push = githubPush({ repository: GITHUB_REPO, branch: 'env/staging' });
    const before = await queuedCount(app);
    const answer = await postForm(new URLSearchParams({ payload: JSON.stringify(push) }).toString(), '{}');
    expect(answer.status).toBe(401);
    expect(await queuedCount(app)).toBe(before);
  });

  it('answers 400 naming the missing payload field', async () => {
    const answer = await postForm('other=1');
    expect(answer).toEqual({ status: 400, body: { error: 'form-encoded body has no "payload" field' } });
  });
});

describe('encoded deliveries', () => {
  it('answers 415 to a gzip body, naming the encoding, and queues nothing', async () => {
    const body = gzipSync(JSON.stringify(githubPush({ repository: GITHUB_REPO, branch: 'env/staging' })));
    const before = await queuedCount(app);

    const response = await fetch(`${app.url}/webhooks/github`, {
      method: 'POST',
      body,
      headers: { ...githubHeaders(SECRET, body.toString('latin1')), 'content-encoding': 'gzip' },
    });

    expect(response.status).toBe(415);
    expect(await response.json()).toEqual({
      error: 'Content-Encoding "gzip" is not supported: send the body unencoded, as GitHub and GitLab do',
    });
    expect(await queuedCount(app)).toBe(before);
  });
});
