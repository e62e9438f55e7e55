import { afterEach, describe, expect, it } from 'vitest';
import { listen, type RunningServer } from '../../../src/http/server.js';

let running: RunningServer | undefined;

afterEach(async () => {
  await running?.close(0);
  running = undefined;
});

describe('the HTTP server', () => {
  it('keeps idle keep-alive connections longer than a load balancer does (60 s), so it never closes one first', async () => {
    running = await listen((_req, res) => res.end('ok'), '127.0.0.1', 0);
    expect(running.server.keepAliveTimeout).toBeGreaterThan(60_000);
    // A slow or stalled client still loses its connection quickly.
    expect(running.server.headersTimeout).toBeLessThanOrEqual(10_000);
    expect((await fetch(running.url)).status).toBe(200);
  });
});
