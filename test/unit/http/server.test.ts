import { once } from 'node:events';
import { connect } from 'node:net';
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

  it('ends each connection with the answer it gives once stopping, a request in flight included, and stops well before its grace', async () => {
    let arrived: () => void = () => undefined;
    const bodyStarted = new Promise<void>((resolve) => (arrived = resolve));
    running = await listen(
      async (req, res) => {
        arrived();
        for await (const chunk of req) void chunk;
        res.end('ok');
      },
      '127.0.0.1',
      0,
    );
    const socket = connect(running.port, '127.0.0.1');
    await once(socket, 'connect');
    let answer = '';
    socket.on('data', (chunk: Buffer) => (answer += chunk.toString()));
    const ended = once(socket, 'end');
    // Keep-alive, half of the body sent when the server is told to stop.
    socket.write('POST / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\nContent-Length: 4\r\n\r\nab');
    await bodyStarted;
    const closed = running.close(60_000);
    socket.write('cd');

    await ended;
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    expect(answer.toLowerCase()).toContain('connection: close');
    // Closed once that answer is out, not when the 60 s grace runs out.
    await closed;
    socket.destroy();
  });

  it('forgets the answers queued on a pipelined connection that the client closed', async () => {
    running = await listen((_req, res) => void setTimeout(() => res.end('ok'), 20), '127.0.0.1', 0);
    const socket = connect(running.port, '127.0.0.1');
    await once(socket, 'connect');
    socket.write('GET /a HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(3));
    // Gone before the first answer: the two queued behind it never get the socket.
    await new Promise((resolve) => setTimeout(resolve, 5));
    socket.destroy();
    const server = running;
    const deadline = Date.now() + 5_000;
    while (server.inFlight > 0 && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 20));
    expect(server.inFlight).toBe(0);
  });
});
