import type { IncomingMessage } from 'node:http';

let lastPublicUrl: { configured: string; base: string } | undefined;

/** `server.publicUrl` as a base: parsed once (not per request), without query or fragment, ending in `/`. */
export function publicUrlBase(publicUrl: string): string {
  if (lastPublicUrl?.configured !== publicUrl) {
    const url = new URL(publicUrl);
    url.search = '';
    url.hash = '';
    if (!url.pathname.endsWith('/')) url.pathname += '/';
    lastPublicUrl = { configured: publicUrl, base: url.href };
  }
  return lastPublicUrl.base;
}

/**
 * The absolute base, ending in `/`, of the status URLs in an answer: `server.publicUrl` when
 * set; otherwise the Host the client used, but only when it is a bare host[:port] (a Host
 * header is the client's to choose, it must not smuggle a path or user).
 */
export function publicBase(publicUrl: string | undefined, req: IncomingMessage): string {
  if (publicUrl) return publicUrlBase(publicUrl);
  const host = req.headers.host;
  if (host && /^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/.test(host))
    return `http://${host.toLowerCase()}/`;
  const address = req.socket.localAddress ?? '127.0.0.1';
  const hostPart = address.includes(':') ? `[${address}]` : address;
  return `http://${hostPart}:${req.socket.localPort ?? 80}/`;
}

/**
 * `base` is what `publicBase` returns, so joining is concatenation: a WHATWG URL parse per
 * job cost more than the rest of building the answer.
 */
export function jobStatusUrl(base: string, jobId: string): string {
  return `${base}jobs/${encodeURIComponent(jobId)}`;
}
