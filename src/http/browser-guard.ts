import { isIP } from 'node:net';
import type { RequestHandler } from 'express';
import { isLoopbackAddress } from './endpoints.js';
import { sendError } from './errors.js';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * The status API serves scripts, the CLI and dashboards, never web pages of other sites. A
 * page can send a POST anywhere without asking first (a form, or `fetch` with `no-cors`), and
 * without an API token such a POST would sync or suspend environments; browsers name the
 * page's origin on it, so an `Origin` that is not this server is refused. A receiver that
 * listens on loopback without a token also answers only to `localhost` or an IP address: a page
 * whose own name was pointed at 127.0.0.1 (DNS rebinding) sends its name as `Host`.
 */
export function browserGuard(
  listenHost: string,
  apiTokens: readonly string[],
  /** `server.publicUrl`: its origin is this server's too, whatever `Host` a proxy passes on. */
  publicUrl?: string,
): RequestHandler {
  const loopbackWithoutToken =
    apiTokens.length === 0 && (listenHost === 'localhost' || isLoopbackAddress(listenHost));
  const publicHost = publicUrl ? new URL(publicUrl).host : undefined;
  return (req, res, next) => {
    const host = req.headers.host ?? '';
    const origin = req.headers.origin;
    const own = (candidate: string) => sameHost(candidate, host) || sameHost(candidate, publicHost ?? '');
    if (origin !== undefined && !SAFE_METHODS.has(req.method) && !own(origin)) {
      sendError(
        res,
        403,
        `cross-origin request refused (Origin ${JSON.stringify(origin.slice(0, 200))}): the status API takes no requests from web pages of other sites`,
      );
      return;
    }
    if (loopbackWithoutToken && !isLocalName(host)) {
      sendError(
        res,
        403,
        `Host ${JSON.stringify(host.slice(0, 200))} refused: without PUSHGATE_API_TOKEN a receiver on loopback answers only to localhost or an IP address`,
      );
      return;
    }
    next();
  };
}

function sameHost(origin: string, host: string): boolean {
  if (host === '') return false;
  try {
    return new URL(origin).host.toLowerCase() === host.toLowerCase();
  } catch {
    // `null` (a sandboxed page or a file) and anything else that is not a URL.
    return false;
  }
}

function isLocalName(host: string): boolean {
  const name = /^\[([^\]]+)\](?::\d+)?$/.exec(host)?.[1] ?? host.replace(/:\d+$/, '');
  return name.toLowerCase() === 'localhost' || isIP(name) !== 0;
}
