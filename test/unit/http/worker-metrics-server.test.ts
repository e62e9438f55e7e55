import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { createMetrics } from '../../../src/lib/metrics.js';
import { serveWorkerMetrics } from '../../../src/http/worker-metrics-server.js';

let server: Server | undefined;

afterEach(async () => {
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
});

async function start(apiTokens: string[]): Promise<string> {
  const metrics = createMetrics();
  metrics.jobsFinished.inc({ environment: 'production', state: 'succeeded' });
  server = await serveWorkerMetrics(0, metrics, apiTokens);
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe("a worker's metrics port", () => {
  it('serves the deploy metrics this worker counted', async () => {
    const base = await start([]);
    const answer = await fetch(`${base}/metrics`);
    expect(answer.status).toBe(200);
    expect(await answer.text()).toContain(
      'pushgate_jobs_finished_total{environment="production",state="succeeded"} 1',
    );
  });

  it('asks for the API token on /metrics when one is set, as the receiver does, but not on /healthz', async () => {
    const base = await start(['old-token', 'new-token']);
    const anonymous = await fetch(`${base}/metrics`);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toBe('Bearer realm="pushgate"');
    expect(await anonymous.text()).not.toContain('pushgate_jobs_finished_total');
    const wrong = await fetch(`${base}/metrics`, { headers: { authorization: 'Bearer nope' } });
    expect(wrong.status).toBe(401);
    const allowed = await fetch(`${base}/metrics?x=1`, { headers: { authorization: 'Bearer old-token' } });
    expect(allowed.status).toBe(200);
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
  });

  it('answers 404 with a JSON error for anything else', async () => {
    const base = await start([]);
    const answer = await fetch(`${base}/jobs`);
    expect(answer.status).toBe(404);
    expect(await answer.json()).toEqual({ error: 'not found' });
  });
});
