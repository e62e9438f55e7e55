import { request, type ClientRequest } from 'node:http';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BODY_BYTES_IN_FLIGHT } from '../../src/http/body-budget.js';
import { githubHeaders, githubPush } from '../fixtures/github/payloads.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { GITHUB_REPO, queuedCount, startReceiver, type Receiver } from './receiver-harness.js';

const SECRET = 'github-secret';
/** Under the default server.bodyLimit (5 MiB); six of them hold most of the budget. */
const LARGE_BODY = 5_000_000;

interface RawAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function answerOf(req: ClientRequest): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
  });
}

/** A signed-looking push that declares `declared` bytes, sends one, and waits. */
function slowBody(app: Receiver, declared: number): ClientRequest {
  const url = new URL(app.url);
  const req = request({
    host: url.hostname,
    port: url.port,
    path: '/webhooks/github',
    method: 'POST',
    headers: { ...githubHeaders(SECRET, 'never sent'), 'content-length': String(declared) },
  });
  req.on('error', () => undefined);
  req.write('{');
  return req;
}

function post(app: Receiver, body: string, headers: Record<string, string>): Promise<RawAnswer> {
  const url = new URL(app.url);
  const req = request({
    host: url.hostname,
    port: url.port,
    path: '/webhooks/github',
    method: 'POST',
    headers,
  });
  const answer = answerOf(req);
  req.end(body);
  return answer;
}

function signedPush(padding = 0): { body: string; headers: Record<string, string> } {
  const payload = githubPush({ repository: GITHUB_REPO, branch: 'env/staging' });
  const body = JSON.stringify(padding > 0 ? { ...payload, padding: 'x'.repeat(padding) } : payload);
  return { body, headers: githubHeaders(SECRET, body) };
}

/** Sends `chunk` `count` times without Content-Length, stopping once the server answers. */
function chunkedPost(
  app: Receiver,
  chunk: string,
  count: number,
): Promise<{ status: number; connection?: string }> {
  const url = new URL(app.url);
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        path: '/webhooks/github',
        method: 'POST',
        headers: githubHeaders(SECRET, 'irrelevant'),
      },
      (res) => {
        answered = true;
        res.resume();
        resolve({ status: res.statusCode ?? 0, connection: res.headers.connection });
      },
    );
    req.on('error', (error) => {
      if (!answered) reject(error);
    });
    let sent = 0;
    const next = (): void => {
      if (answered || sent >= count) {
        req.end();
        return;
      }
      sent += 1;
      req.write(chunk, () => setImmediate(next));
    };
    next();
  });
}

async function bodyBytesInFlight(app: Receiver): Promise<number> {
  return (await app.metrics.webhookBodyBytes.get()).values[0]?.value ?? 0;
}

async function waitForBodyBytes(app: Receiver, wanted: number): Promise<void> {
  const deadline = Date.now() + 5_000;
  while ((await bodyBytesInFlight(app)) !== wanted) {
    if (Date.now() > deadline)
      throw new Error(`body bytes in flight stayed ${await bodyBytesInFlight(app)}, not ${wanted}`);
    await delay(10);
  }
}

describe('receiver: the bytes of bodies read at once are bounded (real Redis)', () => {
  let redis: TestRedis;
  let app: Receiver;
  let held: ClientRequest[] = [];

  beforeAll(async () => {
    redis = await startRedis();
  });
  afterEach(async () => {
    for (const req of held) req.destroy();
    held = [];
    await app.close();
  });
  afterAll(async () => {
    await redis.stop();
  });

  it('answers 503 with Retry-After to a body that does not fit, queues nothing, and still takes small pushes', async () => {
    app = await startReceiver(redis.url);
    held = Array.from({ length: 6 }, () => slowBody(app, LARGE_BODY));
    await waitForBodyBytes(app, 6 * LARGE_BODY);

    const refused = await answerOf(slowBody(app, LARGE_BODY));

    expect(refused.status).toBe(503);
    expect(refused.headers['retry-after']).toBe('1');
    expect(refused.headers.connection).toBe('close');
    expect(JSON.parse(refused.body)).toEqual({
      error: `the receiver is reading more request bodies at once than it may hold (${BODY_BYTES_IN_FLIGHT} bytes); retry shortly`,
    });
    expect(await queuedCount(app)).toBe(0);
    const small = signedPush();
    expect((await post(app, small.body, small.headers)).status).toBe(202);
    expect(app.logs.some((line) => line.msg === 'webhook refused' && line.status === 503)).toBe(true);
    const webhooks = await app.metrics.webhooks.get();
    expect(webhooks.values.find((v) => v.labels.outcome === 'busy')?.value).toBe(1);
  });

  it('gives the bytes back when a body is answered or abandoned: a large push fits again', async () => {
    app = await startReceiver(redis.url);
    held = Array.from({ length: 6 }, () => slowBody(app, LARGE_BODY));
    await waitForBodyBytes(app, 6 * LARGE_BODY);
    expect((await answerOf(slowBody(app, LARGE_BODY))).status).toBe(503);

    for (const req of held) req.destroy();
    await waitForBodyBytes(app, 0);

    const large = signedPush(LARGE_BODY - 4_096);
    expect((await post(app, large.body, large.headers)).status).toBe(202);
    await waitForBodyBytes(app, 0);
  });

  it('stops reading a chunked body at the budget: 503, connection closed', async () => {
    app = await startReceiver(redis.url);
    held = Array.from({ length: 6 }, () => slowBody(app, LARGE_BODY));
    await waitForBodyBytes(app, 6 * LARGE_BODY);

    // 4.5 MB: under server.bodyLimit, over what the budget has left (3.5 MB).
    const refused = await chunkedPost(app, 'x'.repeat(64 * 1024), 70);

    expect(refused.status).toBe(503);
    expect(refused.connection).toBe('close');
    await waitForBodyBytes(app, 6 * LARGE_BODY);
  });
});
