import { createServer, connect, type Socket } from 'node:net';

export interface TcpProxy {
  port: number;
  /** Where new connections go from now on; open ones stay where they are (as DNS or a VIP moves). */
  retarget(port: number): void;
  /**
   * From the first client write after which a connection's recent bytes hold every one of
   * `needles`: that write never reaches the server, every connection is cut and new ones
   * are refused, as if the server went away just then. Resolves when it has.
   */
  cutOn(needles: string[]): Promise<void>;
  close(): Promise<void>;
}

/** Enough for the longest command a test waits for to be seen whole across writes. */
const RECENT_BYTES = 16 * 1024;

/** A loopback TCP forwarder: one stable address in front of a server that can change. */
export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  let target = targetPort;
  const sockets = new Set<Socket>();
  let trigger: { needles: Buffer[]; fired: () => void } | undefined;
  let cut = false;
  const server = createServer((client) => {
    if (cut) {
      client.destroy();
      return;
    }
    const upstream = connect(target, '127.0.0.1');
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    let recent = Buffer.alloc(0);
    client.on('data', (chunk: Buffer) => {
      if (cut) return;
      if (trigger) {
        recent = Buffer.concat([recent, chunk]).subarray(-RECENT_BYTES);
        const { needles, fired } = trigger;
        if (needles.every((needle) => recent.includes(needle))) {
          cutEverything();
          fired();
          return;
        }
      }
      if (!upstream.write(chunk)) {
        client.pause();
        upstream.once('drain', () => client.resume());
      }
    });
    client.on('end', () => upstream.end());
    upstream.pipe(client);
  });
  const cutEverything = (): void => {
    cut = true;
    server.close();
    for (const socket of sockets) socket.destroy();
  };
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('proxy has no port');
  return {
    port: address.port,
    retarget(port) {
      target = port;
    },
    cutOn(needles) {
      return new Promise((resolve) => {
        trigger = { needles: needles.map((needle) => Buffer.from(needle)), fired: resolve };
      });
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      if (cut) return;
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
