import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveWorkerMetrics } from '../../src/http/worker-metrics-server.js';
import { createMetrics } from '../../src/lib/metrics.js';
import { githubHeaders, githubPush, randomSha } from '../fixtures/github/payloads.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { GITHUB_REPO, startReceiver, type Receiver } from './receiver-harness.js';

const TOKEN = 'headers-api-token';

let redis: TestRedis;
let app: Receiver;

beforeAll(async () => {
  redis = await startRedis();
  app = await startReceiver(redis.url, { secrets: { apiTokens: [TOKEN] } });
});

afterAll(async () => {
  await app.close();
  await redis.stop();
});

/** `path` on the receiver, or an absolute URL. */
async function answer(path: string, init: RequestInit = {}): Promise<Response> {
  const response = await fetch(path.startsWith('http') ? path : `${app.url}${path}`, init);
  await response.arrayBuffer();
  return response;
}

function expectNotStoredNorSniffed(response: Response, what: string): void {
  expect({ what, cache: response.headers.get('cache-control') }).toEqual({ what, cache: 'no-store' });
  expect({ what, sniff: response.headers.get('x-content-type-options') }).toEqual({ what, sniff: 'nosniff' });
  expect({ what, poweredBy: response.headers.get('x-powered-by') }).toEqual({ what, poweredBy: null });
}

// Job records are live state, and error answers quote the request (`job "<script>…" not
// found`): no shared cache may keep them, no browser may read them as HTML.
describe('response headers of the receiver and the status API', () => {
  it('every answer, express or the lean webhook path, is neither cached nor sniffed', async () => {
    const bearer = { authorization: `Bearer ${TOKEN}` };
    const body = JSON.stringify(
      githubPush({ repository: GITHUB_REPO, branch: 'env/staging', after: randomSha() }),
    );
    const accepted = await fetch(`${app.url}/webhooks/github`, {
      method: 'POST',
      body,
      headers: githubHeaders('github-secret', body),
    });
    expect(accepted.status).toBe(202);
    const { jobs } = (await accepted.json()) as { jobs: { id: string }[] };

    const answers: [string, Response][] = [
      ['webhook 202', accepted],
      ['webhook 401', await answer('/webhooks/github', { method: 'POST', body: '{}' })],
      ['job 200', await answer(`/jobs/${jobs[0]!.id}`, { headers: bearer })],
      ['job 404', await answer('/jobs/%3Cscript%3Ealert(1)%3C%2Fscript%3E', { headers: bearer })],
      ['jobs 400', await answer('/jobs?limit=x', { headers: bearer })],
      ['jobs 401', await answer('/jobs')],
      ['environments 200', await answer('/environments', { headers: bearer })],
      ['no route 404', await answer('/<b>nope</b>')],
      ['healthz', await answer('/healthz')],
      ['metrics', await answer('/metrics', { headers: bearer })],
    ];
    for (const [what, response] of answers) expectNotStoredNorSniffed(response, what);
  });
});

describe("response headers of a worker's metrics port", () => {
  it('answers are neither cached nor sniffed', async () => {
    const server = await serveWorkerMetrics(0, createMetrics(), [TOKEN]);
    try {
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const bearer = { authorization: `Bearer ${TOKEN}` };
      expectNotStoredNorSniffed(await answer(`${base}/metrics`, { headers: bearer }), 'metrics 200');
      expectNotStoredNorSniffed(await answer(`${base}/metrics`), 'metrics 401');
      expectNotStoredNorSniffed(await answer(`${base}/healthz`), 'healthz');
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
