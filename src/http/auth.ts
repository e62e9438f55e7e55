import type { ServerResponse } from 'node:http';
import type { RequestHandler } from 'express';
import { matchesAnySecret } from '../webhooks/constant-time.js';
import { sendError } from './errors.js';

const BEARER = /^Bearer +(\S+) *$/i;
const UNAUTHORIZED = 'a valid bearer token is required (Authorization: Bearer <PUSHGATE_API_TOKEN>)';
const METRICS_UNAUTHORIZED =
  'a valid bearer token is required (Authorization: Bearer <PUSHGATE_METRICS_TOKEN or PUSHGATE_API_TOKEN>)';

/** True when no API token is configured, or the Authorization header carries one of them. */
export function isAuthorized(authorization: string | undefined, tokens: readonly string[]): boolean {
  if (tokens.length === 0) return true;
  const match = BEARER.exec(authorization ?? '');
  return match?.[1] !== undefined && matchesAnySecret(match[1], tokens);
}

/** The 401 every bearer-protected route answers, on the receiver and on a worker's metrics port. */
export function sendUnauthorized(res: ServerResponse, route: 'api' | 'metrics' = 'api'): void {
  res.setHeader('WWW-Authenticate', 'Bearer realm="pushgate"');
  sendError(res, 401, route === 'metrics' ? METRICS_UNAUTHORIZED : UNAUTHORIZED);
}

/**
 * What opens `/metrics`: an API token or a metrics-only one. Open only when neither is
 * configured; a metrics token alone closes it even while the status API is open.
 */
export function metricsTokens(secrets: {
  apiTokens: readonly string[];
  metricsTokens?: readonly string[];
}): string[] {
  return [...secrets.apiTokens, ...(secrets.metricsTokens ?? [])];
}

/** `Authorization: Bearer <token>` against any of `tokens`; open when there are none. */
export function bearerAuth(tokens: readonly string[], route: 'api' | 'metrics' = 'api'): RequestHandler {
  if (tokens.length === 0) return (_req, _res, next) => next();
  return (req, res, next) => {
    if (isAuthorized(req.headers.authorization, tokens)) next();
    else sendUnauthorized(res, route);
  };
}
