import { createServer, type RequestListener, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RunningServer {
  server: Server;
  /** `http://host:port` as bound (port 0 resolved). */
  url: string;
  /** The address bound: `0.0.0.0`, `::`, `127.0.0.1`... */
  address: string;
  port: number;
  /** Answers not finished yet: those close() marks to end their connections. */
  readonly inFlight: number;
  /** Stops accepting, lets in-flight requests finish (up to `graceMs`), then drops what is left. */
  close(graceMs?: number): Promise<void>;
}

export const DEFAULT_GRACE_MS = 10_000;

export async function listen(handler: RequestListener, host: string, port: number): Promise<RunningServer> {
  let stopping = false;
  // Once close() is called every answer ends its connection (`Connection: close`): else a
  // keep-alive client (a load balancer, a webhook sender) goes on sending on it until the grace
  // runs out and is cut mid-request. In flight: the answers close() has to mark.
  const inFlight = new Set<ServerResponse>();
  // One function for all (no closure per request): this is the hot path of every webhook.
  function answered(this: ServerResponse): void {
    inFlight.delete(this);
  }
  const server = createServer((request, response) => {
    if (stopping) response.setHeader('Connection', 'close');
    else {
      inFlight.add(response);
      response.on('close', answered);
    }
    handler(request, response);
  });
  // An answer queued behind another on a pipelined connection that the client closes never
  // gets a socket, so never emits 'close': its connection's end lets it go instead.
  server.on('connection', (socket) =>
    socket.once('close', () => {
      for (const response of inFlight) if (response.req.socket === socket) inFlight.delete(response);
    }),
  );
  // A client trickling a body must not hold a connection for the default five minutes.
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;
  // Idle keep-alive connections outlive a load balancer's (60 s on ALB and ingress-nginx):
  // closing one first races the balancer's next request on it, which it answers 502.
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  let closing: Promise<void> | undefined;
  return {
    server,
    url: `http://${shownHost}:${address.port}`,
    address: address.address,
    port: address.port,
    get inFlight() {
      return inFlight.size;
    },
    close(graceMs = DEFAULT_GRACE_MS) {
      stopping = true;
      for (const response of inFlight) {
        if (!response.headersSent) response.setHeader('Connection', 'close');
        // Its headers are out already: its connection is let go once it is idle.
        else response.once('close', () => server.closeIdleConnections());
      }
      closing ??= new Promise<void>((resolve) => {
        const timer = setTimeout(() => server.closeAllConnections(), graceMs);
        timer.unref();
        server.close(() => {
          clearTimeout(timer);
          resolve();
        });
        // Keep-alive connections with no request in flight would otherwise hold close() open.
        server.closeIdleConnections();
      });
      return closing;
    },
  };
}
