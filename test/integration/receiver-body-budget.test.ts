import { request, type ClientRequest } from 'node:http';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BODY_BYTES_IN_FLIGHT } from '../../src/http/body-budget.js';
import { githubHeaders, githubPush } from '../fixtures/github/payloads.js';
import { gitlabHeaders } from '../fixtures/gitlab/payloads.js';
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

/** A post that sends `bytes` of a body it declares longer, and waits: the receiver holds them. */
function heldBody(
  app: Receiver,
  bytes: number,
  declared = bytes + 1,
  options: { path?: string; headers?: Record<string, string> } = {},
): ClientRequest {
  const url = new URL(app.url);
  const req = request({
    host: url.hostname,
    port: url.port,
    path: options.path ?? '/webhooks/github',
    method: 'POST',
    headers: {
      ...(options.headers ?? githubHeaders(SECRET, 'never finished')),
      'content-length': String(declared),
    },
  });
  req.on('error', () => undefined);
  req.write('x'.repeat(bytes));
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

/**
 * Sends `chunk` `count` times (with a Content-Length for all of them when `declare`, else
 * chunked), stopping once the server answers.
 */
function sendUntilAnswered(
  app: Receiver,
  chunk: string,
  count: number,
  declare: boolean,
): Promise<RawAnswer> {
  const url = new URL(app.url);
  const headers: Record<string, string> = githubHeaders(SECRET, 'irrelevant');
  if (declare) headers['content-length'] = String(chunk.length * count);
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = request(
      { host: url.hostname, port: url.port, path: '/webhooks/github', method: 'POST', headers },
      (res) => {
        answered = true;
        let body = '';
        res.setEncoding('utf8').on('data', (text: string) => (body += text));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on('error', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', (error) => {
      if (!answered) reject(error);
    });
    let sent = 0;
    const next = (): void => {
      if (answered || sent >= count) {
        if (!answered) req.end();
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

let redis: TestRedis;

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis.stop();
});

describe('receiver: the bytes of bodies read at once are bounded (real Redis)', () => {
  let app: Receiver;
  let held: ClientRequest[] = [];

  afterEach(async () => {
    for (const req of held) req.destroy();
    held = [];
    await app.close();
  });

  /** Six bodies of 5 MB held: 30 of the 33.5 MB the receiver may hold. */
  async function holdSix(): Promise<void> {
    held = Array.from({ length: 6 }, () => heldBody(app, LARGE_BODY));
    await waitForBodyBytes(app, 6 * LARGE_BODY);
  }
  // 4.5 MB: under server.bodyLimit, over what the budget has left.
  const CHUNK = 'x'.repeat(64 * 1024);
  const CHUNKS = 70;

  it('answers 503 with Retry-After to a body that stops fitting, queues nothing, and still takes small pushes', async () => {
    app = await startReceiver(redis.url);
    await holdSix();

    const refused = await sendUntilAnswered(app, CHUNK, CHUNKS, true);

    expect(refused.status).toBe(503);
    expect(refused.headers['retry-after']).toBe('1');
    expect(refused.headers.connection).toBe('close');
    expect(JSON.parse(refused.body)).toEqual({
      error: `the receiver is reading more request bodies at once than it may hold (${BODY_BYTES_IN_FLIGHT} bytes); retry shortly`,
    });
    await waitForBodyBytes(app, 6 * LARGE_BODY);
    expect(await queuedCount(app)).toBe(0);
    const small = signedPush();
    expect((await post(app, small.body, small.headers)).status).toBe(202);
    expect(app.logs.some((line) => line.msg === 'webhook refused' && line.status === 503)).toBe(true);
    const webhooks = await app.metrics.webhooks.get();
    expect(webhooks.values.find((v) => v.labels.outcome === 'busy')?.value).toBe(1);
  });

  it('stops reading a chunked body at the budget too', async () => {
    app = await startReceiver(redis.url);
    await holdSix();

    const refused = await sendUntilAnswered(app, CHUNK, CHUNKS, false);

    expect(refused.status).toBe(503);
    expect(refused.headers.connection).toBe('close');
    await waitForBodyBytes(app, 6 * LARGE_BODY);
  });

  it('counts what arrives, not what Content-Length declares: a sender cannot hold the budget with headers', async () => {
    app = await startReceiver(redis.url);
    // 100 MB declared, 20 bytes sent.
    held = Array.from({ length: 20 }, () => heldBody(app, 1, LARGE_BODY));
    await waitForBodyBytes(app, 20);
    const large = signedPush(LARGE_BODY - 4_096);

    expect((await post(app, large.body, large.headers)).status).toBe(202);
  });

  it('gives the bytes back when a body is answered or abandoned: a large push fits again', async () => {
    app = await startReceiver(redis.url);
    await holdSix();

    for (const req of held) req.destroy();
    await waitForBodyBytes(app, 0);

    const large = signedPush(LARGE_BODY - 4_096);
    expect((await post(app, large.body, large.headers)).status).toBe(202);
    await waitForBodyBytes(app, 0);
  });
});

describe('receiver: a delivery its headers refuse is answered before its body is read (real Redis)', () => {
  let app: Receiver;

  beforeAll(async () => {
    app = await startReceiver(redis.url);
  });
  afterAll(async () => {
    await app.close();
  });

  const { 'x-hub-signature-256': _signature, ...unsigned } = githubHeaders(SECRET, 'body');
  it.each([
    ['GitHub, no signature', '/webhooks/github', unsigned],
    ['GitHub, a malformed signature', '/webhooks/github', { ...unsigned, 'x-hub-signature-256': 'sha1=abc' }],
    ['GitLab, a wrong token', '/webhooks/gitlab', gitlabHeaders({ token: 'not-the-token' })],
    ['GitLab, no token', '/webhooks/gitlab', gitlabHeaders()],
  ])('%s: 401 while the body is still unsent, the connection closed', async (_what, path, headers) => {
    // 5 MB declared, one byte sent: only an answer that needs no body can come back.
    const req = heldBody(app, 1, LARGE_BODY, { path, headers });
    try {
      const answer = await answerOf(req);

      expect(answer.status).toBe(401);
      expect(JSON.parse(answer.body)).toEqual({ error: 'invalid or missing webhook signature or token' });
      expect(answer.headers.connection).toBe('close');
      expect(await queuedCount(app)).toBe(0);
    } finally {
      req.destroy();
    }
  });
});
