import type { IncomingMessage } from 'node:http';

/**
 * `server.publicUrl` when set; otherwise the Host the client used, but only when it is a bare
 * host[:port] (a Host header is the client's to choose, it must not smuggle a path or user).
 */
export function publicBase(publicUrl: string | undefined, req: IncomingMessage): string {
  if (publicUrl) return publicUrl.endsWith('/') ? publicUrl : `${publicUrl}/`;
  const host = req.headers.host;
  if (host && /^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/.test(host))
    return `http://${host}/`;
  const address = req.socket.localAddress ?? '127.0.0.1';
  const hostPart = address.includes(':') ? `[${address}]` : address;
  return `http://${hostPart}:${req.socket.localPort ?? 80}/`;
}

export function jobStatusUrl(base: string, jobId: string): string {
  return new URL(`jobs/${encodeURIComponent(jobId)}`, base).toString();
}
